package audit

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"golang.org/x/mod/sumdb/tlog"
)

// pgURL is the PostgreSQL at PHICRYPT_POSTGRES_URL, which the full test
// suite starts (scripts/postgres.sh). Without it, go test stays hermetic
// and the test returns; the full suite (PHICRYPT_FULL_SUITE) fails
// instead.
func pgURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv("PHICRYPT_POSTGRES_URL")
	if base == "" && os.Getenv("PHICRYPT_FULL_SUITE") != "" {
		t.Fatal("the full suite must set PHICRYPT_POSTGRES_URL (scripts/test.sh starts PostgreSQL with scripts/postgres.sh)")
	}
	return base
}

// pgFresh makes a schema of its own for one test in the database at base
// (dropped afterwards) and returns a URL whose search_path selects it.
func pgFresh(t *testing.T, base string) string {
	t.Helper()
	var b [8]byte
	rand.Read(b[:])
	schema := "phicrypt_audit_test_" + hex.EncodeToString(b[:])
	admin := pgOpen(t, base)
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Error(err)
		}
	})
	return pgWithParam(t, base, "search_path", schema)
}

func pgWithParam(t *testing.T, conn, key, value string) string {
	t.Helper()
	u, err := url.Parse(conn)
	if err != nil || u.Scheme == "" {
		t.Fatalf("PHICRYPT_POSTGRES_URL is not a URL: %v", err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// pgOpen opens a *sql.DB of its own (another connection pool, as another
// process would have) through pgx's database/sql driver.
func pgOpen(t *testing.T, conn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func pgSink(t *testing.T, db *sql.DB, table string) *PostgresSink {
	t.Helper()
	s, err := NewPostgresSink(t.Context(), db, table)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// exportRecords is what an auditor with read access to the table takes
// away: every record as stored, in index order.
func exportRecords(t *testing.T, db *sql.DB, table string) [][]byte {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "SELECT record FROM "+table+" ORDER BY idx")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPostgresSink(t *testing.T) {
	base := pgURL(t)
	if base == "" {
		return
	}
	t.Run("LogAcrossTwoHandles", func(t *testing.T) { testPostgresTwoHandles(t, pgFresh(t, base)) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testPostgresConcurrentWriters(t, pgFresh(t, base)) })
	t.Run("Tamper", func(t *testing.T) { testPostgresTamper(t, pgFresh(t, base)) })
	t.Run("RefusesSerializableSessions", func(t *testing.T) {
		conn := pgWithParam(t, pgFresh(t, base), "default_transaction_isolation", "serializable")
		_, err := NewPostgresSink(t.Context(), pgOpen(t, conn), "audit_log")
		if err == nil || !strings.Contains(err.Error(), "read committed") {
			t.Fatalf("NewPostgresSink on serializable sessions = %v, want an error naming read committed", err)
		}
	})
	t.Run("Caps", func(t *testing.T) {
		db := pgOpen(t, pgFresh(t, base))
		signer, _, _ := testKeys(t)
		s := pgSink(t, db, "audit_log")
		appendN(t, newTestLog(t, s, signer), testHasher(t), 0, 3)
		if _, err := s.ReadRecords(0, 4); err == nil {
			t.Error("ReadRecords past the end succeeded")
		}
		if _, err := s.ReadRecords(0, pgMaxReadRecords+1); err == nil {
			t.Error("ReadRecords over the cap succeeded")
		}
		if _, err := s.ReadHashes(make([]int64, pgMaxReadHashes+1)); err == nil {
			t.Error("ReadHashes over the cap succeeded")
		}
		if _, err := s.ReadHashes([]int64{-1}); err == nil {
			t.Error("ReadHashes(-1) succeeded")
		}
		if _, err := NewPostgresSink(t.Context(), db, "audit_log; DROP TABLE audit_log"); err == nil {
			t.Error("a table name with SQL in it was taken")
		}
		if s2 := pgSink(t, db, "audit_log"); s2.Size() != 3 {
			t.Errorf("a second NewPostgresSink of the table sees %d records", s2.Size())
		}
	})
}

// testPostgresTwoHandles: a log over one *sql.DB, then another handle (as
// a second process would) reopens it, sees the same records and signs a
// checkpoint consistent with the first's; each log appends after the
// other's records; a sink that appends at an index another took first
// gets ErrConflict and writes nothing.
func testPostgresTwoHandles(t *testing.T, conn string) {
	signer, v, _ := testKeys(t)
	h := testHasher(t)
	s1 := pgSink(t, pgOpen(t, conn), "audit_log")
	l1 := newTestLog(t, s1, signer)
	appendN(t, l1, h, 0, 5)
	c5 := openCheckpoint(t, v, l1)

	s2 := pgSink(t, pgOpen(t, conn), "audit_log")
	l2 := newTestLog(t, s2, signer)
	if got := openCheckpoint(t, v, l2); got != c5 {
		t.Fatalf("the second handle's checkpoint %+v, want %+v", got, c5)
	}
	// Record 5 as the first sink would write it, before it hears of the
	// second's appends.
	rec5, err := encodeRecord(nil, 5, testEvent(h, 5))
	if err != nil {
		t.Fatal(err)
	}
	hashes5, err := tlog.StoredHashes(5, rec5, tlog.HashReaderFunc(s1.ReadHashes))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l2, h, 5, 3)
	if err := s1.Append(rec5, hashes5); !errors.Is(err, ErrConflict) {
		t.Fatalf("the stale writer's Append = %v, want ErrConflict", err)
	}
	appendN(t, l1, h, 8, 1) // after the second handle's records
	c9 := openCheckpoint(t, v, l2)
	if c9.Size != 9 {
		t.Fatalf("the second handle's checkpoint covers %d records, want 9", c9.Size)
	}
	if got := openCheckpoint(t, v, l1); got != c9 {
		t.Fatalf("two handles sign two checkpoints: %+v and %+v", got, c9)
	}
	if err := v.VerifyRecords(c9, allRecords(t, l1)); err != nil {
		t.Fatal(err)
	}
	for _, l := range []*Log{l1, l2} {
		p, err := l.ProveTree(c5.Size, c9.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.VerifyConsistency(c5, c9, p); err != nil {
			t.Fatal(err)
		}
	}
	recs := allRecords(t, l2)
	for i := range c9.Size {
		p, err := l1.ProveRecord(i, c9.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.VerifyRecord(c9, i, recs[i], p); err != nil {
			t.Fatal(err)
		}
	}
}

// testPostgresConcurrentWriters: two handles append at once; the table
// hands out every index once, losers retry after ErrConflict, and the
// result verifies.
func testPostgresConcurrentWriters(t *testing.T, conn string) {
	signer, v, _ := testKeys(t)
	h := testHasher(t)
	logs := []*Log{
		newTestLog(t, pgSink(t, pgOpen(t, conn), "audit_log"), signer),
		newTestLog(t, pgSink(t, pgOpen(t, conn), "audit_log"), signer),
	}
	const each = 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := make(map[int64]bool)
	conflicts := 0
	errs := make(chan error, 2*each)
	for w, l := range logs {
		wg.Go(func() {
			for i := range each {
				for {
					idx, err := l.Append(testEvent(h, w*each+i))
					if errors.Is(err, ErrConflict) {
						mu.Lock()
						conflicts++
						mu.Unlock()
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					if seen[idx] {
						errs <- errors.New("an index was handed out twice")
					}
					seen[idx] = true
					mu.Unlock()
					break
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != 2*each {
		t.Fatalf("%d indexes, want %d", len(seen), 2*each)
	}
	t.Logf("%d conflicts", conflicts)
	final := newTestLog(t, pgSink(t, pgOpen(t, conn), "audit_log"), signer)
	c := openCheckpoint(t, v, final)
	if c.Size != 2*each {
		t.Fatalf("checkpoint of %d records, want %d", c.Size, 2*each)
	}
	if err := v.VerifyRecords(c, allRecords(t, final)); err != nil {
		t.Fatal(err)
	}
}

// testPostgresTamper: records edited or deleted directly in SQL are
// caught: by the verifier over the auditor's export of the table, and by
// the sink itself.
func testPostgresTamper(t *testing.T, conn string) {
	signer, v, _ := testKeys(t)
	h := testHasher(t)
	db := pgOpen(t, conn)
	tests := []struct {
		name   string
		tamper string // SQL, with TABLE for the table's name
		want   error  // from VerifyRecords over the export
		// sink is what reopening the sink and reading every record gives:
		// nil for records that read, then the verifier's error.
		sink error
	}{
		{"UPDATE a record", `UPDATE TABLE SET record = overlay(record placing '\x53'::bytea from position('svc-billing'::bytea in record)) WHERE idx = 3`, ErrEdited, nil},
		{"DELETE a record", `DELETE FROM TABLE WHERE idx = 4`, ErrDeleted, ErrDeleted},
		{"DELETE the last three", `DELETE FROM TABLE WHERE idx >= 7`, ErrTruncated, ErrCorrupt},
		{"swap two records", `UPDATE TABLE SET record = CASE idx WHEN 2 THEN (SELECT record FROM TABLE WHERE idx = 6) ELSE (SELECT record FROM TABLE WHERE idx = 2) END WHERE idx IN (2, 6)`, ErrReordered, nil},
		{"insert a copy", `UPDATE TABLE SET record = (SELECT record FROM TABLE WHERE idx = 4) WHERE idx = 5`, ErrInserted, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table := "audit_tamper_" + string(rune('a'+i))
			l := newTestLog(t, pgSink(t, db, table), signer)
			appendN(t, l, h, 0, 10)
			c := openCheckpoint(t, v, l)
			if err := v.VerifyRecords(c, exportRecords(t, db, table)); err != nil {
				t.Fatalf("the untouched table: %v", err)
			}
			before := exportRecords(t, db, table)
			if _, err := db.ExecContext(t.Context(), strings.ReplaceAll(tt.tamper, "TABLE", table)); err != nil {
				t.Fatal(err)
			}
			after := exportRecords(t, db, table)
			if len(after) == len(before) && bytes.Equal(bytes.Join(after, nil), bytes.Join(before, nil)) {
				t.Fatal("the SQL changed nothing")
			}
			if err := v.VerifyRecords(c, after); !errors.Is(err, tt.want) {
				t.Fatalf("VerifyRecords over the export = %v, want %v", err, tt.want)
			}

			// Through a sink on another handle, as the auditor's tool would.
			s, err := NewPostgresSink(t.Context(), pgOpen(t, conn), table)
			if err == nil {
				var recs [][]byte
				recs, err = s.ReadRecords(0, s.Size())
				if err == nil {
					err = v.VerifyRecords(c, recs)
				}
			}
			want := tt.sink
			if want == nil {
				want = tt.want
			}
			if !errors.Is(err, want) {
				t.Fatalf("through a reopened sink: %v, want %v", err, want)
			}
			// The writer does not carry on over a damaged end.
			if tt.sink == ErrCorrupt {
				if _, err := l.Append(testEvent(h, 10)); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Append after rows were deleted at the end = %v, want ErrCorrupt", err)
				}
			}
		})
	}
}

// TestPostgresTableName: the table name is an identifier, checked before
// any SQL runs.
func TestPostgresTableName(t *testing.T) {
	for _, ok := range []string{"audit_log", "a", "_x1", strings.Repeat("a", pgMaxTableName)} {
		if err := checkTableName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "1log", "Audit", "audit-log", "audit.log", "audit log", "a;drop table x",
		"\"quoted\"", "ünïcode", strings.Repeat("a", pgMaxTableName+1)} {
		if err := checkTableName(bad); err == nil {
			t.Errorf("%q taken", bad)
		}
	}
}
