package keystore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/phicrypt/phicrypt/keystore"
)

// A store keeps wrapped branch key versions; keyring.BranchKeys makes them
// with KMS. Here one is stored by hand to show the store's own rules.
func ExampleOpenFileStore() {
	dir, _ := os.MkdirTemp("", "branch-keys")
	defer os.RemoveAll(dir)
	store, err := keystore.OpenFileStore(filepath.Join(dir, "keys"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	ctx := context.Background()
	v := keystore.BranchKeyVersion{
		BranchKeyID: "tenant-general-hospital",
		Version:     keystore.NewBranchKeyVersion(),
		KMSKeyARN:   "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		Ciphertext:  []byte("what KMS returned"),
		CreatedAt:   time.Now(),
		State:       keystore.StateActive,
	}
	if err := store.Create(ctx, v); err != nil {
		fmt.Println(err)
		return
	}
	active, err := store.Active(ctx, "tenant-general-hospital")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(active.Version == v.Version, active.State)
	fmt.Println(keystore.Fingerprint("tenant-general-hospital") == keystore.Fingerprint(active.BranchKeyID))
	// Output:
	// true active
	// true
}
