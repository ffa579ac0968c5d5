package dynamodb_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/dynamodb"
)

// TestDestroyLayout: a destroyed version's branch:version item keeps every
// attribute but enc, which gives way to phicrypt-state "destroyed";
// DestroyKey does the same to the branch:ACTIVE item and deletes the
// beacon:ACTIVE item. No wrapped key of the branch key is left anywhere in
// the table, so AWS's hierarchical keyring has nothing to unwrap.
func TestDestroyLayout(t *testing.T) {
	c, table, s := freshTable(t)
	ctx := t.Context()
	v1 := newVersion("patient-7")
	v1.CreatedAt = time.Date(2026, 3, 4, 5, 6, 7, 891234000, time.UTC)
	active1, beacon := randomBytes(190), randomBytes(180)
	require.NoError(t, s.CreateWithCopies(ctx, v1, active1, beacon))
	v2 := newVersion("patient-7")
	active2 := randomBytes(190)
	require.NoError(t, s.RotateWithCopy(ctx, "patient-7", v1.Version, v2, active2))

	require.NoError(t, s.Destroy(ctx, "patient-7", v1.Version))
	got := item(t, c, table, "patient-7", "branch:version:"+v1.Version)
	require.Equal(t, map[string]types.AttributeValue{
		"branch-key-id": S("patient-7"), "type": S("branch:version:" + v1.Version), "create-time": S("2026-03-04T05:06:07.891234Z"),
		"kms-arn": S(arn), "hierarchy-version": N("1"), "phicrypt-state": S("destroyed"),
	}, got)
	require.Equal(t, S("destroyed"), item(t, c, table, "patient-7", "phicrypt:version:"+v1.Version)["state"])
	require.Equal(t, active2, item(t, c, table, "patient-7", "branch:ACTIVE")["enc"].(*types.AttributeValueMemberB).Value,
		"destroying an old version leaves the active one")

	require.NoError(t, s.DestroyKey(ctx, "patient-7"))
	act := item(t, c, table, "patient-7", "branch:ACTIVE")
	require.NotContains(t, act, "enc")
	require.Equal(t, S("destroyed"), act["phicrypt-state"])
	require.Equal(t, S("branch:version:"+v2.Version), act["version"])
	require.Empty(t, item(t, c, table, "patient-7", "beacon:ACTIVE"), "the beacon key is deleted")

	out, err := c.Query(ctx, queryPartition(table, "patient-7"))
	require.NoError(t, err)
	for _, it := range out.Items {
		require.NotContains(t, it, "enc", "item %v", it["type"])
		for _, material := range [][]byte{v1.Ciphertext, v2.Ciphertext, active1, active2, beacon} {
			for _, av := range it {
				if b, ok := av.(*types.AttributeValueMemberB); ok {
					require.False(t, bytes.Equal(b.Value, material))
				}
			}
		}
	}
	// AWS's CreateKey with the same id would fail its condition on the
	// branch:ACTIVE item, as phicrypt's does.
	require.ErrorIs(t, s.CreateWithCopies(ctx, newVersion("patient-7"), randomBytes(184), randomBytes(184)), keystore.ErrExists)
	_, err = s.Active(ctx, "patient-7")
	require.ErrorIs(t, err, keystore.ErrDestroyed)
}

// TestTombstoneMarkerChecked: a phicrypt-state other than "destroyed", or
// one beside a wrapped key, is refused rather than read.
func TestTombstoneMarkerChecked(t *testing.T) {
	c, table, s := freshTable(t)
	ctx := t.Context()
	v := newVersion("tenant")
	require.NoError(t, s.CreateWithCopies(ctx, v, randomBytes(184), randomBytes(184)))
	it := item(t, c, table, "tenant", "branch:version:"+v.Version)
	it["phicrypt-state"] = S("destroyed")
	put(t, c, table, it)
	_, err := s.Get(ctx, "tenant", v.Version)
	require.ErrorIs(t, err, dynamodb.ErrCorrupt)
	delete(it, "enc")
	it["phicrypt-state"] = S("shredded-v2")
	put(t, c, table, it)
	_, err = s.Get(ctx, "tenant", v.Version)
	require.ErrorIs(t, err, keystore.ErrUnsupportedSchema)
}

// queryPartition reads every item of branch key id, consistently.
func queryPartition(table, id string) *awsdynamodb.QueryInput {
	return &awsdynamodb.QueryInput{
		TableName:                 &table,
		KeyConditionExpression:    aws.String("#id = :id"),
		ExpressionAttributeNames:  map[string]string{"#id": "branch-key-id"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": S(id)},
		ConsistentRead:            aws.Bool(true),
	}
}

// TestDestroyKeyResumes: a DestroyKey that stopped after its first step
// (branch:ACTIVE a tombstone, beacon deleted, versions still wrapped)
// leaves the key unusable, and DestroyKey, or Destroy of the version that
// was active, finishes it.
func TestDestroyKeyResumes(t *testing.T) {
	for _, finish := range []string{"DestroyKey", "Destroy"} {
		t.Run(finish, func(t *testing.T) {
			c, table, s := freshTable(t)
			ctx := t.Context()
			v1 := newVersion("tenant")
			require.NoError(t, s.CreateWithCopies(ctx, v1, randomBytes(184), randomBytes(184)))
			v2 := newVersion("tenant")
			require.NoError(t, s.RotateWithCopy(ctx, "tenant", v1.Version, v2, randomBytes(184)))
			// The first step, as a crash would leave it.
			act := item(t, c, table, "tenant", "branch:ACTIVE")
			delete(act, "enc")
			act["phicrypt-state"] = S("destroyed")
			put(t, c, table, act)
			_, err := c.DeleteItem(ctx, &awsdynamodb.DeleteItemInput{TableName: &table, Key: map[string]types.AttributeValue{
				"branch-key-id": S("tenant"), "type": S("beacon:ACTIVE")}})
			require.NoError(t, err)

			_, err = s.Active(ctx, "tenant")
			require.ErrorIs(t, err, keystore.ErrDestroyed, "unusable from the first step")
			err = s.RotateWithCopy(ctx, "tenant", v2.Version, newVersion("tenant"), randomBytes(184))
			require.ErrorIs(t, err, keystore.ErrDestroyed, "no rotation brings it back")
			got, err := s.Get(ctx, "tenant", v2.Version)
			require.NoError(t, err)
			require.Equal(t, keystore.StateActive, got.State, "not yet erased")

			if finish == "DestroyKey" {
				require.NoError(t, s.DestroyKey(ctx, "tenant"))
			} else {
				require.NoError(t, s.Destroy(ctx, "tenant", v2.Version))
			}
			list, err := s.List(ctx, "tenant")
			require.NoError(t, err)
			require.Len(t, list, 2)
			for _, v := range list {
				require.Equal(t, keystore.StateDestroyed, v.State)
				require.Empty(t, v.Ciphertext)
				require.NotContains(t, item(t, c, table, "tenant", "branch:version:"+v.Version), "enc")
			}
		})
	}
}
