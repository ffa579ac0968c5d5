package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TableAPI is the part of *dynamodb.Client that CreateTable uses.
type TableAPI interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
}

// tableWait bounds how long CreateTable waits for a new table to become
// active.
const tableWait = 5 * time.Minute

// CreateTable makes the key store's table, as branch-key-store.md
// "CreateKeyStore" says: if the table exists, its key schema must be the
// spec's (partition key branch-key-id, sort key type, both strings);
// otherwise it is created with that schema (on-demand capacity) and
// CreateTable waits until it is active. It returns the table's ARN. It is
// an explicit, separate step: New never creates anything.
func CreateTable(ctx context.Context, client TableAPI, table string) (arn string, err error) {
	if err := checkTableName(table); err != nil {
		return "", err
	}
	desc, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table})
	var notFound *types.ResourceNotFoundException
	switch {
	case err == nil:
		return checkKeySchema(desc.Table)
	case !errors.As(err, &notFound):
		return "", wrap("describing the key store table", err)
	}
	_, err = client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: &table,
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrID), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrType), KeyType: types.KeyTypeRange},
		},
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(attrID), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrType), AttributeType: types.ScalarAttributeTypeS},
		},
		BillingMode: types.BillingModePayPerRequest,
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) { // in use: another process created it
		return "", wrap("creating the key store table", err)
	}
	out, err := dynamodb.NewTableExistsWaiter(client).WaitForOutput(ctx, &dynamodb.DescribeTableInput{TableName: &table}, tableWait)
	if err != nil {
		return "", wrap("waiting for the key store table to become active", err)
	}
	return checkKeySchema(out.Table)
}

// checkKeySchema: the table has the spec's key schema (branch-key-store.md
// "KeySchema"); other attributes and indexes are allowed.
func checkKeySchema(t *types.TableDescription) (string, error) {
	if t == nil {
		return "", errors.New("dynamodb store: DynamoDB described no table")
	}
	attrTypes := map[string]types.ScalarAttributeType{}
	for _, d := range t.AttributeDefinitions {
		attrTypes[aws.ToString(d.AttributeName)] = d.AttributeType
	}
	ks := t.KeySchema
	if len(ks) != 2 || aws.ToString(ks[0].AttributeName) != attrID || ks[0].KeyType != "HASH" ||
		aws.ToString(ks[1].AttributeName) != attrType || ks[1].KeyType != "RANGE" ||
		attrTypes[attrID] != "S" || attrTypes[attrType] != "S" {
		return "", fmt.Errorf("dynamodb store: the table exists but its key schema is not the branch key store's (partition key %s, sort key %s, both strings)", attrID, attrType)
	}
	return aws.ToString(t.TableArn), nil
}

// checkTableName follows DynamoDB's rule: 3 to 255 of a-z A-Z 0-9 _ - .
func checkTableName(table string) error {
	ok := len(table) >= 3 && len(table) <= 255
	for i := 0; ok && i < len(table); i++ {
		c := table[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.'
	}
	if !ok {
		return errors.New("dynamodb store: a table name is 3 to 255 characters, each a letter, a digit, underscore, hyphen or period")
	}
	return nil
}
