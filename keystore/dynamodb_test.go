package keystore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/dynamodb"
	"github.com/phicrypt/phicrypt/keystore/storetest"
)

// TestDynamoDBStore runs the conformance suite against a DynamoDB table in
// moto_server at PHICRYPT_MOTO_URL (which the full suite starts), a fresh
// table per test. Without it, go test stays hermetic and skips; the full
// suite (PHICRYPT_FULL_SUITE) fails instead.
func TestDynamoDBStore(t *testing.T) {
	if os.Getenv("PHICRYPT_MOTO_URL") == "" {
		if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
			t.Fatal("the full suite must set PHICRYPT_MOTO_URL (scripts/test.sh starts moto_server)")
		}
		t.Skip("PHICRYPT_MOTO_URL is not set: the DynamoDB store (moto_server's DynamoDB) not tested")
	}
	b := dynamoBackend()
	t.Run("Conformance", func(t *testing.T) { storetest.Run(t, b) })
	t.Run("TwoProcesses", func(t *testing.T) { storetest.RunTwoProcesses(t, b, "TestDynamoDBStoreChild") })
}

// TestDynamoDBStoreChild is a child process of TestDynamoDBStore.
func TestDynamoDBStoreChild(t *testing.T) {
	if os.Getenv("PHICRYPT_MOTO_URL") != "" {
		storetest.Child(t, dynamoBackend())
	}
}

func dynamoClient() *awsdynamodb.Client {
	return awsdynamodb.New(awsdynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(os.Getenv("PHICRYPT_MOTO_URL")),
		Credentials:  credentials.NewStaticCredentialsProvider("conformance", "x", ""),
	})
}

// dynamoBackend: every test gets a table of its own (deleted afterwards);
// the location is the table name, the endpoint PHICRYPT_MOTO_URL.
func dynamoBackend() storetest.Backend {
	return storetest.Backend{
		Name:                 "dynamodb",
		RetriedUsageMayCount: true,
		Open:                 func(_ context.Context, table string) (keystore.Store, error) { return openDynamoStore(table) },
		Fresh: func(t *testing.T) string {
			var r [8]byte
			rand.Read(r[:])
			table := "phicrypt-conformance-" + hex.EncodeToString(r[:])
			client := dynamoClient()
			_, err := dynamodb.CreateTable(t.Context(), client, table)
			require.NoError(t, err)
			t.Cleanup(func() {
				_, err := client.DeleteTable(context.Background(), &awsdynamodb.DeleteTableInput{TableName: &table})
				require.NoError(t, err)
			})
			return table
		},
		// A newer hierarchy version on every AWS item of the table.
		FutureSchema: func(t *testing.T, table string) {
			client := dynamoClient()
			out, err := client.Scan(t.Context(), &awsdynamodb.ScanInput{TableName: &table})
			require.NoError(t, err)
			for _, it := range out.Items {
				if _, ok := it["hierarchy-version"]; !ok {
					continue
				}
				_, err := client.UpdateItem(t.Context(), &awsdynamodb.UpdateItemInput{
					TableName:                 &table,
					Key:                       map[string]types.AttributeValue{"branch-key-id": it["branch-key-id"], "type": it["type"]},
					UpdateExpression:          aws.String("SET #hv = :two"),
					ExpressionAttributeNames:  map[string]string{"#hv": "hierarchy-version"},
					ExpressionAttributeValues: map[string]types.AttributeValue{":two": &types.AttributeValueMemberN{Value: "2"}},
				})
				require.NoError(t, err)
			}
		},
	}
}

func openDynamoStore(table string) (keystore.Store, error) {
	s, err := dynamodb.New(dynamoClient(), table)
	if err != nil {
		return nil, err
	}
	return withAWSCopies{s}, nil
}

// withAWSCopies runs the suite through the store's own entry points for
// AWS's layout: the ACTIVE copy and the beacon key, which keyring.BranchKeys
// makes with KMS, are random bytes here (the store never decrypts them).
type withAWSCopies struct{ *dynamodb.Store }

func (s withAWSCopies) Create(ctx context.Context, v keystore.BranchKeyVersion) error {
	return s.CreateWithCopies(ctx, v, wrappedKey(184), wrappedKey(184))
}

func (s withAWSCopies) Rotate(ctx context.Context, id, expectedActive string, next keystore.BranchKeyVersion) error {
	return s.RotateWithCopy(ctx, id, expectedActive, next, wrappedKey(184))
}

// Rewrap moves the ACTIVE copy too when the version is the active one.
func (s withAWSCopies) Rewrap(ctx context.Context, id, version string, oldCiphertext []byte, newARN string, newCiphertext []byte) error {
	v, err := s.Get(ctx, id, version)
	if err != nil {
		return err
	}
	if v.State != keystore.StateActive {
		return s.Store.Rewrap(ctx, id, version, oldCiphertext, newARN, newCiphertext)
	}
	return s.RewrapWithCopy(ctx, id, version, oldCiphertext, newARN, newCiphertext, wrappedKey(184))
}
