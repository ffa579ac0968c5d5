package dynamodb_test

import (
	"context"
	"log"

	"github.com/aws/aws-sdk-go-v2/config"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore/dynamodb"
)

// The common case: one table (made once, by a custodian's set-up step),
// shared with AWS's hierarchical keyring, as the store behind BranchKeys.
// (Not run: it needs DynamoDB and KMS.)
func Example() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	ddb := awsdynamodb.NewFromConfig(cfg)
	if _, err := dynamodb.CreateTable(ctx, ddb, "branch-keys"); err != nil {
		log.Fatal(err)
	}
	store, err := dynamodb.New(ddb, "branch-keys")
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{
		Store:            store,
		Client:           kms.NewFromConfig(cfg),
		KMSKeyARN:        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		LogicalStoreName: "branch-keys", // AWS's logicalKeyStoreName for the same table
	})
	if err != nil {
		log.Fatal(err)
	}
	active, err := store.Active(ctx, "tenant-42")
	if err != nil {
		log.Fatal(err)
	}
	key, err := bk.Unwrap(ctx, active)
	if err != nil {
		log.Fatal(err)
	}
	defer key.Wipe()
}
