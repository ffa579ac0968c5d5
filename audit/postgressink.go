package audit

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrConflict: another writer appended the record index this sink meant
// to write. Nothing was written; the sink has caught up with the table,
// so calling Log.Append again appends the event after the other's.
var ErrConflict = errors.New("audit: another writer appended that record index first: nothing was written; append again")

// Caps on one call of a PostgresSink, and on its table name.
const (
	pgMaxReadRecords = 10000 // records per ReadRecords
	pgMaxReadHashes  = 1024  // indexes per ReadHashes; tlog asks for about 2 log2(size)
	pgMaxTableName   = 48    // so the hashes table's name fits PostgreSQL's 63
)

// pgCreateLock is the advisory lock key that NewPostgresSink holds while
// it creates tables: the ASCII bytes "PhiAudit" as a bigint.
const pgCreateLock = `SELECT pg_advisory_xact_lock(x'5068694175646974'::bigint)`

// PostgresSink stores a log in two PostgreSQL tables, for services whose
// instances share one log:
//
//   - <table> (idx BIGINT PRIMARY KEY, record BYTEA): the records;
//   - <table>_hashes (idx BIGINT PRIMARY KEY, hash BYTEA): the tree's
//     stored hashes, in tlog's order.
//
// Append writes a record and its hashes in one READ COMMITTED
// transaction, so a crash keeps both or neither, and only if the table's
// last record is the one before: two writers (in one process or several)
// cannot both append index n, and the one that loses the race gets
// ErrConflict. So several processes may share one table, each with its
// own Log over its own sink: Size reads the table, so each Log appends
// after the others' records and signs checkpoints of the whole table.
//
// One ReadRecords reads at most 10000 records and one ReadHashes at most
// 1024 hashes; page through larger ranges. The sink's methods take no
// context: bound them with statement_timeout in the connection settings.
//
// It works on the application's *sql.DB and links no driver: open the
// database with the driver the program already uses, such as pgx's
// database/sql driver:
//
//	import _ "github.com/jackc/pgx/v5/stdlib"
//	db, err := sql.Open("pgx", url) // or stdlib.OpenDBFromPool(pool)
//	sink, err := audit.NewPostgresSink(ctx, db, "audit_log")
//	auditLog, err := audit.NewLog(audit.Config{Sink: sink, Signer: signer})
type PostgresSink struct {
	mu     sync.Mutex
	db     *sql.DB
	table  string
	hashes string
	size   int64
}

// NewPostgresSink returns a sink over table (and table_hashes) in db,
// creating both if they are missing. table is a lower-case SQL
// identifier of at most 48 bytes (letters, digits, underscores; not
// starting with a digit); a search_path in the connection selects the
// schema. Like keystore/postgres, it refuses a database whose sessions
// default to an isolation level above READ COMMITTED: there a lost race
// would be a serialization failure instead of ErrConflict. It checks
// that the two tables belong together; closing the database is the
// caller's.
func NewPostgresSink(ctx context.Context, db *sql.DB, table string) (*PostgresSink, error) {
	if err := checkTableName(table); err != nil {
		return nil, err
	}
	if err := checkIsolation(ctx, db); err != nil {
		return nil, err
	}
	p := &PostgresSink{db: db, table: table, hashes: table + "_hashes"}
	if err := p.create(ctx); err != nil {
		return nil, err
	}
	if err := p.load(ctx); err != nil {
		return nil, err
	}
	if err := p.checkHashes(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func checkTableName(table string) error {
	ok := len(table) > 0 && len(table) <= pgMaxTableName && (table[0] < '0' || table[0] > '9')
	for _, c := range table {
		ok = ok && (c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_')
	}
	if !ok {
		return fmt.Errorf("audit: the PostgreSQL table name must be 1 to %d lower-case letters, digits and underscores, not starting with a digit", pgMaxTableName)
	}
	return nil
}

// checkIsolation refuses a handle that is not PostgreSQL, or whose
// sessions default to an isolation level other than READ COMMITTED (the
// rule keystore/postgres follows).
func checkIsolation(ctx context.Context, db *sql.DB) error {
	var level string
	if err := db.QueryRowContext(ctx, `SHOW default_transaction_isolation`).Scan(&level); err != nil {
		return fmt.Errorf("audit: read the default isolation level (is this a PostgreSQL database?): %w", err)
	}
	if level != "read committed" {
		return fmt.Errorf("audit: the database's sessions default to %s isolation; the sink needs read committed (drop default_transaction_isolation from the connection settings)", level)
	}
	return nil
}

// create makes the tables if missing, under an advisory lock so sinks
// starting together do not race on CREATE TABLE.
func (p *PostgresSink) create(ctx context.Context) error {
	tx, err := p.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return fmt.Errorf("audit: create the log tables: %w", err)
	}
	defer tx.Rollback()
	for _, q := range []string{
		pgCreateLock,
		`CREATE TABLE IF NOT EXISTS ` + p.table + ` (
			idx BIGINT PRIMARY KEY CHECK (idx >= 0),
			record BYTEA NOT NULL CHECK (octet_length(record) BETWEEN 1 AND ` + strconv.Itoa(MaxRecordSize) + `)
		)`,
		`CREATE TABLE IF NOT EXISTS ` + p.hashes + ` (
			idx BIGINT PRIMARY KEY CHECK (idx >= 0),
			hash BYTEA NOT NULL CHECK (octet_length(hash) = 32)
		)`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("audit: create the log tables: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("audit: create the log tables: %w", err)
	}
	return nil
}

// load reads the table's size: one past its last record.
func (p *PostgresSink) load(ctx context.Context) error {
	var n int64
	if err := p.db.QueryRowContext(ctx, `SELECT coalesce(max(idx) + 1, 0) FROM `+p.table).Scan(&n); err != nil {
		return fmt.Errorf("audit: read the log's size: %w", err)
	}
	p.size = n
	return nil
}

// checkHashes checks that the hashes table holds the hashes of exactly
// the records there are, and that the last record's leaf hash is its
// own: the two tables belong together and neither lost rows at its end.
func (p *PostgresSink) checkHashes(ctx context.Context) error {
	var have int64
	if err := p.db.QueryRowContext(ctx, `SELECT coalesce(max(idx) + 1, 0) FROM `+p.hashes).Scan(&have); err != nil {
		return fmt.Errorf("audit: read the log's hashes: %w", err)
	}
	if want := tlog.StoredHashCount(p.size); have != want {
		return fmt.Errorf("%w: the hashes table covers other records than the %d the records table holds: rows were deleted or the tables are of two logs", ErrCorrupt, p.size)
	}
	if p.size == 0 {
		return nil
	}
	recs, err := p.readRecords(ctx, p.size-1, p.size)
	if err != nil {
		return err
	}
	h, err := p.readHashes(ctx, []int64{tlog.StoredHashIndex(0, p.size-1)})
	if err != nil {
		return err
	}
	if h[0] != tlog.RecordHash(recs[0]) {
		return fmt.Errorf("%w: the last record does not match its stored hash", ErrCorrupt)
	}
	return nil
}

// Size is the number of records in the table: one past its last record,
// read afresh (one indexed query), so records other writers appended
// count. If the query fails it returns the size it last saw, a prefix of
// the log, and the next Append reports the failure. It never goes down:
// rows deleted from the table's end make the next Append fail with
// ErrCorrupt.
func (p *PostgresSink) Size() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.catchUp(context.Background())
	return p.size
}

// catchUp raises the size to the table's.
func (p *PostgresSink) catchUp(ctx context.Context) {
	var n int64
	if p.db.QueryRowContext(ctx, `SELECT coalesce(max(idx) + 1, 0) FROM `+p.table).Scan(&n) == nil && n > p.size {
		p.size = n
	}
}

// Append stores record number Size() and its hashes in one transaction,
// only if the table's last record is number Size()-1; otherwise it
// returns ErrConflict (see PostgresSink).
func (p *PostgresSink) Append(record []byte, hashes []tlog.Hash) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	ctx := context.Background()
	err := p.append(ctx, record, hashes)
	if err == nil {
		p.size++
		return nil
	}
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	// Catch up with the table: another writer's records, or this very
	// record if the commit landed although the driver reported an error.
	n := p.size
	p.catchUp(ctx)
	if p.size > n && !errors.Is(err, ErrConflict) && p.holds(ctx, n, record) {
		return nil
	}
	return err
}

// holds reports whether record index is record.
func (p *PostgresSink) holds(ctx context.Context, index int64, record []byte) bool {
	var b []byte
	err := p.db.QueryRowContext(ctx, `SELECT record FROM `+p.table+` WHERE idx = $1::bigint`, index).Scan(&b)
	return err == nil && bytes.Equal(b, record)
}

func (p *PostgresSink) append(ctx context.Context, record []byte, hashes []tlog.Hash) error {
	n := p.size
	tx, err := p.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return fmt.Errorf("audit: append record %d: %w", n, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO `+p.table+` (idx, record)
		SELECT $1::bigint, $2::bytea WHERE (SELECT coalesce(max(idx), -1) FROM `+p.table+`) = $1::bigint - 1`, n, record)
	if err != nil {
		return p.appendError(n, err)
	}
	if k, err := res.RowsAffected(); err != nil || k != 1 {
		return p.notAppended(ctx, tx, n)
	}
	if len(hashes) > 0 {
		q, args := p.insertHashes(tlog.StoredHashCount(n), hashes)
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return p.appendError(n, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return p.appendError(n, err)
	}
	return nil
}

// notAppended says why the table did not end at record n-1: another
// writer appended (ErrConflict), or rows were deleted from its end.
func (p *PostgresSink) notAppended(ctx context.Context, tx *sql.Tx, n int64) error {
	var have int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(idx) + 1, 0) FROM `+p.table).Scan(&have); err != nil {
		return fmt.Errorf("audit: append record %d: %w", n, err)
	}
	if have > n {
		return fmt.Errorf("%w: record %d", ErrConflict, n)
	}
	return fmt.Errorf("%w: the table holds %d records, fewer than the %d appended through this sink: records were deleted", ErrCorrupt, have, n)
}

// insertHashes is one INSERT of hashes at first, first+1, ...
func (p *PostgresSink) insertHashes(first int64, hashes []tlog.Hash) (string, []any) {
	var q strings.Builder
	q.WriteString(`INSERT INTO ` + p.hashes + ` (idx, hash) VALUES `)
	args := make([]any, 0, 2*len(hashes))
	for i, h := range hashes {
		if i > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "($%d::bigint, $%d::bytea)", 2*i+1, 2*i+2)
		args = append(args, first+int64(i), h[:])
	}
	return q.String(), args
}

// appendError turns a unique violation (SQLSTATE 23505, from any driver
// whose errors tell their SQLSTATE, as pgx's do) into ErrConflict.
func (p *PostgresSink) appendError(n int64, err error) error {
	var e interface{ SQLState() string }
	if errors.As(err, &e) && e.SQLState() == "23505" {
		return fmt.Errorf("%w: record %d", ErrConflict, n)
	}
	return fmt.Errorf("audit: append record %d: %w", n, err)
}

// ReadHashes returns the stored hashes at indexes, at most 1024 of them.
func (p *PostgresSink) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(indexes) > pgMaxReadHashes {
		return nil, fmt.Errorf("audit: %d stored hashes asked for at once, the cap is %d", len(indexes), pgMaxReadHashes)
	}
	limit := tlog.StoredHashCount(p.size)
	for _, x := range indexes {
		if x < 0 || x >= limit {
			return nil, fmt.Errorf("audit: stored hash %d is not in the log (it holds %d)", x, limit)
		}
	}
	return p.readHashes(context.Background(), indexes)
}

func (p *PostgresSink) readHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	var q strings.Builder
	q.WriteString(`SELECT idx, hash FROM ` + p.hashes + ` WHERE idx IN (`)
	args := make([]any, len(indexes))
	for i, x := range indexes {
		if i > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "$%d::bigint", i+1)
		args[i] = x
	}
	q.WriteString(")")
	rows, err := p.db.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("audit: read stored hashes: %w", err)
	}
	defer rows.Close()
	found := make(map[int64]tlog.Hash, len(indexes))
	for rows.Next() {
		var x int64
		var b []byte
		if err := rows.Scan(&x, &b); err != nil {
			return nil, fmt.Errorf("audit: read stored hashes: %w", err)
		}
		if len(b) != tlog.HashSize {
			return nil, fmt.Errorf("%w: stored hash %d is not 32 bytes", ErrCorrupt, x)
		}
		found[x] = tlog.Hash(b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: read stored hashes: %w", err)
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := found[x]
		if !ok {
			return nil, fmt.Errorf("%w: stored hash %d is missing from the hashes table", ErrCorrupt, x)
		}
		out[i] = h
	}
	return out, nil
}

// ReadRecords returns records [start, end), at most 10000 of them. A
// record missing from the table is ErrDeleted (between others) or
// ErrTruncated (at the end), so a sink never hands back fewer records
// than asked for.
func (p *PostgresSink) ReadRecords(start, end int64) ([][]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := checkRange(start, end, p.size); err != nil {
		return nil, err
	}
	if end-start > pgMaxReadRecords {
		return nil, fmt.Errorf("audit: %d records asked for at once, the cap is %d: read them in pages", end-start, pgMaxReadRecords)
	}
	return p.readRecords(context.Background(), start, end)
}

func (p *PostgresSink) readRecords(ctx context.Context, start, end int64) ([][]byte, error) {
	rows, err := p.db.QueryContext(ctx, `SELECT idx, record FROM `+p.table+` WHERE idx >= $1::bigint AND idx < $2::bigint ORDER BY idx`, start, end)
	if err != nil {
		return nil, fmt.Errorf("audit: read records: %w", err)
	}
	defer rows.Close()
	out := make([][]byte, 0, end-start)
	for rows.Next() {
		var x int64
		var rec []byte
		if err := rows.Scan(&x, &rec); err != nil {
			return nil, fmt.Errorf("audit: read records: %w", err)
		}
		if want := start + int64(len(out)); x != want {
			return nil, fmt.Errorf("%w: record %d is missing from the table", ErrDeleted, want)
		}
		if len(rec) > MaxRecordSize {
			return nil, fmt.Errorf("%w: record %d is over MaxRecordSize", ErrCorrupt, x)
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: read records: %w", err)
	}
	if n := start + int64(len(out)); n < end {
		return nil, fmt.Errorf("%w: the table ends before record %d", ErrTruncated, n)
	}
	return out, nil
}
