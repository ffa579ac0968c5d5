package dynamodb_test

import (
	"context"
	"testing"

	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/dynamodb"
	"github.com/phicrypt/phicrypt/keystore/storetest"
	"github.com/stretchr/testify/require"
)

// replayingAPI sends every PutItem and UpdateItem twice, as the SDK does when the answer
// to the first attempt is lost (a timeout after DynamoDB applied it), and
// returns the second attempt's answer.
type replayingAPI struct{ *awsdynamodb.Client }

func (r replayingAPI) PutItem(ctx context.Context, in *awsdynamodb.PutItemInput, optFns ...func(*awsdynamodb.Options)) (*awsdynamodb.PutItemOutput, error) {
	if _, err := r.Client.PutItem(ctx, in, optFns...); err != nil {
		return nil, err
	}
	return r.Client.PutItem(ctx, in, optFns...)
}

func (r replayingAPI) UpdateItem(ctx context.Context, in *awsdynamodb.UpdateItemInput, optFns ...func(*awsdynamodb.Options)) (*awsdynamodb.UpdateItemOutput, error) {
	if _, err := r.Client.UpdateItem(ctx, in, optFns...); err != nil {
		return nil, err
	}
	return r.Client.UpdateItem(ctx, in, optFns...)
}

func (r replayingAPI) TransactWriteItems(ctx context.Context, in *awsdynamodb.TransactWriteItemsInput, optFns ...func(*awsdynamodb.Options)) (*awsdynamodb.TransactWriteItemsOutput, error) {
	if _, err := r.Client.TransactWriteItems(ctx, in, optFns...); err != nil {
		return nil, err
	}
	in.ClientRequestToken = nil // a token-less retry, as a DynamoDB that forgot the token sees it
	return r.Client.TransactWriteItems(ctx, in, optFns...)
}

// A create or rotation whose first attempt was applied and whose retry
// then fails its conditions is this call's own write: nil, not ErrExists.
// (The full suite failed once on moto this way.)
func TestCreateAndRotateSurviveARetriedAttempt(t *testing.T) {
	ctx := context.Background()
	c, table, plain := freshTable(t)
	s, err := dynamodb.New(replayingAPI{c}, table)
	require.NoError(t, err)
	v := storetest.NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.CreateWithCopies(ctx, v, randomBytes(184), randomBytes(184)), "the retried create")
	next := storetest.NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.RotateWithCopy(ctx, "tenant", v.Version, next, randomBytes(184)), "the retried rotation")
	got, err := plain.Active(ctx, "tenant")
	require.NoError(t, err)
	require.Equal(t, next.Version, got.Version)

	// Another writer's create and a stale rotation still fail.
	other := storetest.NewVersion("tenant", keystore.StateActive)
	require.ErrorIs(t, plain.CreateWithCopies(ctx, other, randomBytes(184), randomBytes(184)), keystore.ErrExists)
	require.ErrorIs(t, plain.RotateWithCopy(ctx, "tenant", v.Version, other, randomBytes(184)), keystore.ErrConflict)
}

// A record put whose first attempt was applied and whose retry then fails
// its condition is this put's own write, not a conflict; another writer's
// record still is one. (The full suite once failed on moto this way.)
func TestPutRecordSurvivesARetriedAttempt(t *testing.T) {
	ctx := context.Background()
	c, table, plain := freshTable(t)
	s, err := dynamodb.New(replayingAPI{c}, table)
	require.NoError(t, err)
	rev, err := s.PutRecord(ctx, "policy", "tenant-*", []byte("v1"), 0)
	require.NoError(t, err, "the retried create")
	require.Equal(t, uint64(1), rev)
	rev, err = s.PutRecord(ctx, "policy", "tenant-*", []byte("v2"), 1)
	require.NoError(t, err, "the retried update")
	require.Equal(t, uint64(2), rev)
	got, err := plain.GetRecord(ctx, "policy", "tenant-*")
	require.NoError(t, err)
	require.Equal(t, "v2", string(got.Value))
	require.Equal(t, uint64(2), got.Revision)

	_, err = plain.PutRecord(ctx, "policy", "tenant-*", []byte("other"), 0)
	require.ErrorIs(t, err, keystore.ErrExists, "another writer's record is still a conflict")
	_, err = plain.PutRecord(ctx, "policy", "tenant-*", []byte("other"), 1)
	require.ErrorIs(t, err, keystore.ErrConflict)
}
