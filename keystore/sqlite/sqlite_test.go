package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/phicrypt/phicrypt/keystore/sqlite"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"
)

// New works on the application's own database handle, opened with the
// store's settings (DSN), and leaves it open on Close; a handle without
// them (no foreign keys) is refused with advice.
func TestNewOnTheApplicationsDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite", sqlite.DSN(path))
	require.NoError(t, err)
	defer db.Close()
	store, err := sqlite.New(ctx, db)
	require.NoError(t, err)
	ids, err := store.IDs(ctx)
	require.NoError(t, err)
	require.Empty(t, ids)
	require.NoError(t, store.Close())
	require.NoError(t, db.PingContext(ctx), "the application's database stays open")

	plain, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "plain.db"))
	require.NoError(t, err)
	defer plain.Close()
	_, err = sqlite.New(ctx, plain)
	require.ErrorContains(t, err, "sqlite.DSN")
}

// A handle the store cannot rely on is refused with advice, never used:
// nil, in memory, or opened without DSN's settings.
func TestNewRefusesHandlesItCannotRelyOn(t *testing.T) {
	ctx := context.Background()
	_, err := sqlite.New(ctx, nil)
	require.ErrorContains(t, err, "nil")
	for name, dsn := range map[string]string{
		"in memory":         "file::memory:?_pragma=foreign_keys(1)&_txlock=immediate",
		"foreign keys only": "file:" + filepath.Join(t.TempDir(), "fk.db") + "?_pragma=foreign_keys(1)",
	} {
		db, err := sql.Open("sqlite", dsn)
		require.NoError(t, err)
		_, err = sqlite.New(ctx, db)
		require.Error(t, err, name)
		require.ErrorContains(t, err, "sqlite", name)
		db.Close()
	}
}
