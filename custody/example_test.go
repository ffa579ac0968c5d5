package custody_test

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/kmsmock"
)

// A custodian creates and rotates a branch key; the service's keyring
// (keyring.NewBranchKeys over the same store) only unwraps it.
func ExampleNewBranchKeys() {
	ctx := context.Background()
	l, err := kmsmock.Start(kmsmock.Config{}, "") // an in-process KMS on 127.0.0.1
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	kmsClient := l.Client("custodian")
	key, err := kmsClient.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		fmt.Println(err)
		return
	}
	dir, _ := os.MkdirTemp("", "custody-example")
	defer os.RemoveAll(dir)
	store, err := keystore.OpenFileStore(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()

	custodian, err := custody.NewBranchKeys(keyring.BranchKeysConfig{
		Store: store, Client: kmsClient, KMSKeyARN: aws.ToString(key.KeyMetadata.Arn), LogicalStoreName: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	v1, err := custodian.CreateBranchKey(ctx, "tenant-general-hospital")
	if err != nil {
		fmt.Println(err)
		return
	}
	v2, err := custodian.Rotate(ctx, "tenant-general-hospital")
	if err != nil {
		fmt.Println(err)
		return
	}
	versions, _ := store.List(ctx, "tenant-general-hospital")
	fmt.Println(len(versions), versions[0].Version == v1.Version, versions[0].State, versions[1].Version == v2.Version, versions[1].State)
	// Output: 2 true decrypt_only true active
}
