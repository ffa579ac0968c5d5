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
