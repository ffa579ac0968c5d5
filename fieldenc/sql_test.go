package fieldenc_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"
)

// Row is a patients row as the service stores it.
type Row struct {
	ID      string                     `phi:"rowid"`
	Name    fieldenc.Sealed[string]    `phi:"encrypt"`
	SSN     fieldenc.Sealed[string]    `phi:"encrypt,blindindex=ssn_bidx:16,normalize=digits"`
	SSNBidx []byte                     `phi:"index=ssn_bidx"`
	MRN     fieldenc.Sealed[string]    `phi:"encrypt,deterministic"`
	DOB     fieldenc.Sealed[time.Time] `phi:"encrypt"`
	Notes   *fieldenc.Sealed[string]   `phi:"encrypt"`
	Photo   fieldenc.Sealed[[]byte]    `phi:"encrypt"`
}

const rowColumns = "id, name, ssn, ssn_bidx, mrn, dob, notes, photo"

func scanRows(rows *sql.Rows) ([]Row, error) {
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var r Row
		if err := rows.Scan(&r.ID, &r.Name, &r.SSN, &r.SSNBidx, &r.MRN, &r.DOB, &r.Notes, &r.Photo); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func insertRow(ctx context.Context, q querier, r *Row) error {
	_, err := q.ExecContext(ctx, "INSERT INTO patients ("+rowColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
		r.ID, r.Name, r.SSN, r.SSNBidx, r.MRN, r.DOB, r.Notes, r.Photo)
	return err
}

func updateRow(ctx context.Context, q querier, r *Row) error {
	_, err := q.ExecContext(ctx, `UPDATE patients SET name = $2, ssn = $3, ssn_bidx = $4, mrn = $5, dob = $6,
		notes = $7, photo = $8 WHERE id = $1`, r.ID, r.Name, r.SSN, r.SSNBidx, r.MRN, r.DOB, r.Notes, r.Photo)
	return err
}

// selectIn reads the rows whose column is one of values.
func selectIn(ctx context.Context, q querier, column string, values []any) ([]Row, error) {
	marks := make([]string, len(values))
	for i := range values {
		marks[i] = fmt.Sprintf("$%d", i+1)
	}
	rows, err := q.QueryContext(ctx, "SELECT "+rowColumns+" FROM patients WHERE "+column+" IN ("+strings.Join(marks, ", ")+") ORDER BY id", values...)
	if err != nil {
		return nil, err
	}
	return scanRows(rows)
}

type patient struct{ id, name, ssn, mrn, notes string }

func makePatient(i int) patient {
	return patient{
		id:    fmt.Sprintf("p%04d", i),
		name:  fmt.Sprintf("Patient Number %d", i),
		ssn:   fmt.Sprintf("%03d-%02d-%04d", 100+i%800, i%100, 1000+i),
		mrn:   fmt.Sprintf("MRN-%06d", i),
		notes: fmt.Sprintf("note for %d", i),
	}
}

func (p patient) row() Row {
	notes := fieldenc.Of(p.notes)
	return Row{ID: p.id, Name: fieldenc.Of(p.name), SSN: fieldenc.Of(p.ssn), MRN: fieldenc.Of(p.mrn),
		DOB: fieldenc.Of(time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC)), Notes: &notes, Photo: fieldenc.Of([]byte(p.name))}
}

func TestSQLiteLifecycle(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "patients.db"))
	require.NoError(t, err)
	defer db.Close()
	db.SetMaxOpenConns(1)
	runSQLLifecycle(t, db, "BLOB")
}

// TestPostgresLifecycle runs against the PostgreSQL at PHICRYPT_POSTGRES_URL
// (the full suite starts one), in a schema of its own.
func TestPostgresLifecycle(t *testing.T) {
	if db := postgresDB(t); db != nil {
		runSQLLifecycle(t, db, "BYTEA")
	}
}

// postgresDB opens a schema of its own, dropped at the end of the test, in
// the PostgreSQL at PHICRYPT_POSTGRES_URL; nil when none is set outside the
// full suite.
func postgresDB(t *testing.T) *sql.DB {
	base := os.Getenv("PHICRYPT_POSTGRES_URL")
	if base == "" {
		if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
			t.Fatal("the full suite must set PHICRYPT_POSTGRES_URL")
		}
		return nil
	}
	var b [8]byte
	rand.Read(b[:])
	schema := "fieldenc_test_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", base)
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	_, err = admin.Exec("CREATE SCHEMA " + schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		require.NoError(t, err)
	})
	db, err := sql.Open("pgx", withSearchPath(t, base, schema))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func withSearchPath(t *testing.T, conn, schema string) string {
	if !strings.HasPrefix(conn, "postgres://") && !strings.HasPrefix(conn, "postgresql://") {
		return conn + " search_path=" + schema
	}
	u, err := url.Parse(conn)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// runSQLLifecycle: insert sealed rows, find each by blind index and by
// deterministic value, update, rotate mid-way, keep finding every row,
// re-encrypt (interrupted, then resumed), retire the old version, and
// still find and open every row.
func runSQLLifecycle(t *testing.T, db *sql.DB, blobType string) {
	ctx := context.Background()
	_, err := db.ExecContext(ctx, `CREATE TABLE patients (id TEXT PRIMARY KEY, name TEXT, ssn TEXT,
		ssn_bidx `+blobType+`, mrn TEXT, dob TEXT, notes TEXT, photo `+blobType+`)`)
	require.NoError(t, err)
	e := newEnv(t, zeroHC())
	tbl := e.table(t, fieldenc.Config{ReservedUses: 64})
	codec, err := fieldenc.NewCodec[Row](tbl)
	require.NoError(t, err)

	const before, after = 60, 40
	var all []patient
	add := func(n int) {
		for range n {
			p := makePatient(len(all))
			r := p.row()
			require.NoError(t, codec.Seal(ctx, &r))
			require.NoError(t, insertRow(ctx, db, &r))
			all = append(all, p)
		}
	}
	add(before)

	// What the database holds is ciphertext.
	var name, mrn, notes string
	require.NoError(t, db.QueryRowContext(ctx, "SELECT name, mrn, notes FROM patients WHERE id = $1", all[3].id).Scan(&name, &mrn, &notes))
	for _, s := range []string{name, mrn, notes} {
		require.True(t, strings.HasPrefix(s, fieldenc.TextPrefix))
		require.NotContains(t, s, "Patient")
	}

	// Update one row through open, change, seal.
	rows, err := selectIn(ctx, db, "id", []any{all[5].id})
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.NoError(t, codec.Open(ctx, &rows[0]))
	changed := fieldenc.Of("changed notes")
	rows[0].Notes = &changed
	rows[0].SSN.Set("999-99-0005")
	require.NoError(t, codec.Seal(ctx, &rows[0]))
	require.NoError(t, updateRow(ctx, db, &rows[0]))
	all[5].notes, all[5].ssn = "changed notes", "999-99-0005"

	findAll(t, codec, db, all)

	// A process that has not yet seen the rotation (its keyring's cache
	// lifetime is an hour) and keeps writing under the old version.
	staleKeys, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: e.bk, BranchKeyID: e.id,
		CacheTTL: time.Hour, MaxUsesPerVersion: 1 << 30})
	require.NoError(t, err)
	staleTable, err := fieldenc.New(fieldenc.Config{Keys: staleKeys, BranchKeyID: e.id, Table: "patients"})
	require.NoError(t, err)
	staleCodec, err := fieldenc.NewCodec[Row](staleTable)
	require.NoError(t, err)
	warm := makePatient(999).row()
	require.NoError(t, staleCodec.Seal(ctx, &warm))

	e.rotate(t, tbl)
	add(after)
	findAll(t, codec, db, all)

	// Re-encrypt, stopped after two batches, then resumed.
	stopCtx, stop := context.WithCancel(ctx)
	batches := 0
	var seen []fieldenc.Progress
	job := &fieldenc.Reencrypt[Row]{
		DB: db, Codec: codec, Job: "patients-rotation-1", BatchSize: 16,
		Load: func(ctx context.Context, tx *sql.Tx, afterKey string, limit int) ([]Row, error) {
			rows, err := tx.QueryContext(ctx, "SELECT "+rowColumns+" FROM patients WHERE id > $1 ORDER BY id LIMIT $2", afterKey, limit)
			if err != nil {
				return nil, err
			}
			return scanRows(rows)
		},
		Key:  func(r *Row) string { return r.ID },
		Save: func(ctx context.Context, tx *sql.Tx, r *Row) error { return updateRow(ctx, tx, r) },
		Progress: func(p fieldenc.Progress) {
			seen = append(seen, p)
			if batches++; batches == 1 {
				// The stale process writes a row behind the checkpoint.
				late := patient{id: "p0000x", name: "Late Writer", ssn: "555-55-5555", mrn: "MRN-LATE", notes: "late"}
				r := late.row()
				require.NoError(t, staleCodec.Seal(ctx, &r))
				require.NoError(t, insertRow(ctx, db, &r))
				all = append(all, late)
			}
			if batches == 2 {
				stop()
			}
		},
	}
	_, err = job.Run(stopCtx)
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, seen, 2)
	require.Equal(t, int64(32), seen[1].Scanned)
	findAll(t, codec, db, all) // mid-job, every row is found
	p, err := job.Run(ctx)
	require.NoError(t, err)
	require.True(t, p.Done)
	require.Equal(t, int64(3), p.Pass, "pass 1 re-seals, pass 2 finds the late row behind the checkpoint, pass 3 finds nothing")
	require.Equal(t, int64((before+after)+2*(before+after+1)), p.Scanned, "resumed after the checkpoint, no row twice in a pass (the late row arrives behind pass 1)")
	require.Equal(t, int64(before+1), p.Resealed, "only rows under the old version are rewritten, the late one included")
	p, err = job.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, int64((before+after)+2*(before+after+1)), p.Scanned, "a finished job does nothing")

	// Retire the old version: every row is still found and opened.
	versions, err := e.store.List(ctx, e.id)
	require.NoError(t, err)
	require.Len(t, versions, 2)
	require.NoError(t, e.store.SetState(ctx, e.id, versions[0].Version, keystore.StateDecryptOnly, keystore.StateRetired))
	time.Sleep(testTTL + 10*time.Millisecond)
	tbl.Refresh()
	idx, err := codec.IndexValues(ctx, "ssn_bidx", all[0].ssn)
	require.NoError(t, err)
	require.Len(t, idx, 1, "one live version")
	findAll(t, codec, db, all)
}

// findAll finds every patient by blind index and by deterministic MRN and
// checks what opens.
func findAll(t *testing.T, codec *fieldenc.Codec[Row], db *sql.DB, all []patient) {
	t.Helper()
	ctx := context.Background()
	for _, p := range all {
		idx, err := codec.IndexValues(ctx, "ssn_bidx", p.ssn)
		require.NoError(t, err)
		cands, err := selectIn(ctx, db, "ssn_bidx", idx)
		require.NoError(t, err)
		found := 0
		for i := range cands {
			require.NoError(t, codec.Open(ctx, &cands[i]))
			if ssn, _ := cands[i].SSN.Get(); ssn == p.ssn {
				found++
				require.Equal(t, p.id, cands[i].ID)
			}
		}
		require.Equal(t, 1, found, "patient %s by blind index", p.id)

		eq, err := codec.EqualValues(ctx, "MRN", p.mrn)
		require.NoError(t, err)
		rows, err := selectIn(ctx, db, "mrn", eq)
		require.NoError(t, err)
		require.Len(t, rows, 1, "patient %s by MRN", p.id)
		require.NoError(t, codec.Open(ctx, &rows[0]))
		require.Equal(t, p.name, get(t, rows[0].Name))
		require.Equal(t, p.notes, get(t, *rows[0].Notes))
		require.Equal(t, p.name, string(get(t, rows[0].Photo)))
	}
}
