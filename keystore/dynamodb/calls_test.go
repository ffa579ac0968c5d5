package dynamodb_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore/dynamodb"
	"github.com/phicrypt/phicrypt/kmsmock"
)

// countingAPI is the real DynamoDB client, counting the calls the store
// makes through it.
type countingAPI struct {
	*awsdynamodb.Client
	calls atomic.Int64
}

func (c *countingAPI) GetItem(ctx context.Context, in *awsdynamodb.GetItemInput, o ...func(*awsdynamodb.Options)) (*awsdynamodb.GetItemOutput, error) {
	c.calls.Add(1)
	return c.Client.GetItem(ctx, in, o...)
}

func (c *countingAPI) PutItem(ctx context.Context, in *awsdynamodb.PutItemInput, o ...func(*awsdynamodb.Options)) (*awsdynamodb.PutItemOutput, error) {
	c.calls.Add(1)
	return c.Client.PutItem(ctx, in, o...)
}

func (c *countingAPI) UpdateItem(ctx context.Context, in *awsdynamodb.UpdateItemInput, o ...func(*awsdynamodb.Options)) (*awsdynamodb.UpdateItemOutput, error) {
	c.calls.Add(1)
	return c.Client.UpdateItem(ctx, in, o...)
}

func (c *countingAPI) Query(ctx context.Context, in *awsdynamodb.QueryInput, o ...func(*awsdynamodb.Options)) (*awsdynamodb.QueryOutput, error) {
	c.calls.Add(1)
	return c.Client.Query(ctx, in, o...)
}

func (c *countingAPI) Scan(ctx context.Context, in *awsdynamodb.ScanInput, o ...func(*awsdynamodb.Options)) (*awsdynamodb.ScanOutput, error) {
	c.calls.Add(1)
	return c.Client.Scan(ctx, in, o...)
}

func (c *countingAPI) TransactGetItems(ctx context.Context, in *awsdynamodb.TransactGetItemsInput, o ...func(*awsdynamodb.Options)) (*awsdynamodb.TransactGetItemsOutput, error) {
	c.calls.Add(1)
	return c.Client.TransactGetItems(ctx, in, o...)
}

func (c *countingAPI) TransactWriteItems(ctx context.Context, in *awsdynamodb.TransactWriteItemsInput, o ...func(*awsdynamodb.Options)) (*awsdynamodb.TransactWriteItemsOutput, error) {
	c.calls.Add(1)
	return c.Client.TransactWriteItems(ctx, in, o...)
}

type callsRow struct {
	ID   string                  `phi:"rowid"`
	Name fieldenc.Sealed[string] `phi:"encrypt"`
	MRN  fieldenc.Sealed[string] `phi:"encrypt,deterministic"`
}

// fieldsOverDynamoDB sets up what a service has: a branch key in a
// DynamoDB table (made by a custodian), a hierarchical keyring and a
// fieldenc codec over it; the counter starts after the set-up.
func fieldsOverDynamoDB(t testing.TB, c *awsdynamodb.Client, table string) (*countingAPI, *fieldenc.Codec[callsRow]) {
	ctx := context.Background()
	api := &countingAPI{Client: c}
	store, err := dynamodb.New(api, table)
	require.NoError(t, err)
	l := kmsmock.StartTest(t, kmsmock.Config{})
	kmsClient := l.Client("svc")
	key, err := kmsClient.CreateKey(ctx, nil)
	require.NoError(t, err)
	cfg := keyring.BranchKeysConfig{Store: store, Client: kmsClient, KMSKeyARN: *key.KeyMetadata.Arn, LogicalStoreName: table}
	custodian, err := custody.NewBranchKeys(cfg)
	require.NoError(t, err)
	_, err = custodian.CreateBranchKey(ctx, "patients-app")
	require.NoError(t, err)
	bk, err := keyring.NewBranchKeys(cfg)
	require.NoError(t, err)
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "patients-app",
		CacheTTL: time.Minute, MaxUsesPerVersion: keyring.MaxUsesPerVersionLimit})
	require.NoError(t, err)
	t.Cleanup(func() { kr.Close() })
	tbl, err := fieldenc.New(fieldenc.Config{Keys: kr, BranchKeyID: "patients-app", Table: "patients"})
	require.NoError(t, err)
	codec, err := fieldenc.NewCodec[callsRow](tbl)
	require.NoError(t, err)
	api.calls.Store(0)
	return api, codec
}

// A cached branch key costs no store call: 10,000 rows (20,000 field
// encryptions) make a handful of DynamoDB calls (the active version, the
// version's record and one usage reservation), not one per row.
func TestDynamoDBCallsPerTenThousandFields(t *testing.T) {
	c := client(t)
	_, table, _ := freshTableOn(t, c)
	api, codec := fieldsOverDynamoDB(t, c, table)
	ctx := context.Background()
	for i := range 10000 {
		row := callsRow{ID: randomHex(8), Name: fieldenc.Of("Ada Lovelace"), MRN: fieldenc.Of("MRN-42")}
		require.NoError(t, codec.Seal(ctx, &row), "row %d", i)
	}
	calls := api.calls.Load()
	t.Logf("10,000 rows, 20,000 field encryptions: %d DynamoDB calls", calls)
	require.Positive(t, calls, "the counter saw no call: it counts nothing")
	require.LessOrEqual(t, calls, int64(10))
}

// BenchmarkSealOverDynamoDB reports the DynamoDB calls per 10k field
// encryptions next to the time per row.
func BenchmarkSealOverDynamoDB(b *testing.B) {
	c := client(b)
	_, table, _ := freshTableOn(b, c)
	api, codec := fieldsOverDynamoDB(b, c, table)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		row := callsRow{ID: "row", Name: fieldenc.Of("Ada Lovelace"), MRN: fieldenc.Of("MRN-42")}
		if err := codec.Seal(ctx, &row); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(api.calls.Load())*10000/float64(2*b.N), "ddbcalls/10kfields")
}
