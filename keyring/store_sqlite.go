package keyring

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"

	"modernc.org/sqlite"
)

// OpenSQLiteStore opens (creating if need be) the SQLite store in the
// database file at path and brings its schema up to date. Several processes
// on one host may share the file. SQLite is for single nodes; fleets share a
// PostgreSQL store. It refuses a database whose schema is newer than this
// phicrypt knows (ErrUnsupportedSchema).
//
// The database runs in WAL mode with synchronous=FULL (a committed rotation
// survives power loss) and foreign keys on, and every transaction begins
// IMMEDIATE: a writer takes the write lock before it reads, and writers
// wait up to ten seconds for one another instead of failing.
func OpenSQLiteStore(ctx context.Context, path string) (*SQLStore, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: sqlite store: %w", err)
	}
	// A file: URI, so that no character of the path is read as a parameter.
	dsn := "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + url.Values{
		"_txlock": {"immediate"},
		"_pragma": {"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)"},
	}.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("keyring: sqlite store: %w", err)
	}
	return openSQLStore(ctx, db, sqliteDialect())
}

func sqliteDialect() *sqlDialect {
	return &sqlDialect{
		name: "sqlite",
		migrations: [][]string{
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
		},
		uniqueViolation: sqliteUniqueViolation,
		// Two processes creating one database file can race switching it to
		// WAL, and the loser sees SQLITE_BUSY without waiting.
		busyOnOpen: sqliteBusy,
	}
}

// sqliteBusy reports SQLITE_BUSY or SQLITE_LOCKED (any extended code).
func sqliteBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && (e.Code()&0xff == 5 || e.Code()&0xff == 6)
}

// SQLite's extended result codes for a violated primary key or unique index.
const (
	sqliteConstraintPrimaryKey = 1555
	sqliteConstraintUnique     = 2067
)

func sqliteUniqueViolation(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && (e.Code() == sqliteConstraintPrimaryKey || e.Code() == sqliteConstraintUnique)
}
