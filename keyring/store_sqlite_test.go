package keyring_test

import (
	"database/sql"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"
)

func sqliteBackend() storeBackend {
	return storeBackend{
		kind: "sqlite",
		// A path with characters a DSN would misread.
		fresh:        func(t *testing.T) string { return filepath.Join(t.TempDir(), "branch keys?#%.db") },
		futureSchema: func(t *testing.T, loc string) { futureSQLSchema(t, rawSQLite(t, loc)) },
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

func TestSQLiteStore(t *testing.T) { runStoreConformance(t, sqliteBackend()) }

func TestSQLiteStoreTwoProcesses(t *testing.T) {
	runTwoProcessRotation(t, "sqlite", sqliteBackend().fresh(t))
}

func TestSQLiteStoreTwoProcessUsage(t *testing.T) {
	runTwoProcessUsage(t, "sqlite", sqliteBackend().fresh(t))
}

func TestSQLiteStoreSchema(t *testing.T) {
	b := sqliteBackend()
	loc := b.fresh(t)
	testSQLSchema(t, b.open(t, loc), rawSQLite(t, loc))
}

func TestSQLiteStoreMigratesSchema1(t *testing.T) {
	loc := sqliteBackend().fresh(t)
	testSQLMigrationFromSchema1(t, "sqlite", loc, rawSQLite(t, loc), sqliteSchema1)
}

func TestSQLiteStoreConcurrentOpen(t *testing.T) {
	loc := sqliteBackend().fresh(t)
	testConcurrentOpen(t, "sqlite", loc, rawSQLite(t, loc))
}

func TestSQLiteStoreFileAtPath(t *testing.T) {
	b := sqliteBackend()
	loc := b.fresh(t)
	s := b.open(t, loc)
	require.NoError(t, s.Create(t.Context(), newVersion("tenant", keyring.StateActive)))
	require.FileExists(t, loc, "the database is at the path given, special characters and all")
}
