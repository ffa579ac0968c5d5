package keystore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
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

// TestSQLiteStoreDestroyErasesFile: after Destroy, neither the database
// file nor its WAL holds the destroyed wrapped key (secure_delete zeroes
// what the update frees, and the checkpoint moves it into the file),
// while a live version's is still there.
func TestSQLiteStoreDestroyErasesFile(t *testing.T) {
	b := sqliteBackend()
	loc := b.Fresh(t)
	s := mustOpen(t, b, loc)
	ctx := t.Context()
	for _, size := range []int{184, 6000} { // in the row, and in overflow pages
		id := fmt.Sprintf("patient-%d", size)
		v0 := storetest.NewVersion(id, keystore.StateActive)
		v0.Ciphertext = wrappedKey(size)
		require.NoError(t, s.Create(ctx, v0))
		v1 := storetest.NewVersion(id, keystore.StateActive)
		v1.Ciphertext = wrappedKey(size)
		require.NoError(t, s.Rotate(ctx, id, v0.Version, v1))
		require.True(t, fileHolds(t, loc, v0.Ciphertext[:64]), "before: the material is in the file")

		require.NoError(t, s.Destroy(ctx, id, v0.Version))
		require.False(t, fileHolds(t, loc, v0.Ciphertext[:64]), "the destroyed material is gone from the database and its WAL")
		require.True(t, fileHolds(t, loc, v1.Ciphertext[:64]), "the live version's material is kept")
		require.NoError(t, s.DestroyKey(ctx, id))
		require.False(t, fileHolds(t, loc, v1.Ciphertext[:64]))
	}
}

// fileHolds reports whether the database at path, or its WAL, contains b.
func fileHolds(t *testing.T, path string, b []byte) bool {
	for _, p := range []string{path, path + "-wal"} {
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		require.NoError(t, err)
		if bytes.Contains(data, b) {
			return true
		}
	}
	return false
}

// TestSQLiteStoreRefusesHandleWithoutSecureDelete: New needs DSN's
// secure_delete, without which freed pages keep destroyed material.
func TestSQLiteStoreRefusesHandleWithoutSecureDelete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	dsn := strings.Replace(sqlite.DSN(path), "&_pragma=secure_delete%281%29", "", 1)
	require.NotEqual(t, sqlite.DSN(path), dsn)
	db, err := sql.Open("sqlite", dsn)
	require.NoError(t, err)
	defer db.Close()
	_, err = sqlite.New(t.Context(), db)
	require.ErrorContains(t, err, "secure_delete")

	ok, err := sql.Open("sqlite", sqlite.DSN(path))
	require.NoError(t, err)
	defer ok.Close()
	s, err := sqlite.New(t.Context(), ok)
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

// A database file sqlite.Open makes, and its WAL, are its owner's only:
// they name branch key ids, which may be PHI.
func TestSQLiteStoreFilesAreOwnerOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.db")
	s, err := sqlite.Open(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Create(ctx, storetest.NewVersion("patient-4711", keystore.StateActive)))
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		require.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), p)
	}
}
