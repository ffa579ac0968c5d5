// Package sqlite keeps branch keys in a SQLite database: a keystore.Store
// for single nodes (fleets share keystore/postgres). It links no SQLite
// driver and registers nothing: the program imports one, normally
// modernc.org/sqlite (pure Go, driver name "sqlite"), as
//
//	import _ "modernc.org/sqlite"
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/internal/sqlstore"
)

// Store is a keystore.Store in a SQLite database.
type Store = sqlstore.Store

// Open opens (creating if need be) the store in the database file at path,
// through the database/sql driver called "sqlite" that the program has
// registered, and brings its schema up to date. Several processes on one
// host may share the file. It refuses a database whose schema is newer
// than this phicrypt knows (keystore.ErrUnsupportedSchema). Close closes
// the database.
//
// The database runs in WAL mode with synchronous=FULL (a committed rotation
// survives power loss), foreign keys and secure_delete on, and every
// transaction begins IMMEDIATE: a writer takes the write lock before it
// reads, and writers wait up to ten seconds for one another instead of
// failing.
//
// Crypto-shredding (Store.Destroy, DestroyKey) updates the version's row
// without its ciphertext. secure_delete makes SQLite overwrite with zeros
// the content it frees (the old cell, and the overflow pages a wrapped key
// of more than a few hundred bytes takes), so the new pages hold none of
// it; the destroy then checkpoints the WAL (TRUNCATE), which copies those
// pages over the database file's old ones and empties the WAL file. What
// it cannot reach: blocks the file system freed (the truncated WAL's, a
// VACUUM's), a checkpoint kept from completing by a reader of an older
// snapshot (the next checkpoint completes it), and copies of the file
// (backups, snapshots) made before.
func Open(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("keystore: sqlite store: %w", err)
	}
	// A new database file is made readable by its owner only (it names
	// branch key ids, which may be PHI); SQLite gives its WAL and
	// shared-memory files the database file's permissions.
	if f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("keystore: sqlite store: %w", err)
	}
	db, err := sql.Open("sqlite", DSN(abs))
	if err != nil {
		return nil, fmt.Errorf("keystore: sqlite store (import a SQLite driver, such as modernc.org/sqlite): %w", err)
	}
	return sqlstore.Open(ctx, db, dialect(), true)
}

// DSN is the data source name Open uses for the database file at path (an
// absolute path): open the application's own *sql.DB with it to share the
// settings the store relies on.
func DSN(path string) string {
	// A file: URI, so that no character of the path is read as a parameter.
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + url.Values{
		"_txlock": {"immediate"},
		"_pragma": {"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)", "secure_delete(1)"},
	}.Encode()
}

// New makes the store in the application's database db and brings its
// schema up to date; Close leaves db open. db must have been opened with
// the settings of DSN (IMMEDIATE transactions, a busy timeout, WAL,
// foreign keys, secure_delete): the store relies on them for its
// conditional writes and its erasure.
func New(ctx context.Context, db *sql.DB) (*Store, error) {
	if db == nil {
		return nil, errors.New("keystore: sqlite store: the database handle is nil")
	}
	if err := checkHandle(ctx, db); err != nil {
		return nil, fmt.Errorf("keystore: sqlite store: %w", err)
	}
	return sqlstore.Open(ctx, db, dialect(), false)
}

// checkHandle refuses a handle the store's conditional writes cannot rely
// on: not SQLite, an in-memory database (each pooled connection would be
// a database of its own), or one opened without DSN's settings. Only the
// IMMEDIATE transactions cannot be read back; DSN sets them.
func checkHandle(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var fk, busy, secure int
	var journal, file string
	if err := conn.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil {
		return fmt.Errorf("reading its settings (is this a SQLite database?): %w", err)
	}
	if err := conn.QueryRowContext(ctx, `PRAGMA secure_delete`).Scan(&secure); err != nil {
		return err
	}
	if err := conn.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil {
		return err
	}
	if err := conn.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&journal); err != nil {
		return err
	}
	var seq int
	var name string
	if err := conn.QueryRowContext(ctx, `PRAGMA database_list`).Scan(&seq, &name, &file); err != nil {
		return err
	}
	switch {
	case file == "":
		return errors.New("the database is in memory (or temporary): each connection would see a different one; open a file with sqlite.DSN(path)")
	case fk != 1 || busy <= 0 || journal != "wal" || secure != 1:
		return errors.New("the database was not opened with the store's settings (foreign keys, a busy timeout, WAL, secure_delete, IMMEDIATE transactions); open it with sqlite.DSN(path)")
	}
	return nil
}

var _ keystore.Store = (*Store)(nil)

// sqlColumns are the columns of a version row but seq, as schema 2 has them.
const sqlColumns = `branch_key_id, version, kms_key_arn, ciphertext, created_at_us, state, usage`

// sqlRecordColumns are the columns of a record row, as schema 3 has them.
const sqlRecordColumns = `kind, name, value, revision, updated_at_us`

func dialect() *sqlstore.Dialect {
	return &sqlstore.Dialect{
		Name: "sqlite",
		Migrations: [][]string{
			{ // schema 1
				`CREATE TABLE phicrypt_branch_keys (
					branch_key_id TEXT PRIMARY KEY
						CHECK (length(CAST(branch_key_id AS BLOB)) BETWEEN 1 AND 256)
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
			},
			{ // schema 2: usage counters (Store.AddUsage)
				`ALTER TABLE phicrypt_branch_key_versions
					ADD COLUMN usage BIGINT NOT NULL DEFAULT 0 CHECK (usage >= 0)`,
			},
			{ // schema 3: records (keystore.Records)
				`CREATE TABLE phicrypt_records (
					kind TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 64 AND kind NOT GLOB '*[^a-z0-9-]*'),
					name TEXT NOT NULL CHECK (length(CAST(name AS BLOB)) BETWEEN 1 AND 512),
					value BLOB NOT NULL CHECK (typeof(value) = 'blob' AND length(value) BETWEEN 1 AND 65536),
					revision BIGINT NOT NULL CHECK (revision >= 1),
					updated_at_us BIGINT NOT NULL,
					PRIMARY KEY (kind, name)
				)`,
			},
			// schema 4: destroyed versions (Store.Destroy). SQLite cannot
			// change a CHECK constraint, so the table is rebuilt (its
			// documented procedure: make, copy, drop, rename).
			{
				`CREATE TABLE phicrypt_branch_key_versions_v4 (
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
				`INSERT INTO phicrypt_branch_key_versions_v4 (seq, ` + sqlColumns + `)
					SELECT seq, ` + sqlColumns + ` FROM phicrypt_branch_key_versions`,
				`DROP TABLE phicrypt_branch_key_versions`,
				`ALTER TABLE phicrypt_branch_key_versions_v4 RENAME TO phicrypt_branch_key_versions`,
				`CREATE UNIQUE INDEX phicrypt_branch_key_one_active
					ON phicrypt_branch_key_versions (branch_key_id) WHERE state = 'active'`,
			},
			// schema 5: the per-version records (keystore.IsVersionRecordKind)
			// in a table of their own, as in PostgreSQL, where services may
			// write it; those schema 3 kept move there.
			{
				`CREATE TABLE phicrypt_version_records (
					kind TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 64 AND kind NOT GLOB '*[^a-z0-9-]*' AND kind GLOB 'version-*'),
					name TEXT NOT NULL CHECK (length(CAST(name AS BLOB)) BETWEEN 1 AND 512),
					value BLOB NOT NULL CHECK (typeof(value) = 'blob' AND length(value) BETWEEN 1 AND 65536),
					revision BIGINT NOT NULL CHECK (revision >= 1),
					updated_at_us BIGINT NOT NULL,
					PRIMARY KEY (kind, name)
				)`,
				`INSERT INTO phicrypt_version_records (` + sqlRecordColumns + `)
					SELECT ` + sqlRecordColumns + ` FROM phicrypt_records WHERE kind GLOB 'version-*'`,
				`DELETE FROM phicrypt_records WHERE kind GLOB 'version-*'`,
			},
		},
		AfterDestroy:    `PRAGMA wal_checkpoint(TRUNCATE)`,
		UniqueViolation: sqliteUniqueViolation,
		// Two processes creating one database file can race switching it to
		// WAL, and the loser sees SQLITE_BUSY without waiting.
		BusyOnOpen: sqliteBusy,
	}
}

// coded is what SQLite drivers' errors offer (modernc.org/sqlite's
// *sqlite.Error has it): the extended result code.
type coded interface{ Code() int }

// sqliteBusy reports SQLITE_BUSY or SQLITE_LOCKED (any extended code).
func sqliteBusy(err error) bool {
	var e coded
	return errors.As(err, &e) && (e.Code()&0xff == 5 || e.Code()&0xff == 6)
}

// SQLite's extended result codes for a violated primary key or unique index.
const (
	sqliteConstraintPrimaryKey = 1555
	sqliteConstraintUnique     = 2067
)

func sqliteUniqueViolation(err error) bool {
	var e coded
	return errors.As(err, &e) && (e.Code() == sqliteConstraintPrimaryKey || e.Code() == sqliteConstraintUnique)
}
