package keystore_test

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/storetest"
	"github.com/stretchr/testify/require"
)

// SQL statements that fill kind 'policy' with $1 records named r00001,
// r00002, ... in one statement, as no client of the store would.
const (
	sqliteFillRecords = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
		INSERT INTO phicrypt_records (kind, name, value, revision, updated_at_us)
		SELECT 'policy', printf('r%05d', i), x'01', 1, 0 FROM n`
	postgresFillRecords = `INSERT INTO phicrypt_records (kind, name, value, revision, updated_at_us)
		SELECT 'policy', 'r' || lpad(i::text, 5, '0'), '\x01'::bytea, 1, 0 FROM generate_series(1, $1) AS i`
)

// testSQLRecordListCap fills a kind to MaxListedRecords with raw SQL:
// it lists, in order; one more is refused.
func testSQLRecordListCap(t *testing.T, s keystore.Store, db *sql.DB, fill string) {
	ctx := t.Context()
	r := s.(keystore.Records)
	_, err := db.ExecContext(ctx, fill, keystore.MaxListedRecords)
	require.NoError(t, err)
	list, err := r.ListRecords(ctx, "policy")
	require.NoError(t, err)
	require.Len(t, list, keystore.MaxListedRecords)
	require.Equal(t, "r00001", list[0].Name)
	require.Equal(t, "r10000", list[len(list)-1].Name)
	require.Equal(t, time.Unix(0, 0).UTC(), list[0].UpdatedAt)

	_, err = r.PutRecord(ctx, "policy", "one too many", []byte("v"), 0)
	require.NoError(t, err)
	_, err = r.ListRecords(ctx, "policy")
	require.ErrorIs(t, err, keystore.ErrInvalid)
	require.ErrorContains(t, err, "more than 10000 records of kind policy")
	other, err := r.ListRecords(ctx, "policy-b")
	require.NoError(t, err)
	require.Empty(t, other, "the cap is per kind")
}

// testSQLRecordsSchema checks, with raw SQL, that the records table itself
// holds the caps whatever a client writes, and that a row no write could
// have made is refused on reading.
func testSQLRecordsSchema(t *testing.T, s keystore.Store, db *sql.DB) {
	ctx := t.Context()
	r := s.(keystore.Records)
	_, err := r.PutRecord(ctx, "policy", "p", []byte("v"), 0)
	require.NoError(t, err)

	insert := `INSERT INTO phicrypt_records (kind, name, value, revision, updated_at_us) VALUES ($1, $2, $3, $4, 0)`
	for what, args := range map[string][]any{
		"a duplicate":        {"policy", "p", []byte("v"), 1},
		"an upper-case kind": {"Policy", "q", []byte("v"), 1},
		"an empty kind":      {"", "q", []byte("v"), 1},
		"a long kind":        {strings.Repeat("k", keystore.MaxRecordKindLen+1), "q", []byte("v"), 1},
		"an empty name":      {"policy", "", []byte("v"), 1},
		"a long name":        {"policy", strings.Repeat("é", keystore.MaxRecordNameLen/2+1), []byte("v"), 1},
		"an empty value":     {"policy", "q", []byte{}, 1},
		"a long value":       {"policy", "q", make([]byte, keystore.MaxRecordValueLen+1), 1},
		"revision 0":         {"policy", "q", []byte("v"), 0},
	} {
		_, err := db.ExecContext(ctx, insert, args...)
		require.Error(t, err, what)
	}
	_, err = db.ExecContext(ctx, insert, strings.Repeat("k", keystore.MaxRecordKindLen), strings.Repeat("é", keystore.MaxRecordNameLen/2),
		make([]byte, keystore.MaxRecordValueLen), 1)
	require.NoError(t, err, "the largest record")

	// A year-10000 update time fits the column but no write makes it.
	_, err = db.ExecContext(ctx, `UPDATE phicrypt_records SET updated_at_us = $1 WHERE name = 'p'`,
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro())
	require.NoError(t, err)
	_, err = r.GetRecord(ctx, "policy", "p")
	require.ErrorContains(t, err, "record of kind policy #")
	require.ErrorContains(t, err, "is damaged")
}

// testSQLRecordsAfterMigration builds a schema 2 store by hand (schema 1
// and the usage column), opens it: it migrates to the newest schema once,
// keeps its branch key, and keeps records.
func testSQLRecordsAfterMigration(t *testing.T, b storetest.Backend, loc string, db *sql.DB, schema1 []string) {
	ctx := t.Context()
	stmts := append([]string{`CREATE TABLE phicrypt_schema_migrations (version INTEGER PRIMARY KEY, applied_at_us BIGINT NOT NULL)`}, schema1...)
	stmts = append(stmts,
		`ALTER TABLE phicrypt_branch_key_versions ADD COLUMN usage BIGINT NOT NULL DEFAULT 0 CHECK (usage >= 0)`,
		`INSERT INTO phicrypt_schema_migrations (version, applied_at_us) VALUES (1, 0), (2, 0)`,
		`INSERT INTO phicrypt_branch_keys (branch_key_id) VALUES ('tenant')`)
	for _, stmt := range stmts {
		_, err := db.ExecContext(ctx, stmt)
		require.NoError(t, err)
	}
	v := storetest.NewVersion("tenant", keystore.StateActive)
	v.Usage = 12
	_, err := db.ExecContext(ctx, `INSERT INTO phicrypt_branch_key_versions
		(branch_key_id, version, kms_key_arn, ciphertext, created_at_us, state, usage) VALUES ($1, $2, $3, $4, $5, 'active', 12)`,
		v.BranchKeyID, v.Version, v.KMSKeyARN, v.Ciphertext, v.CreatedAt.UnixMicro())
	require.NoError(t, err)

	for round := range 2 {
		s, err := b.Open(ctx, loc)
		require.NoError(t, err)
		vs := storetest.RequireOneActive(t, s, "tenant")
		require.Len(t, vs, 1)
		storetest.RequireVersion(t, v, vs[0])
		rev, err := s.(keystore.Records).PutRecord(ctx, "policy", "p", []byte("v"), uint64(round))
		require.NoError(t, err)
		require.EqualValues(t, round+1, rev)
		require.NoError(t, s.Close())
	}
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
