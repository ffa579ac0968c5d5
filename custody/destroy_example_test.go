package custody_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/kmsmock"
)

// Forgetting a patient whose records are under a branch key of their own:
// one DestroyKey. The store keeps tombstones, without material.
func ExampleBranchKeys_DestroyKey() {
	ctx := context.Background()
	l, err := kmsmock.Start(kmsmock.Config{}, "")
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
	dir, _ := os.MkdirTemp("", "custody-destroy-example")
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
	if _, err := custodian.CreateBranchKey(ctx, "patient-MRN-0042"); err != nil {
		fmt.Println(err)
		return
	}

	if err := custodian.DestroyKey(ctx, "patient-MRN-0042"); err != nil {
		fmt.Println(err)
		return
	}
	versions, _ := store.List(ctx, "patient-MRN-0042")
	fmt.Println(versions[0].State, len(versions[0].Ciphertext))
	_, err = store.Active(ctx, "patient-MRN-0042")
	fmt.Println(errors.Is(err, keystore.ErrDestroyed))
	// Output:
	// destroyed 0
	// true
}
