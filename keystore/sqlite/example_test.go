package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/phicrypt/phicrypt/keystore/sqlite"
	_ "modernc.org/sqlite" // the program's SQLite driver
)

func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "sqlite-store")
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "keys.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	ids, err := store.IDs(context.Background())
	fmt.Println(len(ids), err)
	// Output: 0 <nil>
}
