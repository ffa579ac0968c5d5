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

// Schema 4 of the SQL stores (beyond schema 1, which sql_test.go has), as
// phicrypt made it before per-version records had a table of their own:
// the versions table with usage and destroyed states, and one records
// table for every kind.
var (
	sqliteSchema4 = []string{
		`CREATE TABLE phicrypt_branch_keys (
			branch_key_id TEXT PRIMARY KEY CHECK (length(CAST(branch_key_id AS BLOB)) BETWEEN 1 AND 256)
		)`,
		`CREATE TABLE phicrypt_branch_key_versions (
			seq INTEGER PRIMARY KEY AUTOINCREMENT,
			branch_key_id TEXT NOT NULL REFERENCES phicrypt_branch_keys (branch_key_id),
			version TEXT NOT NULL CHECK (length(version) = 36),
			kms_key_arn TEXT NOT NULL,
			ciphertext BLOB NOT NULL CHECK (length(ciphertext) <= 6144 AND (state = 'destroyed') = (length(ciphertext) = 0)),
			created_at_us INTEGER NOT NULL,
			state TEXT NOT NULL CHECK (state IN ('active', 'decrypt_only', 'retired', 'destroyed')),
			usage BIGINT NOT NULL DEFAULT 0 CHECK (usage >= 0),
			UNIQUE (branch_key_id, version)
		)`,
		`CREATE UNIQUE INDEX phicrypt_branch_key_one_active
			ON phicrypt_branch_key_versions (branch_key_id) WHERE state = 'active'`,
		`CREATE TABLE phicrypt_records (
			kind TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 64 AND kind NOT GLOB '*[^a-z0-9-]*'),
			name TEXT NOT NULL CHECK (length(CAST(name AS BLOB)) BETWEEN 1 AND 512),
			value BLOB NOT NULL CHECK (typeof(value) = 'blob' AND length(value) BETWEEN 1 AND 65536),
			revision BIGINT NOT NULL CHECK (revision >= 1),
			updated_at_us BIGINT NOT NULL,
			PRIMARY KEY (kind, name)
		)`,
	}
	postgresSchema4 = []string{
		`CREATE TABLE phicrypt_branch_keys (
			branch_key_id TEXT PRIMARY KEY CHECK (octet_length(branch_key_id) BETWEEN 1 AND 256)
		)`,
		`CREATE TABLE phicrypt_branch_key_versions (
			seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			branch_key_id TEXT NOT NULL REFERENCES phicrypt_branch_keys (branch_key_id),
			version TEXT NOT NULL CHECK (length(version) = 36),
			kms_key_arn TEXT NOT NULL,
			ciphertext BYTEA NOT NULL CHECK (octet_length(ciphertext) <= 6144 AND (state = 'destroyed') = (octet_length(ciphertext) = 0)),
			created_at_us BIGINT NOT NULL,
			state TEXT NOT NULL CHECK (state IN ('active', 'decrypt_only', 'retired', 'destroyed')),
			usage BIGINT NOT NULL DEFAULT 0 CHECK (usage >= 0),
			UNIQUE (branch_key_id, version)
		)`,
		`CREATE UNIQUE INDEX phicrypt_branch_key_one_active
			ON phicrypt_branch_key_versions (branch_key_id) WHERE state = 'active'`,
		`CREATE TABLE phicrypt_records (
			kind TEXT NOT NULL CHECK (kind ~ '^[a-z0-9-]{1,64}$'),
			name TEXT NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 512),
			value BYTEA NOT NULL CHECK (octet_length(value) BETWEEN 1 AND 65536),
			revision BIGINT NOT NULL CHECK (revision >= 1),
			updated_at_us BIGINT NOT NULL,
			PRIMARY KEY (kind, name)
		)`,
	}
)

// testSQLVersionRecordsFromSchema4 builds a schema 4 store by hand, whose
// one records table holds per-version records (an escrow copy, a recovery
// mark) beside a policy, opens it twice: it migrates to schema 5 once,
// moves the per-version records, unchanged (value, revision, update time),
// into phicrypt_version_records, leaves the others where they were, and
// reads, lists and updates them all as before.
func testSQLVersionRecordsFromSchema4(t *testing.T, b storetest.Backend, loc string, db *sql.DB, schema4 []string) {
	ctx := t.Context()
	stmts := append([]string{`CREATE TABLE phicrypt_schema_migrations (version INTEGER PRIMARY KEY, applied_at_us BIGINT NOT NULL)`}, schema4...)
	stmts = append(stmts, `INSERT INTO phicrypt_schema_migrations (version, applied_at_us) VALUES (1, 0), (2, 0), (3, 0), (4, 0)`,
		`INSERT INTO phicrypt_branch_keys (branch_key_id) VALUES ('tenant')`)
	for _, stmt := range stmts {
		_, err := db.ExecContext(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	v := storetest.NewVersion("tenant", keystore.StateActive)
	_, err := db.ExecContext(ctx, `INSERT INTO phicrypt_branch_key_versions
		(branch_key_id, version, kms_key_arn, ciphertext, created_at_us, state, usage) VALUES ($1, $2, $3, $4, $5, 'active', 3)`,
		v.BranchKeyID, v.Version, v.KMSKeyARN, v.Ciphertext, v.CreatedAt.UnixMicro())
	require.NoError(t, err)
	v.Usage = 3

	updated := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	name := keystore.VersionRecordName(v.BranchKeyID, v.Version)
	want := []keystore.Record{ // in RecordKinds order
		{Kind: "policy", Name: "tenant", Value: []byte("signed policy"), Revision: 2, UpdatedAt: updated},
		{Kind: "version", Name: name, Value: []byte("not a per-version kind"), Revision: 1, UpdatedAt: updated},
		{Kind: "version-escrow", Name: name, Value: []byte("sealed copy"), Revision: 3, UpdatedAt: updated},
		{Kind: "version-recovered", Name: name, Value: []byte{1}, Revision: 1, UpdatedAt: updated},
	}
	for _, r := range want {
		_, err := db.ExecContext(ctx, `INSERT INTO phicrypt_records (kind, name, value, revision, updated_at_us) VALUES ($1, $2, $3, $4, $5)`,
			r.Kind, r.Name, r.Value, int64(r.Revision), r.UpdatedAt.UnixMicro())
		require.NoError(t, err)
	}

	for range 2 {
		s, err := b.Open(ctx, loc)
		require.NoError(t, err)
		vs := storetest.RequireOneActive(t, s, "tenant")
		require.Len(t, vs, 1)
		storetest.RequireVersion(t, v, vs[0])
		r := s.(keystore.Records)
		for _, w := range want {
			got, err := r.GetRecord(ctx, w.Kind, w.Name)
			require.NoError(t, err, w.Kind)
			require.Equal(t, w, got)
			list, err := r.ListRecords(ctx, w.Kind)
			require.NoError(t, err)
			require.Equal(t, []keystore.Record{w}, list)
		}
		kinds, err := s.(keystore.RecordKindLister).RecordKinds(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"policy", "version", "version-escrow", "version-recovered"}, kinds)
		require.NoError(t, s.Close())
	}
	require.Equal(t, []string{"policy", "version"}, sqlKinds(t, db, "phicrypt_records"), "the per-version records moved")
	require.Equal(t, []string{"version-escrow", "version-recovered"}, sqlKinds(t, db, "phicrypt_version_records"))

	s, err := b.Open(ctx, loc)
	require.NoError(t, err)
	defer s.Close()
	rev, err := s.(keystore.Records).PutRecord(ctx, "version-escrow", name, []byte("another copy"), 3)
	require.NoError(t, err, "the moved record's revision goes on")
	require.EqualValues(t, 4, rev)
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

// sqlKinds lists the kinds of the rows of table, read with raw SQL.
func sqlKinds(t *testing.T, db *sql.DB, table string) []string {
	rows, err := db.QueryContext(t.Context(), `SELECT DISTINCT kind FROM `+table+` ORDER BY kind`)
	require.NoError(t, err)
	defer rows.Close()
	kinds := []string{}
	for rows.Next() {
		var k string
		require.NoError(t, rows.Scan(&k))
		kinds = append(kinds, k)
	}
	require.NoError(t, rows.Err())
	return kinds
}

// testSQLVersionRecordsTable checks, with raw SQL, that the store keeps
// the per-version kinds in phicrypt_version_records and every other kind
// in phicrypt_records, and that the table itself holds the caps and
// refuses a kind that is not per-version, whatever a client writes.
func testSQLVersionRecordsTable(t *testing.T, s keystore.Store, db *sql.DB) {
	ctx := t.Context()
	r := s.(keystore.Records)
	name := keystore.VersionRecordName("tenant", keystore.NewBranchKeyVersion())
	for _, kind := range []string{"policy", "version", "versions-x", "version-escrow", "version-recovered", "version-"} {
		_, err := r.PutRecord(ctx, kind, name, []byte("v"), 0)
		require.NoError(t, err, kind)
	}
	require.Equal(t, []string{"policy", "version", "versions-x"}, sqlKinds(t, db, "phicrypt_records"))
	require.Equal(t, []string{"version-", "version-escrow", "version-recovered"}, sqlKinds(t, db, "phicrypt_version_records"))
	kinds, err := s.(keystore.RecordKindLister).RecordKinds(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"policy", "version", "version-", "version-escrow", "version-recovered", "versions-x"}, kinds)

	insert := `INSERT INTO phicrypt_version_records (kind, name, value, revision, updated_at_us) VALUES ($1, $2, $3, $4, 0)`
	for what, args := range map[string][]any{
		"a duplicate":            {"version-escrow", name, []byte("v"), 1},
		"a kind not per-version": {"policy", "q", []byte("v"), 1},
		"a prefix in the middle": {"x-version-escrow", "q", []byte("v"), 1},
		"an upper-case kind":     {"Version-escrow", "q", []byte("v"), 1},
		"a long kind":            {"version-" + strings.Repeat("k", keystore.MaxRecordKindLen-7), "q", []byte("v"), 1},
		"a bad character":        {"version-a_b", "q", []byte("v"), 1},
		"an empty name":          {"version-escrow", "", []byte("v"), 1},
		"a long name":            {"version-escrow", strings.Repeat("é", keystore.MaxRecordNameLen/2+1), []byte("v"), 1},
		"an empty value":         {"version-escrow", "q", []byte{}, 1},
		"a long value":           {"version-escrow", "q", make([]byte, keystore.MaxRecordValueLen+1), 1},
		"revision 0":             {"version-escrow", "q", []byte("v"), 0},
	} {
		_, err := db.ExecContext(ctx, insert, args...)
		require.Error(t, err, what)
	}
	_, err = db.ExecContext(ctx, insert, "version-"+strings.Repeat("k", keystore.MaxRecordKindLen-8), strings.Repeat("é", keystore.MaxRecordNameLen/2),
		make([]byte, keystore.MaxRecordValueLen), 1)
	require.NoError(t, err, "the largest record")

	// A row no write makes is refused on reading, as in phicrypt_records.
	_, err = db.ExecContext(ctx, `UPDATE phicrypt_version_records SET updated_at_us = $1 WHERE kind = 'version-escrow'`,
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro())
	require.NoError(t, err)
	_, err = r.GetRecord(ctx, "version-escrow", name)
	require.ErrorContains(t, err, "record of kind version-escrow #")
	require.ErrorContains(t, err, "is damaged")
	require.NotContains(t, err.Error(), name)
}

// SQL statements that fill kind 'version-escrow' with $1 records named
// r00001, r00002, ... in one statement.
const (
	sqliteFillVersionRecords = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
		INSERT INTO phicrypt_version_records (kind, name, value, revision, updated_at_us)
		SELECT 'version-escrow', printf('r%05d', i), x'01', 1, 0 FROM n`
	postgresFillVersionRecords = `INSERT INTO phicrypt_version_records (kind, name, value, revision, updated_at_us)
		SELECT 'version-escrow', 'r' || lpad(i::text, 5, '0'), '\x01'::bytea, 1, 0 FROM generate_series(1, $1) AS i`
)

// testSQLVersionRecordListCap: ListRecords of a per-version kind holds
// the same cap as any other kind, and RecordKinds still names the kind
// once however many records it has.
func testSQLVersionRecordListCap(t *testing.T, s keystore.Store, db *sql.DB, fill string) {
	ctx := t.Context()
	r := s.(keystore.Records)
	_, err := db.ExecContext(ctx, fill, keystore.MaxListedRecords)
	require.NoError(t, err)
	list, err := r.ListRecords(ctx, "version-escrow")
	require.NoError(t, err)
	require.Len(t, list, keystore.MaxListedRecords)
	require.Equal(t, "r00001", list[0].Name)
	require.Equal(t, "r10000", list[len(list)-1].Name)
	_, err = r.PutRecord(ctx, "version-escrow", "one too many", []byte("v"), 0)
	require.NoError(t, err)
	_, err = r.ListRecords(ctx, "version-escrow")
	require.ErrorIs(t, err, keystore.ErrInvalid)
	require.ErrorContains(t, err, "more than 10000 records of kind version-escrow")
	got, err := r.GetRecord(ctx, "version-escrow", "r05000")
	require.NoError(t, err, "one record of a kind past the cap is still read")
	require.EqualValues(t, 1, got.Revision)
	_, err = r.PutRecord(ctx, "policy", "p", []byte("v"), 0)
	require.NoError(t, err)
	kinds, err := s.(keystore.RecordKindLister).RecordKinds(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"policy", "version-escrow"}, kinds)
}
