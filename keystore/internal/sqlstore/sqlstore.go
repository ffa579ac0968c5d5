// Package sqlstore is the SQL implementation of keystore.Store that
// keystore/sqlite and keystore/postgres share; each gives its Dialect.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/phicrypt/phicrypt/keystore"
)

// Store is a keystore.Store in a SQL database: PostgreSQL (keystore/postgres)
// or SQLite (keystore/sqlite). Both use the same tables:
//
//	phicrypt_schema_migrations  (version, applied_at_us): one row per applied migration
//	phicrypt_branch_keys        (branch_key_id): one row per branch key
//	phicrypt_branch_key_versions (seq, branch_key_id, version, kms_key_arn,
//	                              ciphertext, created_at_us, state, usage)
//	phicrypt_records            (kind, name, value, revision, updated_at_us)
//	phicrypt_version_records    (kind, name, value, revision, updated_at_us)
//
// Schema 1 made the tables; schema 2 added usage (BIGINT, default 0);
// schema 3 added phicrypt_records (records.go); schema 4 allows the state
// 'destroyed', with an empty ciphertext (crypto-shredding, Store.Destroy);
// schema 5 added phicrypt_version_records for the per-version record
// kinds (keystore.IsVersionRecordKind) and moved their records there.
// An older store migrates in place when opened.
//
// with a partial unique index that allows one row with state 'active' per
// branch key, so the database itself refuses a second active version
// whatever a client does. Times are microseconds since the Unix epoch, UTC;
// seq orders versions by when they were added.
//
// Writes run in transactions that lock the branch key first (SQLite: BEGIN
// IMMEDIATE, one writer at a time; PostgreSQL: SELECT ... FOR UPDATE on the
// branch key's row), then check their condition, so concurrent rotations
// from the same active version leave exactly one winner.
type Store struct {
	db      *sql.DB
	d       *Dialect
	closeDB bool // Close closes db (the store opened it)
}

// Dialect is what differs between the SQL back ends.
type Dialect struct {
	Name string
	// Migrations[i] brings the schema from version i to i+1.
	Migrations [][]string
	// LockMigrations, if not empty, runs first in the migration
	// transaction to keep two processes from migrating at once.
	LockMigrations string
	// LockKeySuffix makes the branch key lookup in a write transaction
	// take a row lock (" FOR UPDATE"), where the transaction itself does
	// not already exclude other writers.
	LockKeySuffix string
	// UniqueViolation reports whether err is a unique-constraint violation.
	UniqueViolation func(err error) bool
	// BusyOnOpen, if set, reports an error that opening a new database
	// from several processes at once can cause, and that a retry clears.
	BusyOnOpen func(err error) bool
	// Check, if set, refuses a database handle whose settings the store's
	// conditional writes cannot rely on, with advice.
	Check func(ctx context.Context, db *sql.DB) error
	// AfterDestroy, if set, runs after a Destroy or DestroyKey committed,
	// to push the erasure further than the row (SQLite checkpoints its
	// WAL). Its failure does not undo the destroy and is not reported.
	AfterDestroy string
	// PermissionDenied, if set, reports a database error that says the
	// session's role lacks a privilege; the store's error then wraps
	// ErrPermissionDenied as well, and names the operation.
	PermissionDenied func(err error) bool
	// ErrPermissionDenied is the sentinel that errors PermissionDenied
	// reports wrap.
	ErrPermissionDenied error
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS phicrypt_schema_migrations (
	version INTEGER PRIMARY KEY,
	applied_at_us BIGINT NOT NULL
)`

const sqlVersionColumns = `branch_key_id, version, kms_key_arn, ciphertext, created_at_us, state, usage`

// sqlAddUsage adds $2 to a version's usage unless it is retired, saturating
// at $3 (keystore.MaxUsage; $1 is keystore.MaxUsage - $2, so the sum cannot overflow), in one
// statement: atomic whatever other connections do.
const sqlAddUsage = `UPDATE phicrypt_branch_key_versions
	SET usage = CASE WHEN usage <= $1 THEN usage + $2 ELSE $3 END
	WHERE branch_key_id = $4 AND version = $5 AND state NOT IN ('retired', 'destroyed')
	RETURNING usage`

// Open migrates db to the newest schema d knows and returns the store. It
// refuses a database whose schema is newer. closeDB says that the store
// owns db: Close closes it, and so does a failed Open.
func Open(ctx context.Context, db *sql.DB, d *Dialect, closeDB bool) (*Store, error) {
	if db == nil {
		return nil, fmt.Errorf("keystore: %s store: the database handle is nil", d.Name)
	}
	s := &Store{db: db, d: d, closeDB: closeDB}
	if d.Check != nil {
		if err := d.Check(ctx, db); err != nil {
			s.Close()
			return nil, fmt.Errorf("keystore: %s store: %w", d.Name, err)
		}
	}
	err := s.migrate(ctx)
	for wait := 5 * time.Millisecond; err != nil && d.BusyOnOpen != nil && d.BusyOnOpen(err) && wait < 5*time.Second; wait *= 2 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
		err = s.migrate(ctx)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// sqlSchemaVersion reads the newest migration applied.
const sqlSchemaVersion = `SELECT COALESCE(MAX(version), 0) FROM phicrypt_schema_migrations`

// migrate brings the schema up to date. A schema already current needs no
// lock and no DDL, so it reads the version first: a role that may not
// change the schema (a service's, keystore/postgres.GrantStatements) opens
// a store whose owner migrated it. Anything else (no migrations table,
// an older schema, a failed read) takes the locked path, which checks
// again under the lock.
func (s *Store) migrate(ctx context.Context) error {
	var current int
	if err := s.db.QueryRowContext(ctx, sqlSchemaVersion).Scan(&current); err == nil {
		if err := s.checkSchema(current); err != nil || current == len(s.d.Migrations) {
			return err
		}
	}
	err := s.migrateLocked(ctx)
	if s.d.ErrPermissionDenied != nil && errors.Is(err, s.d.ErrPermissionDenied) {
		return fmt.Errorf("%w; a role without the right to change the schema opens only a store whose schema is current (%d): open it once with the role that owns its tables, which migrates it",
			err, len(s.d.Migrations))
	}
	return err
}

// checkSchema refuses a schema newer than d knows.
func (s *Store) checkSchema(current int) error {
	if current > len(s.d.Migrations) {
		return fmt.Errorf("%w: the %s store has schema %d; this phicrypt knows schemas up to %d",
			keystore.ErrUnsupportedSchema, s.d.Name, current, len(s.d.Migrations))
	}
	return nil
}

func (s *Store) migrateLocked(ctx context.Context) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if s.d.LockMigrations != "" {
			if _, err := tx.ExecContext(ctx, s.d.LockMigrations); err != nil {
				return s.wrap("locking for migration", err)
			}
		}
		if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
			return s.wrap("creating the migrations table", err)
		}
		var current int
		if err := tx.QueryRowContext(ctx, sqlSchemaVersion).Scan(&current); err != nil {
			return s.wrap("reading the schema version", err)
		}
		if err := s.checkSchema(current); err != nil {
			return err
		}
		for v := current + 1; v <= len(s.d.Migrations); v++ {
			for _, stmt := range s.d.Migrations[v-1] {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return s.wrap(fmt.Sprintf("migrating to schema %d", v), err)
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO phicrypt_schema_migrations (version, applied_at_us) VALUES ($1, $2)`,
				v, time.Now().UnixMicro()); err != nil {
				return s.wrap(fmt.Sprintf("recording schema %d", v), err)
			}
		}
		return nil
	})
}

// Create implements Store.
func (s *Store) Create(ctx context.Context, v keystore.BranchKeyVersion) error {
	if err := v.Validate(keystore.StateActive); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO phicrypt_branch_keys (branch_key_id) VALUES ($1)`, v.BranchKeyID)
		if s.d.UniqueViolation(err) {
			return fmt.Errorf("%w: %s", keystore.ErrExists, keystore.Fingerprint(v.BranchKeyID))
		}
		if err != nil {
			return s.wrap("creating a branch key", err)
		}
		return s.insertVersion(ctx, tx, v)
	})
}

// Rotate implements Store.
func (s *Store) Rotate(ctx context.Context, id, expectedActive string, next keystore.BranchKeyVersion) error {
	if err := keystore.CheckRotate(id, expectedActive, next); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockKey(ctx, tx, id, "rotating a branch key"); err != nil {
			return err
		}
		var active string
		err := tx.QueryRowContext(ctx, `SELECT version FROM phicrypt_branch_key_versions
			WHERE branch_key_id = $1 AND state = 'active'`, id).Scan(&active)
		if errors.Is(err, sql.ErrNoRows) {
			return keystore.KeyDestroyedError(id) // only a destroyed key has none
		}
		if err != nil {
			return s.wrap("reading the active version", err) // a branch key always has one
		}
		if active != expectedActive {
			return fmt.Errorf("%w: %s: the active version is no longer %s", keystore.ErrConflict, keystore.Fingerprint(id), expectedActive)
		}
		if _, err := s.getVersion(ctx, tx, id, next.Version); err == nil {
			return fmt.Errorf("%w: %s already has version %s", keystore.ErrExists, keystore.Fingerprint(id), next.Version)
		} else if !errors.Is(err, keystore.ErrNotFound) {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE phicrypt_branch_key_versions SET state = 'decrypt_only'
			WHERE branch_key_id = $1 AND version = $2 AND state = 'active'`, id, expectedActive)
		if err := s.expectOne(res, err, "demoting the active version"); err != nil {
			return err
		}
		return s.insertVersion(ctx, tx, next)
	})
}

// Active implements Store.
func (s *Store) Active(ctx context.Context, id string) (keystore.BranchKeyVersion, error) {
	if err := keystore.CheckID(id); err != nil {
		return keystore.BranchKeyVersion{}, err
	}
	row := s.db.QueryRowContext(ctx, `SELECT `+sqlVersionColumns+` FROM phicrypt_branch_key_versions
		WHERE branch_key_id = $1 AND state = 'active'`, id)
	v, err := s.scanVersion(row)
	if errors.Is(err, sql.ErrNoRows) {
		return keystore.BranchKeyVersion{}, s.noActive(ctx, s.db, id)
	}
	return v, err
}

// Get implements Store.
func (s *Store) Get(ctx context.Context, id, version string) (keystore.BranchKeyVersion, error) {
	if err := keystore.CheckKeyVersion(id, version); err != nil {
		return keystore.BranchKeyVersion{}, err
	}
	return s.getVersion(ctx, s.db, id, version)
}

// List implements Store.
func (s *Store) List(ctx context.Context, id string) ([]keystore.BranchKeyVersion, error) {
	if err := keystore.CheckID(id); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+sqlVersionColumns+` FROM phicrypt_branch_key_versions
		WHERE branch_key_id = $1 ORDER BY seq`, id)
	if err != nil {
		return nil, s.wrap("listing versions", err)
	}
	defer rows.Close()
	var out []keystore.BranchKeyVersion
	for rows.Next() {
		v, err := s.scanVersion(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("listing versions", err)
	}
	if len(out) == 0 {
		return nil, keystore.NotFoundError(id)
	}
	return out, nil
}

// IDs implements Store.
func (s *Store) IDs(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT branch_key_id FROM phicrypt_branch_keys`)
	if err != nil {
		return nil, s.wrap("listing branch keys", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, s.wrap("listing branch keys", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("listing branch keys", err)
	}
	slices.Sort(ids) // bytewise, whatever the database's collation
	return ids, nil
}

// SetState implements Store.
func (s *Store) SetState(ctx context.Context, id, version string, from, to keystore.State) error {
	if err := keystore.CheckKeyVersion(id, version); err != nil {
		return err
	}
	if err := keystore.CheckTransition(from, to); err != nil {
		return err
	}
	// One conditional statement is atomic on its own; a miss is then
	// explained by reading the row.
	res, err := s.db.ExecContext(ctx, `UPDATE phicrypt_branch_key_versions SET state = $1
		WHERE branch_key_id = $2 AND version = $3 AND state = $4`, to.String(), id, version, from.String())
	if n, err := s.affected(res, err, "changing a version's state"); err != nil || n == 1 {
		return err
	}
	cur, err := s.getVersion(ctx, s.db, id, version)
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: %s version %s is %v, not %v", keystore.ErrConflict, keystore.Fingerprint(id), version, cur.State, from)
}

// Rewrap implements Store.
func (s *Store) Rewrap(ctx context.Context, id, version string, oldCiphertext []byte, newARN string, newCiphertext []byte) error {
	if err := keystore.CheckRewrap(id, version, oldCiphertext, newARN, newCiphertext); err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE phicrypt_branch_key_versions SET kms_key_arn = $1, ciphertext = $2
		WHERE branch_key_id = $3 AND version = $4 AND ciphertext = $5`, newARN, newCiphertext, id, version, oldCiphertext)
	if n, err := s.affected(res, err, "rewrapping a version"); err != nil || n == 1 {
		return err
	}
	if cur, err := s.getVersion(ctx, s.db, id, version); err != nil {
		return err
	} else if cur.State == keystore.StateDestroyed {
		return keystore.DestroyedError(id, version)
	}
	return fmt.Errorf("%w: %s version %s no longer holds the expected wrapped key", keystore.ErrConflict, keystore.Fingerprint(id), version)
}

// AddUsage implements Store with one UPDATE ... RETURNING; a miss is then
// explained by reading the row.
func (s *Store) AddUsage(ctx context.Context, id, version string, n uint64) (uint64, error) {
	if err := keystore.CheckAddUsage(id, version, n); err != nil {
		return 0, err
	}
	for {
		var total int64
		err := s.db.QueryRowContext(ctx, sqlAddUsage, int64(keystore.MaxUsage-n), int64(n), int64(math.MaxInt64), id, version).Scan(&total)
		if err == nil {
			if total < 0 {
				return 0, fmt.Errorf("keystore: %s store: %s has a damaged version: a negative usage", s.d.Name, keystore.Fingerprint(id))
			}
			return uint64(total), nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return 0, s.wrap("counting a version's usage", err)
		}
		cur, err := s.getVersion(ctx, s.db, id, version)
		if err != nil {
			return 0, err
		}
		switch cur.State {
		case keystore.StateRetired:
			return 0, keystore.RetiredUsageError(id, version)
		case keystore.StateDestroyed:
			return 0, keystore.DestroyedError(id, version)
		}
		// Moved out of retired between the two statements: count again.
	}
}

// Close implements Store.
// Close closes the database if the store opened it; a database the
// application gave stays open.
func (s *Store) Close() error {
	if s.closeDB {
		return s.db.Close()
	}
	return nil
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// rowScanner is what *sql.Row and *sql.Rows share.
type rowScanner interface {
	Scan(dest ...any) error
}

func (s *Store) getVersion(ctx context.Context, q querier, id, version string) (keystore.BranchKeyVersion, error) {
	row := q.QueryRowContext(ctx, `SELECT `+sqlVersionColumns+` FROM phicrypt_branch_key_versions
		WHERE branch_key_id = $1 AND version = $2`, id, version)
	v, err := s.scanVersion(row)
	if errors.Is(err, sql.ErrNoRows) {
		return keystore.BranchKeyVersion{}, keystore.VersionNotFoundError(id, version)
	}
	return v, err
}

// scanVersion reads one row of sqlVersionColumns, refusing a row no write
// of this store could have made. It returns sql.ErrNoRows unwrapped.
func (s *Store) scanVersion(r rowScanner) (keystore.BranchKeyVersion, error) {
	var v keystore.BranchKeyVersion
	var created, usage int64
	var state string
	if err := r.Scan(&v.BranchKeyID, &v.Version, &v.KMSKeyARN, &v.Ciphertext, &created, &state, &usage); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return keystore.BranchKeyVersion{}, err
		}
		return keystore.BranchKeyVersion{}, s.wrap("reading a version", err)
	}
	v.CreatedAt = time.UnixMicro(created).UTC()
	if len(v.Ciphertext) == 0 {
		v.Ciphertext = nil // a tombstone: some drivers scan an empty value as []byte{}
	}
	if usage < 0 {
		return keystore.BranchKeyVersion{}, fmt.Errorf("keystore: %s store: %s has a damaged version: a negative usage", s.d.Name, keystore.Fingerprint(v.BranchKeyID))
	}
	v.Usage = uint64(usage)
	var ok bool
	if ok = v.State.UnmarshalText([]byte(state)) == nil; !ok {
		return keystore.BranchKeyVersion{}, fmt.Errorf("keystore: %s store: %s has a version in an unknown state; was it written by a newer phicrypt?",
			s.d.Name, keystore.Fingerprint(v.BranchKeyID))
	}
	if err := v.Validate(0); err != nil {
		return keystore.BranchKeyVersion{}, fmt.Errorf("keystore: %s store: %s has a damaged version: %v", s.d.Name, keystore.Fingerprint(v.BranchKeyID), err)
	}
	return v, nil
}

// lockKey makes sure branch key id exists and, where the dialect needs it,
// locks its row until the transaction ends; what names the operation.
func (s *Store) lockKey(ctx context.Context, tx *sql.Tx, id, what string) error {
	var got string
	err := tx.QueryRowContext(ctx, `SELECT branch_key_id FROM phicrypt_branch_keys WHERE branch_key_id = $1`+s.d.LockKeySuffix, id).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return keystore.NotFoundError(id)
	}
	if err != nil {
		return s.wrap(what+": locking the branch key", err)
	}
	return nil
}

func (s *Store) insertVersion(ctx context.Context, tx *sql.Tx, v keystore.BranchKeyVersion) error {
	v = v.Normalized()
	_, err := tx.ExecContext(ctx, `INSERT INTO phicrypt_branch_key_versions (`+sqlVersionColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		v.BranchKeyID, v.Version, v.KMSKeyARN, v.Ciphertext, v.CreatedAt.UnixMicro(), v.State.String(), int64(v.Usage))
	if s.d.UniqueViolation(err) {
		// The checks before this make it unreachable but for a writer that
		// bypassed them; the unique indexes still hold the line.
		return fmt.Errorf("%w: %s: the version exists or the branch key already has an active version", keystore.ErrConflict, keystore.Fingerprint(v.BranchKeyID))
	}
	if err != nil {
		return s.wrap("storing a version", err)
	}
	return nil
}

// inTx runs fn in a transaction, committing if it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap("beginning a transaction", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return s.wrap("committing", err)
	}
	return nil
}

func (s *Store) affected(res sql.Result, err error, what string) (int64, error) {
	if err != nil {
		return 0, s.wrap(what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.wrap(what, err)
	}
	return n, nil
}

func (s *Store) expectOne(res sql.Result, err error, what string) error {
	n, err := s.affected(res, err, what)
	if err == nil && n != 1 {
		err = fmt.Errorf("keystore: %s store: %s changed %d rows, not 1", s.d.Name, what, n)
	}
	return err
}

// wrap adds context to a database error. Driver errors name constraints and
// SQL states, not row values (PostgreSQL keeps those in the error's Detail,
// which its Error method leaves out), so no ciphertext reaches the message.
// A missing privilege also wraps the dialect's ErrPermissionDenied.
func (s *Store) wrap(what string, err error) error {
	if s.d.PermissionDenied != nil && s.d.PermissionDenied(err) {
		return fmt.Errorf("keystore: %s store: %s: %w: %w", s.d.Name, what, s.d.ErrPermissionDenied, err)
	}
	return fmt.Errorf("keystore: %s store: %s: %w", s.d.Name, what, err)
}
