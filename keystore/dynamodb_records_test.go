package keystore_test

import (
	"fmt"
	"os"
	"testing"

	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/storetest"
)

// TestDynamoDBStoreRecords runs the records suite against moto_server's
// DynamoDB at PHICRYPT_MOTO_URL, as TestDynamoDBStore does the Store
// suite.
func TestDynamoDBStoreRecords(t *testing.T) {
	if os.Getenv("PHICRYPT_MOTO_URL") == "" {
		if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
			t.Fatal("the full suite must set PHICRYPT_MOTO_URL (scripts/test.sh starts moto_server)")
		}
		t.Skip("PHICRYPT_MOTO_URL is not set: the DynamoDB store (moto_server's DynamoDB) not tested")
	}
	b := dynamoBackend()
	t.Run("Conformance", func(t *testing.T) { storetest.RunRecords(t, b, "TestDynamoDBStoreChild") })
	t.Run("ListCap", func(t *testing.T) { testDynamoDBRecordListCap(t, b) })
}

// testDynamoDBRecordListCap fills a kind to MaxListedRecords with raw
// batch writes of the store's item layout: it lists, in order; one more
// is refused.
func testDynamoDBRecordListCap(t *testing.T, b storetest.Backend) {
	ctx := t.Context()
	table := b.Fresh(t)
	s := mustOpen(t, b, table)
	r := s.(keystore.Records)
	_, err := r.PutRecord(ctx, "policy", "r00000", []byte("v"), 0)
	require.NoError(t, err)
	client := dynamoClient()
	out, err := client.Scan(ctx, &awsdynamodb.ScanInput{TableName: &table})
	require.NoError(t, err)
	require.Len(t, out.Items, 1)
	model := out.Items[0]
	for i := 1; i < keystore.MaxListedRecords; i += 25 {
		var writes []types.WriteRequest
		for j := i; j < min(i+25, keystore.MaxListedRecords); j++ {
			it := map[string]types.AttributeValue{}
			for k, v := range model {
				it[k] = v
			}
			it["type"] = &types.AttributeValueMemberS{Value: fmt.Sprintf("record:r%05d", j)}
			writes = append(writes, types.WriteRequest{PutRequest: &types.PutRequest{Item: it}})
		}
		res, err := client.BatchWriteItem(ctx, &awsdynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: writes}})
		require.NoError(t, err)
		require.Empty(t, res.UnprocessedItems)
	}
	list, err := r.ListRecords(ctx, "policy")
	require.NoError(t, err)
	require.Len(t, list, keystore.MaxListedRecords)
	require.Equal(t, "r00000", list[0].Name)
	require.Equal(t, "r09999", list[len(list)-1].Name)

	_, err = r.PutRecord(ctx, "policy", "one too many", []byte("v"), 0)
	require.NoError(t, err)
	_, err = r.ListRecords(ctx, "policy")
	require.ErrorIs(t, err, keystore.ErrInvalid)
	require.ErrorContains(t, err, "more than 10000 records of kind policy")
	ids, err := s.IDs(ctx)
	require.NoError(t, err)
	require.Empty(t, ids, "records are not branch keys")
}
