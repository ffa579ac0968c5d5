package keystore_test

import (
	"crypto/rand"
	"database/sql"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/storetest"
	"github.com/stretchr/testify/require"
)

// testSQLSchema checks, with raw SQL on the store's own database, that the
// schema itself holds the invariants, whatever a client does: one active
// version per branch key, known states only, the caps, no negative usage;
// a destroyed version without ciphertext and nothing else without it; and
// that schemas 1 to 5 are recorded once each.
func testSQLSchema(t *testing.T, s keystore.Store, db *sql.DB) {
	ctx := t.Context()
	v0 := storetest.NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Create(ctx, v0))
	v1 := storetest.NewVersion("tenant", keystore.StateActive)
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
	require.Equal(t, []int{1, 2, 3, 4, 5}, versions)

	_, err = db.ExecContext(ctx, `UPDATE phicrypt_branch_key_versions SET state = 'active' WHERE version = $1`, v0.Version)
	require.Error(t, err, "the partial unique index allows one active version")
	require.Contains(t, strings.ToLower(err.Error()), "unique")

	insert := `INSERT INTO phicrypt_branch_key_versions (branch_key_id, version, kms_key_arn, ciphertext, created_at_us, state)
		VALUES ($1, $2, $3, $4, $5, $6)`
	_, err = db.ExecContext(ctx, insert, "tenant", keystore.NewBranchKeyVersion(), testARN, []byte{1}, 0, "active")
	require.Error(t, err, "a second active version")
	_, err = db.ExecContext(ctx, insert, "tenant", keystore.NewBranchKeyVersion(), testARN, []byte{1}, 0, "destroyed")
	require.Error(t, err, "a destroyed version with material")
	_, err = db.ExecContext(ctx, insert, "tenant", keystore.NewBranchKeyVersion(), testARN, []byte{}, 0, "retired")
	require.Error(t, err, "a live version without material")
	_, err = db.ExecContext(ctx, insert, "tenant", keystore.NewBranchKeyVersion(), testARN, []byte{1}, 0, "shredded")
	require.Error(t, err, "an unknown state")
	require.NoError(t, s.Destroy(ctx, "tenant", v0.Version))
	_, err = db.ExecContext(ctx, `UPDATE phicrypt_branch_key_versions SET ciphertext = $1 WHERE version = $2`, []byte{1}, v0.Version)
	require.Error(t, err, "material back into a destroyed version")
	var n int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT length(ciphertext) FROM phicrypt_branch_key_versions WHERE version = $1`, v0.Version).Scan(&n))
	require.Zero(t, n, "the destroyed version's row holds no ciphertext")
	_, err = db.ExecContext(ctx, insert, "tenant", keystore.NewBranchKeyVersion(), testARN, wrappedKey(keystore.MaxWrappedBranchKeyLen+1), 0, "retired")
	require.Error(t, err, "an oversized ciphertext")
	_, err = db.ExecContext(ctx, insert, "nobody", keystore.NewBranchKeyVersion(), testARN, []byte{1}, 0, "active")
	require.Error(t, err, "a version of a branch key that does not exist")
	_, err = db.ExecContext(ctx, insert, "tenant", v1.Version, testARN, []byte{1}, 0, "retired")
	require.Error(t, err, "a duplicate version")
	_, err = db.ExecContext(ctx, `UPDATE phicrypt_branch_key_versions SET usage = -1 WHERE version = $1`, v0.Version)
	require.Error(t, err, "a negative usage")

	require.Len(t, storetest.RequireOneActive(t, s, "tenant"), 2)
}

// testConcurrentOpen opens one new store from several goroutines at once:
// every open succeeds and the schema is migrated once.
func testConcurrentOpen(t *testing.T, b storetest.Backend, loc string, db *sql.DB) {
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := b.Open(t.Context(), loc)
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
	require.Equal(t, 5, count, "schemas 1 to 5, once each")
}

func futureSQLSchema(t *testing.T, db *sql.DB) {
	_, err := db.ExecContext(t.Context(), `INSERT INTO phicrypt_schema_migrations (version, applied_at_us) VALUES (99, 0)`)
	require.NoError(t, err)
}

// Schema 1 of the SQL stores, as phicrypt before usage counters made it.
var (
	sqliteSchema1 = []string{
		`CREATE TABLE phicrypt_branch_keys (
			branch_key_id TEXT PRIMARY KEY CHECK (length(CAST(branch_key_id AS BLOB)) BETWEEN 1 AND 256)
		)`,
		`CREATE TABLE phicrypt_branch_key_versions (
			seq INTEGER PRIMARY KEY AUTOINCREMENT,
			branch_key_id TEXT NOT NULL REFERENCES phicrypt_branch_keys (branch_key_id),
			version TEXT NOT NULL CHECK (length(version) = 36),
			kms_key_arn TEXT NOT NULL,
			ciphertext BLOB NOT NULL CHECK (length(ciphertext) BETWEEN 1 AND 6144),
			created_at_us INTEGER NOT NULL,
			state TEXT NOT NULL CHECK (state IN ('active', 'decrypt_only', 'retired')),
			UNIQUE (branch_key_id, version)
		)`,
		`CREATE UNIQUE INDEX phicrypt_branch_key_one_active
			ON phicrypt_branch_key_versions (branch_key_id) WHERE state = 'active'`,
	}
	postgresSchema1 = []string{
		`CREATE TABLE phicrypt_branch_keys (
			branch_key_id TEXT PRIMARY KEY CHECK (octet_length(branch_key_id) BETWEEN 1 AND 256)
		)`,
		`CREATE TABLE phicrypt_branch_key_versions (
			seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			branch_key_id TEXT NOT NULL REFERENCES phicrypt_branch_keys (branch_key_id),
			version TEXT NOT NULL CHECK (length(version) = 36),
			kms_key_arn TEXT NOT NULL,
			ciphertext BYTEA NOT NULL CHECK (octet_length(ciphertext) BETWEEN 1 AND 6144),
			created_at_us BIGINT NOT NULL,
			state TEXT NOT NULL CHECK (state IN ('active', 'decrypt_only', 'retired')),
			UNIQUE (branch_key_id, version)
		)`,
		`CREATE UNIQUE INDEX phicrypt_branch_key_one_active
			ON phicrypt_branch_key_versions (branch_key_id) WHERE state = 'active'`,
	}
)

// testSQLMigrationFromSchema1 builds a schema 1 store by hand, with three
// versions of one key (retired, decrypt-only, active), opens it, and checks
// that it migrated in place: everything intact, usage 0, counting works,
// and schemas 2 to 5 are recorded once however often the store is opened.
func testSQLMigrationFromSchema1(t *testing.T, b storetest.Backend, loc string, db *sql.DB, schema1 []string) {
	ctx := t.Context()
	stmts := append([]string{`CREATE TABLE phicrypt_schema_migrations (version INTEGER PRIMARY KEY, applied_at_us BIGINT NOT NULL)`}, schema1...)
	stmts = append(stmts, `INSERT INTO phicrypt_schema_migrations (version, applied_at_us) VALUES (1, 0)`,
		`INSERT INTO phicrypt_branch_keys (branch_key_id) VALUES ('tenant')`)
	for _, stmt := range stmts {
		_, err := db.ExecContext(ctx, stmt)
		require.NoError(t, err)
	}
	var want []keystore.BranchKeyVersion
	for i, st := range []keystore.State{keystore.StateRetired, keystore.StateDecryptOnly, keystore.StateActive} {
		v := storetest.NewVersion("tenant", st)
		v.CreatedAt = time.Date(2025, 1, 1+i, 0, 0, 0, 0, time.UTC)
		_, err := db.ExecContext(ctx, `INSERT INTO phicrypt_branch_key_versions
			(branch_key_id, version, kms_key_arn, ciphertext, created_at_us, state) VALUES ($1, $2, $3, $4, $5, $6)`,
			v.BranchKeyID, v.Version, v.KMSKeyARN, v.Ciphertext, v.CreatedAt.UnixMicro(), st.String())
		require.NoError(t, err)
		want = append(want, v)
	}

	for range 2 {
		s, err := b.Open(ctx, loc)
		require.NoError(t, err)
		vs := storetest.RequireOneActive(t, s, "tenant")
		require.Len(t, vs, 3)
		for i := range want {
			storetest.RequireVersion(t, want[i], vs[i]) // Usage 0 in both
		}
		total, err := s.AddUsage(ctx, "tenant", want[2].Version, 7)
		require.NoError(t, err)
		want[2].Usage += 7
		require.Equal(t, want[2].Usage, total)
		_, err = s.AddUsage(ctx, "tenant", want[0].Version, 1)
		require.ErrorIs(t, err, keystore.ErrConflict, "the retired version")
		require.NoError(t, s.Close())
	}
	// Schema 3 lets a migrated store destroy.
	s, err := b.Open(ctx, loc)
	require.NoError(t, err)
	require.NoError(t, s.Destroy(ctx, "tenant", want[1].Version))
	got, err := s.Get(ctx, "tenant", want[1].Version)
	require.NoError(t, err)
	storetest.RequireVersion(t, want[1].Tombstone(), got)
	require.NoError(t, s.Close())
	var versions []int
	rows, err := db.QueryContext(ctx, `SELECT version FROM phicrypt_schema_migrations ORDER BY version`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var v int
		require.NoError(t, rows.Scan(&v))
		versions = append(versions, v)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []int{1, 2, 3, 4, 5}, versions)
}

const testARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

func wrappedKey(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
