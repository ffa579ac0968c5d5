package dynamodb_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/dynamodb"
)

// These tests run against moto_server's DynamoDB at PHICRYPT_MOTO_URL; the
// conformance suite (keyring's TestDynamoDBStore) covers the Store
// contract, these the table layout.

const arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

func client(t testing.TB) *awsdynamodb.Client {
	t.Helper()
	url := os.Getenv("PHICRYPT_MOTO_URL")
	if url == "" {
		if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
			t.Fatal("the full suite must set PHICRYPT_MOTO_URL (scripts/test.sh starts moto_server)")
		}
		t.Skip("PHICRYPT_MOTO_URL is not set: the DynamoDB store (moto_server's DynamoDB) not tested")
	}
	return awsdynamodb.New(awsdynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("keystore-test", "x", ""),
	})
}

// freshTable creates a table of the spec's schema and a store on it.
func freshTable(t *testing.T) (*awsdynamodb.Client, string, *dynamodb.Store) {
	t.Helper()
	return freshTableOn(t, client(t))
}

// freshTableOn creates a table of the spec's schema with c and a store on it.
func freshTableOn(t testing.TB, c *awsdynamodb.Client) (*awsdynamodb.Client, string, *dynamodb.Store) {
	t.Helper()
	table := "phicrypt-ddb-" + randomHex(8)
	tableARN, err := dynamodb.CreateTable(t.Context(), c, table)
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(tableARN, ":table/"+table), tableARN)
	t.Cleanup(func() { c.DeleteTable(context.Background(), &awsdynamodb.DeleteTableInput{TableName: &table}) })
	s, err := dynamodb.New(c, table)
	require.NoError(t, err)
	return c, table, s
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func newVersion(id string) keystore.BranchKeyVersion {
	return keystore.BranchKeyVersion{
		BranchKeyID: id, Version: keystore.NewBranchKeyVersion(), KMSKeyARN: arn,
		Ciphertext: randomBytes(184), CreatedAt: time.Now(), State: keystore.StateActive,
	}
}

// item reads one item raw.
func item(t *testing.T, c *awsdynamodb.Client, table, id, typ string) map[string]types.AttributeValue {
	t.Helper()
	out, err := c.GetItem(t.Context(), &awsdynamodb.GetItemInput{TableName: &table, ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"branch-key-id": &types.AttributeValueMemberS{Value: id}, "type": &types.AttributeValueMemberS{Value: typ}}})
	require.NoError(t, err)
	return out.Item
}

func put(t *testing.T, c *awsdynamodb.Client, table string, it map[string]types.AttributeValue) {
	t.Helper()
	_, err := c.PutItem(t.Context(), &awsdynamodb.PutItemInput{TableName: &table, Item: it})
	require.NoError(t, err)
}

func S(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func N(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
func B(v []byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: v} }

// awsItem is an item as AWS's KeyStore writes it (branch-key-store.md
// "Writing Branch Key and Beacon Key to Keystore"), with the create-time
// the JS KeyStore writes (milliseconds padded to microseconds).
func awsItem(id, typ, version string, enc []byte, created string) map[string]types.AttributeValue {
	it := map[string]types.AttributeValue{
		"branch-key-id": S(id), "type": S(typ), "enc": B(enc), "create-time": S(created),
		"kms-arn": S(arn), "hierarchy-version": N("1"),
	}
	if typ == "branch:ACTIVE" {
		it["version"] = S("branch:version:" + version)
	}
	return it
}

func names(it map[string]types.AttributeValue) []string { return slices.Sorted(maps.Keys(it)) }

// TestLayout: what CreateWithCopies and RotateWithCopy write is exactly the
// spec's items, plus phicrypt's own item per version.
func TestLayout(t *testing.T) {
	c, table, s := freshTable(t)
	ctx := t.Context()
	v1 := newVersion("tenant")
	v1.CreatedAt = time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.UTC)
	active1, beacon := randomBytes(190), randomBytes(180)
	require.NoError(t, s.CreateWithCopies(ctx, v1, active1, beacon))

	spec := []string{"branch-key-id", "create-time", "enc", "hierarchy-version", "kms-arn", "type"}
	want := func(typ string, enc []byte) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{
			"branch-key-id": S("tenant"), "type": S(typ), "enc": B(enc), "create-time": S("2026-03-04T05:06:07.891234Z"),
			"kms-arn": S(arn), "hierarchy-version": N("1"),
		}
	}
	got := item(t, c, table, "tenant", "branch:version:"+v1.Version)
	require.Equal(t, spec, names(got))
	require.Equal(t, want("branch:version:"+v1.Version, v1.Ciphertext), got)
	got = item(t, c, table, "tenant", "beacon:ACTIVE")
	require.Equal(t, want("beacon:ACTIVE", beacon), got)
	got = item(t, c, table, "tenant", "branch:ACTIVE")
	w := want("branch:ACTIVE", active1)
	w["version"] = S("branch:version:" + v1.Version)
	require.Equal(t, w, got)
	got = item(t, c, table, "tenant", "phicrypt:version:"+v1.Version)
	token, ok := got["write-token"].(*types.AttributeValueMemberB)
	require.True(t, ok, "the create's write token")
	require.Len(t, token.Value, 16)
	delete(got, "write-token")
	require.Equal(t, map[string]types.AttributeValue{
		"branch-key-id": S("tenant"), "type": S("phicrypt:version:" + v1.Version), "phicrypt-schema": N("1"), "usage": N("0"),
	}, got)

	// Rotation replaces the ACTIVE item (create-time, kms-arn and version
	// of the new version) and leaves the old version item and the beacon.
	v2 := newVersion("tenant")
	v2.CreatedAt = time.Date(2026, 4, 1, 0, 0, 0, 5000, time.UTC)
	active2 := randomBytes(190)
	require.NoError(t, s.RotateWithCopy(ctx, "tenant", v1.Version, v2, active2))
	got = item(t, c, table, "tenant", "branch:ACTIVE")
	require.Equal(t, "branch:version:"+v2.Version, got["version"].(*types.AttributeValueMemberS).Value)
	require.Equal(t, active2, got["enc"].(*types.AttributeValueMemberB).Value)
	require.Equal(t, "2026-04-01T00:00:00.000005Z", got["create-time"].(*types.AttributeValueMemberS).Value)
	require.Equal(t, want("branch:version:"+v1.Version, v1.Ciphertext), item(t, c, table, "tenant", "branch:version:"+v1.Version))
	require.Equal(t, want("beacon:ACTIVE", beacon), item(t, c, table, "tenant", "beacon:ACTIVE"))

	// Retiring and counting touch only phicrypt's items.
	_, err := s.AddUsage(ctx, "tenant", v1.Version, 7)
	require.NoError(t, err)
	require.NoError(t, s.SetState(ctx, "tenant", v1.Version, keystore.StateDecryptOnly, keystore.StateRetired))
	require.Equal(t, want("branch:version:"+v1.Version, v1.Ciphertext), item(t, c, table, "tenant", "branch:version:"+v1.Version))
	meta := item(t, c, table, "tenant", "phicrypt:version:"+v1.Version)
	require.Equal(t, S("retired"), meta["state"])
	require.Equal(t, N("7"), meta["usage"])

	// The entry points that cannot carry the copies are refused.
	require.ErrorIs(t, s.Create(ctx, newVersion("other")), keystore.ErrInvalid)
	require.ErrorIs(t, s.Rotate(ctx, "tenant", v2.Version, newVersion("tenant")), keystore.ErrInvalid)
	err = s.Rewrap(ctx, "tenant", v2.Version, v2.Ciphertext, arn, randomBytes(184))
	require.ErrorIs(t, err, keystore.ErrInvalid)
	require.Contains(t, err.Error(), "RewrapWithCopy")
	// Missing copies are refused too.
	require.ErrorIs(t, s.CreateWithCopies(ctx, newVersion("other"), nil, beacon), keystore.ErrInvalid)
	require.ErrorIs(t, s.CreateWithCopies(ctx, newVersion("other"), active1, nil), keystore.ErrInvalid)
	require.ErrorIs(t, s.RotateWithCopy(ctx, "tenant", v2.Version, newVersion("tenant"), nil), keystore.ErrInvalid)

	// Rewrapping the active version moves its ACTIVE copy and kms-arn.
	arn2 := strings.Replace(arn, "us-east-1", "eu-west-1", 1)
	new2, copy2 := randomBytes(184), randomBytes(200)
	require.NoError(t, s.RewrapWithCopy(ctx, "tenant", v2.Version, v2.Ciphertext, arn2, new2, copy2))
	got = item(t, c, table, "tenant", "branch:ACTIVE")
	require.Equal(t, copy2, got["enc"].(*types.AttributeValueMemberB).Value)
	require.Equal(t, S(arn2), got["kms-arn"])
	got = item(t, c, table, "tenant", "branch:version:"+v2.Version)
	require.Equal(t, new2, got["enc"].(*types.AttributeValueMemberB).Value)
	require.Equal(t, S(arn2), got["kms-arn"])
	// RewrapWithCopy of a version that is not active is a conflict.
	err = s.RewrapWithCopy(ctx, "tenant", v1.Version, v1.Ciphertext, arn2, randomBytes(184), randomBytes(184))
	require.ErrorIs(t, err, keystore.ErrConflict)
	require.Equal(t, want("branch:version:"+v1.Version, v1.Ciphertext), item(t, c, table, "tenant", "branch:version:"+v1.Version))
}

// TestReadsAWSItems: a branch key as AWS's KeyStore leaves it (no phicrypt
// items) is read, counted, retired and rotated.
func TestReadsAWSItems(t *testing.T) {
	c, table, s := freshTable(t)
	ctx := t.Context()
	id := "aws-" + randomHex(4)
	v1, v2 := keystore.NewBranchKeyVersion(), keystore.NewBranchKeyVersion()
	enc1, enc2 := randomBytes(184), randomBytes(184)
	put(t, c, table, awsItem(id, "branch:version:"+v1, "", enc1, "2025-01-02T03:04:05.678000Z"))
	put(t, c, table, awsItem(id, "branch:version:"+v2, "", enc2, "2025-02-02T03:04:05.678000Z"))
	put(t, c, table, awsItem(id, "branch:ACTIVE", v2, randomBytes(184), "2025-02-02T03:04:05.678000Z"))
	put(t, c, table, awsItem(id, "beacon:ACTIVE", "", randomBytes(184), "2025-01-02T03:04:05.678000Z"))
	// AWS's mutation items share the partition; they are not versions.
	put(t, c, table, map[string]types.AttributeValue{"branch-key-id": S(id), "type": S("branch:MUTATION_COMMITMENT"), "uuid": S("x")})

	a, err := s.Active(ctx, id)
	require.NoError(t, err)
	require.Equal(t, keystore.BranchKeyVersion{
		BranchKeyID: id, Version: v2, KMSKeyARN: arn, Ciphertext: enc2,
		CreatedAt: time.Date(2025, 2, 2, 3, 4, 5, 678000000, time.UTC), State: keystore.StateActive,
	}, a)
	vs, err := s.List(ctx, id)
	require.NoError(t, err)
	require.Len(t, vs, 2)
	require.Equal(t, v1, vs[0].Version)
	require.Equal(t, keystore.StateDecryptOnly, vs[0].State)
	require.Equal(t, enc1, vs[0].Ciphertext)
	ids, err := s.IDs(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{id}, ids)

	total, err := s.AddUsage(ctx, id, v2, 3)
	require.NoError(t, err)
	require.EqualValues(t, 3, total)
	total, err = s.AddUsage(ctx, id, v2, 4)
	require.NoError(t, err)
	require.EqualValues(t, 7, total)
	require.NoError(t, s.SetState(ctx, id, v1, keystore.StateDecryptOnly, keystore.StateRetired))
	_, err = s.AddUsage(ctx, id, v1, 1)
	require.ErrorIs(t, err, keystore.ErrConflict)
	missing := keystore.NewBranchKeyVersion()
	_, err = s.AddUsage(ctx, id, missing, 1)
	require.ErrorIs(t, err, keystore.ErrNotFound)
	require.Empty(t, item(t, c, table, id, "phicrypt:version:"+missing), "counting a missing version leaves no item")

	v3 := newVersion(id)
	require.NoError(t, s.RotateWithCopy(ctx, id, v2, v3, randomBytes(184)))
	vs, err = s.List(ctx, id)
	require.NoError(t, err)
	var states []keystore.State
	for _, v := range vs {
		states = append(states, v.State)
	}
	require.Equal(t, []keystore.State{keystore.StateRetired, keystore.StateDecryptOnly, keystore.StateActive}, states)
	require.EqualValues(t, 7, vs[1].Usage)
}

// TestRefusesWhatItCannotUnwrap: items phicrypt's unwrap would rebuild a
// different KMS encryption context for are refused with a clear error, not
// handed to KMS.
func TestRefusesWhatItCannotUnwrap(t *testing.T) {
	c, table, s := freshTable(t)
	ctx := t.Context()
	for name, c2 := range map[string]struct {
		mutate func(map[string]types.AttributeValue)
		want   string
	}{
		"custom encryption context": {func(it map[string]types.AttributeValue) { it["aws-crypto-ec:department"] = S("admin") }, "custom encryption context"},
		"an extra attribute":        {func(it map[string]types.AttributeValue) { it["usage"] = N("5") }, "beyond the branch key store specification"},
		"milliseconds":              {func(it map[string]types.AttributeValue) { it["create-time"] = S("2023-06-03T19:03:29.358Z") }, "create-time"},
		"hierarchy version 2":       {func(it map[string]types.AttributeValue) { it["hierarchy-version"] = N("2") }, "hierarchy version"},
	} {
		t.Run(name, func(t *testing.T) {
			id := "patient-CANARY-" + randomHex(4)
			v := keystore.NewBranchKeyVersion()
			vi := awsItem(id, "branch:version:"+v, "", randomBytes(184), "2025-01-02T03:04:05.678000Z")
			ai := awsItem(id, "branch:ACTIVE", v, randomBytes(184), "2025-01-02T03:04:05.678000Z")
			c2.mutate(vi)
			c2.mutate(ai)
			put(t, c, table, vi)
			put(t, c, table, ai)
			_, err := s.Active(ctx, id)
			require.ErrorIs(t, err, keystore.ErrUnsupportedSchema)
			require.Contains(t, err.Error(), c2.want)
			require.NotContains(t, err.Error(), "CANARY")
			_, err = s.Get(ctx, id, v)
			require.ErrorIs(t, err, keystore.ErrUnsupportedSchema)
			_, err = s.List(ctx, id)
			require.ErrorIs(t, err, keystore.ErrUnsupportedSchema)
		})
	}
}

// TestHostileItems: a table that holds oversized or mistyped items makes
// every read fail with ErrCorrupt, and no error echoes the branch key id.
func TestHostileItems(t *testing.T) {
	c, table, s := freshTable(t)
	ctx := t.Context()
	cases := map[string]func(vi, ai, mi map[string]types.AttributeValue){
		"enc over the cap": func(vi, ai, mi map[string]types.AttributeValue) {
			vi["enc"] = B(randomBytes(keystore.MaxWrappedBranchKeyLen + 1))
		},
		"enc a string": func(vi, ai, mi map[string]types.AttributeValue) { vi["enc"] = S("x") },
		"empty enc":    func(vi, ai, mi map[string]types.AttributeValue) { delete(vi, "enc") },
		"kms-arn over the cap": func(vi, ai, mi map[string]types.AttributeValue) {
			vi["kms-arn"] = S(strings.Repeat("a", keystore.MaxKMSKeyARNLen+1))
		},
		"ACTIVE names no version": func(vi, ai, mi map[string]types.AttributeValue) { ai["version"] = S("branch:version:../../x") },
		"ACTIVE version a number": func(vi, ai, mi map[string]types.AttributeValue) { ai["version"] = N("1") },
		"hierarchy a string":      func(vi, ai, mi map[string]types.AttributeValue) { vi["hierarchy-version"] = S("1") },
		"usage negative":          func(vi, ai, mi map[string]types.AttributeValue) { mi["usage"] = N("-1") },
		"usage a string":          func(vi, ai, mi map[string]types.AttributeValue) { mi["usage"] = S("1") },
		"too many attributes": func(vi, ai, mi map[string]types.AttributeValue) {
			for i := range 20 {
				vi[fmt.Sprintf("x%d", i)] = S("y")
			}
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			id := "patient-CANARY-" + randomHex(4)
			v := keystore.NewBranchKeyVersion()
			vi := awsItem(id, "branch:version:"+v, "", randomBytes(184), "2025-01-02T03:04:05.678000Z")
			ai := awsItem(id, "branch:ACTIVE", v, randomBytes(184), "2025-01-02T03:04:05.678000Z")
			mi := map[string]types.AttributeValue{"branch-key-id": S(id), "type": S("phicrypt:version:" + v), "phicrypt-schema": N("1"), "usage": N("1")}
			mutate(vi, ai, mi)
			put(t, c, table, vi)
			put(t, c, table, ai)
			put(t, c, table, mi)
			_, err := s.Active(ctx, id)
			require.Error(t, err)
			require.ErrorIs(t, err, dynamodb.ErrCorrupt)
			require.NotContains(t, err.Error(), "CANARY")
			_, err = s.List(ctx, id)
			require.ErrorIs(t, err, dynamodb.ErrCorrupt)
		})
	}
	// Numbers past uint64 saturate, as AddUsage does.
	id := "big"
	v := keystore.NewBranchKeyVersion()
	put(t, c, table, awsItem(id, "branch:version:"+v, "", randomBytes(184), "2025-01-02T03:04:05.678000Z"))
	put(t, c, table, awsItem(id, "branch:ACTIVE", v, randomBytes(184), "2025-01-02T03:04:05.678000Z"))
	put(t, c, table, map[string]types.AttributeValue{"branch-key-id": S(id), "type": S("phicrypt:version:" + v), "phicrypt-schema": N("1"), "usage": N(strings.Repeat("9", 38))})
	got, err := s.Active(ctx, id)
	require.NoError(t, err)
	require.EqualValues(t, uint64(keystore.MaxUsage), got.Usage)
	total, err := s.AddUsage(ctx, id, v, 1)
	require.NoError(t, err)
	require.EqualValues(t, uint64(keystore.MaxUsage), total)
}

func TestCreateTable(t *testing.T) {
	c, table, s := freshTable(t)
	ctx := t.Context()
	// Again: the table exists with the right schema.
	tableARN, err := dynamodb.CreateTable(ctx, c, table)
	require.NoError(t, err)
	require.Contains(t, tableARN, table)
	require.NoError(t, s.Close())
	_, err = s.Active(ctx, "x")
	require.ErrorIs(t, err, keystore.ErrInvalid, "closed")

	// A table of another schema is refused, not used.
	other := "phicrypt-other-" + randomHex(6)
	_, err = c.CreateTable(ctx, &awsdynamodb.CreateTableInput{
		TableName:            &other,
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("branch-key-id"), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("branch-key-id"), AttributeType: types.ScalarAttributeTypeS}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	require.NoError(t, err)
	t.Cleanup(func() { c.DeleteTable(context.Background(), &awsdynamodb.DeleteTableInput{TableName: &other}) })
	_, err = dynamodb.CreateTable(ctx, c, other)
	require.ErrorContains(t, err, "key schema")

	_, err = dynamodb.CreateTable(ctx, c, "no spaces allowed")
	require.Error(t, err)
	_, err = dynamodb.New(nil, table)
	require.Error(t, err)
}
