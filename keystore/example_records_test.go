package keystore_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/phicrypt/phicrypt/keystore"
)

// Records change only by compare-and-swap: put with 0 to create, then with
// the revision last read. A writer that read an older revision loses with
// ErrConflict and re-reads.
func ExampleRecords() {
	dir, _ := os.MkdirTemp("", "branch-keys")
	defer os.RemoveAll(dir)
	store, err := keystore.OpenFileStore(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	var records keystore.Records = store
	ctx := context.Background()

	rev, err := records.PutRecord(ctx, "policy", "current", []byte("signed policy, sequence 1"), 0)
	fmt.Println(rev, err)
	_, err = records.PutRecord(ctx, "policy", "current", []byte("another first policy"), 0)
	fmt.Println(errors.Is(err, keystore.ErrExists))
	rev, err = records.PutRecord(ctx, "policy", "current", []byte("signed policy, sequence 2"), rev)
	fmt.Println(rev, err)
	_, err = records.PutRecord(ctx, "policy", "current", []byte("written from a stale read"), 1)
	fmt.Println(errors.Is(err, keystore.ErrConflict))

	r, err := records.GetRecord(ctx, "policy", "current")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s (revision %d)\n", r.Value, r.Revision)
	// Output:
	// 1 <nil>
	// true
	// 2 <nil>
	// true
	// signed policy, sequence 2 (revision 2)
}
