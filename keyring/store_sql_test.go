package keyring_test

import (
	"database/sql"
	"strings"
	"sync"
	"testing"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/stretchr/testify/require"
)

// testSQLSchema checks, with raw SQL on the store's own database, that the
// schema itself holds the invariants, whatever a client does: one active
// version per branch key, known states only, the caps, no negative usage;
// and that schemas 1 and 2 are recorded once each.
func testSQLSchema(t *testing.T, s keyring.Store, db *sql.DB) {
	ctx := t.Context()
	v0 := newVersion("tenant", keyring.StateActive)
	require.NoError(t, s.Create(ctx, v0))
	v1 := newVersion("tenant", keyring.StateActive)
	require.NoError(t, s.Rotate(ctx, "tenant", v0.Version, v1))

	var versions []int
	rows, err := db.QueryContext(ctx, `SELECT version FROM phicrypt_schema_migrations ORDER BY version`)
	require.NoError(t, err)
	for rows.Next() {
		var v int
		require.NoError(t, rows.Scan(&v))
		versions = append(versions, v)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []int{1, 2}, versions)

	_, err = db.ExecContext(ctx, `UPDATE phicrypt_branch_key_versions SET state = 'active' WHERE version = $1`, v0.Version)
	require.Error(t, err, "the partial unique index allows one active version")
	require.Contains(t, strings.ToLower(err.Error()), "unique")

	insert := `INSERT INTO phicrypt_branch_key_versions (branch_key_id, version, kms_key_arn, ciphertext, created_at_us, state)
		VALUES ($1, $2, $3, $4, $5, $6)`
	_, err = db.ExecContext(ctx, insert, "tenant", keyring.NewBranchKeyVersion(), testARN, []byte{1}, 0, "active")
	require.Error(t, err, "a second active version")
	_, err = db.ExecContext(ctx, insert, "tenant", keyring.NewBranchKeyVersion(), testARN, []byte{1}, 0, "destroyed")
	require.Error(t, err, "an unknown state")
	_, err = db.ExecContext(ctx, insert, "tenant", keyring.NewBranchKeyVersion(), testARN, wrappedKey(keyring.MaxWrappedBranchKeyLen+1), 0, "retired")
	require.Error(t, err, "an oversized ciphertext")
	_, err = db.ExecContext(ctx, insert, "nobody", keyring.NewBranchKeyVersion(), testARN, []byte{1}, 0, "active")
	require.Error(t, err, "a version of a branch key that does not exist")
	_, err = db.ExecContext(ctx, insert, "tenant", v1.Version, testARN, []byte{1}, 0, "retired")
	require.Error(t, err, "a duplicate version")
	_, err = db.ExecContext(ctx, `UPDATE phicrypt_branch_key_versions SET usage = -1 WHERE version = $1`, v0.Version)
	require.Error(t, err, "a negative usage")

	require.Len(t, requireOneActive(t, s, "tenant"), 2)
}

// testConcurrentOpen opens one new store from several goroutines at once:
// every open succeeds and the schema is migrated once.
func testConcurrentOpen(t *testing.T, kind, loc string, db *sql.DB) {
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := openStore(t.Context(), kind, loc)
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	var count int
	require.NoError(t, db.QueryRowContext(t.Context(), `SELECT count(*) FROM phicrypt_schema_migrations`).Scan(&count))
	require.Equal(t, 2, count, "schemas 1 and 2, once each")
}

func futureSQLSchema(t *testing.T, db *sql.DB) {
	_, err := db.ExecContext(t.Context(), `INSERT INTO phicrypt_schema_migrations (version, applied_at_us) VALUES (99, 0)`)
	require.NoError(t, err)
}
