package keystore_test

import (
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/sqlite"
	"github.com/phicrypt/phicrypt/keystore/storetest"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"
)

func sqliteBackend() storetest.Backend {
	return storetest.Backend{
		Name: "sqlite",
		// A path with characters a DSN would misread.
		Fresh: func(t *testing.T) string { return filepath.Join(t.TempDir(), "branch keys?#%.db") },
		Open: func(ctx context.Context, loc string) (keystore.Store, error) {
			return sqlite.Open(ctx, loc)
		},
		FutureSchema: func(t *testing.T, loc string) { futureSQLSchema(t, rawSQLite(t, loc)) },
	}
}

// rawSQLite opens the store's database file directly, bypassing the store.
func rawSQLite(t *testing.T, path string) *sql.DB {
	t.Helper()
	uri := "file:" + (&url.URL{Path: path}).EscapedPath()
	db, err := sql.Open("sqlite", uri+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestSQLiteStore(t *testing.T) { storetest.Run(t, sqliteBackend()) }

func TestSQLiteStoreTwoProcesses(t *testing.T) {
	storetest.RunTwoProcesses(t, sqliteBackend(), "TestSQLiteStoreChild")
}

// TestSQLiteStoreChild is a child process of TestSQLiteStoreTwoProcesses.
func TestSQLiteStoreChild(t *testing.T) { storetest.Child(t, sqliteBackend()) }

func TestSQLiteStoreSchema(t *testing.T) {
	b := sqliteBackend()
	loc := b.Fresh(t)
	testSQLSchema(t, mustOpen(t, b, loc), rawSQLite(t, loc))
}

func TestSQLiteStoreMigratesSchema1(t *testing.T) {
	loc := sqliteBackend().Fresh(t)
	testSQLMigrationFromSchema1(t, sqliteBackend(), loc, rawSQLite(t, loc), sqliteSchema1)
}

func TestSQLiteStoreConcurrentOpen(t *testing.T) {
	loc := sqliteBackend().Fresh(t)
	testConcurrentOpen(t, sqliteBackend(), loc, rawSQLite(t, loc))
}

func TestSQLiteStoreFileAtPath(t *testing.T) {
	b := sqliteBackend()
	loc := b.Fresh(t)
	s := mustOpen(t, b, loc)
	require.NoError(t, s.Create(t.Context(), storetest.NewVersion("tenant", keystore.StateActive)))
	require.FileExists(t, loc, "the database is at the path given, special characters and all")
}
