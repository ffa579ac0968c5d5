// Package postgres keeps branch keys in PostgreSQL: the keystore.Store for
// fleets of service instances sharing one set of branch keys. It works on
// the application's own *sql.DB and links no driver, registering nothing:
// open the database with the driver the program already uses, such as
// pgx's database/sql driver:
//
//	import _ "github.com/jackc/pgx/v5/stdlib"
//	db, err := sql.Open("pgx", url) // or stdlib.OpenDBFromPool(pool)
//	store, err := postgres.New(ctx, db)
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/internal/sqlstore"
)

// Store is a keystore.Store in a PostgreSQL database.
type Store = sqlstore.Store

// New makes the store's tables in db (a search_path in the connection
// selects the schema) and brings them up to date; Close leaves db open. It
// refuses a database whose schema is newer than this phicrypt knows
// (keystore.ErrUnsupportedSchema). A schema already current is only read,
// so a role without the right to change it (a service's or a custodian's,
// GrantStatements) opens it; the role that owns the tables migrates.
//
// Writes run at READ COMMITTED and lock the branch key's row (SELECT ...
// FOR UPDATE) before checking their condition; migrations hold a
// transaction-scoped advisory lock, so instances starting together migrate
// once.
//
// Crypto-shredding (Store.Destroy, DestroyKey) updates the version's row
// to an empty ciphertext in one transaction; every instance's next read
// sees the tombstone. What it cannot reach: PostgreSQL's MVCC keeps the
// old row version (and its TOAST data) in the table's pages until VACUUM
// reclaims it and later writes overwrite the space; the WAL, WAL archives
// and replicas hold the old row until they are recycled; and backups made
// before hold it for their retention. Run VACUUM on
// phicrypt_branch_key_versions after a destroy, and see docs/OPERATIONS.md
// "Crypto-shredding".
func New(ctx context.Context, db *sql.DB) (*Store, error) {
	return sqlstore.Open(ctx, db, dialect(), false)
}

var _ keystore.Store = (*Store)(nil)

// postgresMigrationLock is the advisory lock key migrations hold: the
// ASCII bytes "PhiMigra" as a bigint.
const postgresMigrationLock = `SELECT pg_advisory_xact_lock(x'5068694d69677261'::bigint)`

func dialect() *sqlstore.Dialect {
	return &sqlstore.Dialect{
		Name: "postgres",
		Migrations: [][]string{
			{ // schema 1
				`CREATE TABLE phicrypt_branch_keys (
					branch_key_id TEXT PRIMARY KEY
						CHECK (octet_length(branch_key_id) BETWEEN 1 AND 256)
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
			},
			{ // schema 2: usage counters (Store.AddUsage)
				`ALTER TABLE phicrypt_branch_key_versions
					ADD COLUMN usage BIGINT NOT NULL DEFAULT 0 CHECK (usage >= 0)`,
			},
			{ // schema 3: records (keystore.Records)
				`CREATE TABLE phicrypt_records (
					kind TEXT NOT NULL CHECK (kind ~ '^[a-z0-9-]{1,64}$'),
					name TEXT NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 512),
					value BYTEA NOT NULL CHECK (octet_length(value) BETWEEN 1 AND 65536),
					revision BIGINT NOT NULL CHECK (revision >= 1),
					updated_at_us BIGINT NOT NULL,
					PRIMARY KEY (kind, name)
				)`,
			},
			{ // schema 4: destroyed versions (Store.Destroy), without ciphertext
				`ALTER TABLE phicrypt_branch_key_versions
					DROP CONSTRAINT phicrypt_branch_key_versions_state_check,
					DROP CONSTRAINT phicrypt_branch_key_versions_ciphertext_check,
					ADD CONSTRAINT phicrypt_branch_key_versions_state_check
						CHECK (state IN ('active', 'decrypt_only', 'retired', 'destroyed')),
					ADD CONSTRAINT phicrypt_branch_key_versions_ciphertext_check
						CHECK (octet_length(ciphertext) <= 6144 AND (state = 'destroyed') = (octet_length(ciphertext) = 0))`,
			},
			// schema 5: the per-version records (keystore.IsVersionRecordKind)
			// in a table of their own, which services may write
			// (GrantStatements); those schema 3 kept move there.
			{
				`CREATE TABLE phicrypt_version_records (
					kind TEXT NOT NULL CHECK (kind ~ '^[a-z0-9-]{1,64}$' AND kind LIKE 'version-%'),
					name TEXT NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 512),
					value BYTEA NOT NULL CHECK (octet_length(value) BETWEEN 1 AND 65536),
					revision BIGINT NOT NULL CHECK (revision >= 1),
					updated_at_us BIGINT NOT NULL,
					PRIMARY KEY (kind, name)
				)`,
				`INSERT INTO phicrypt_version_records (` + recordInsertColumns + `)
					SELECT ` + recordInsertColumns + ` FROM phicrypt_records WHERE kind LIKE 'version-%'`,
				`DELETE FROM phicrypt_records WHERE kind LIKE 'version-%'`,
			},
		},
		LockMigrations:  postgresMigrationLock,
		LockKeySuffix:   " FOR UPDATE",
		UniqueViolation: postgresUniqueViolation,
		Check:           checkHandle,

		PermissionDenied:    postgresPermissionDenied,
		ErrPermissionDenied: ErrPermissionDenied,
	}
}

// postgresUniqueViolation reports SQLSTATE 23505, unique_violation, from
// any driver whose errors tell their SQLSTATE (pgx's *pgconn.PgError does).
func postgresUniqueViolation(err error) bool {
	var e interface{ SQLState() string }
	return errors.As(err, &e) && e.SQLState() == "23505"
}

// checkHandle refuses a handle that is not PostgreSQL, or whose sessions
// default to an isolation level above READ COMMITTED: the store's writes
// lock the branch key's row and then check their condition, which at
// REPEATABLE READ or SERIALIZABLE turns a lost race into a serialization
// failure instead of keystore.ErrConflict.
func checkHandle(ctx context.Context, db *sql.DB) error {
	var level string
	if err := db.QueryRowContext(ctx, `SHOW default_transaction_isolation`).Scan(&level); err != nil {
		return fmt.Errorf("reading the default isolation level (is this a PostgreSQL database?): %w", err)
	}
	if level != "read committed" {
		return fmt.Errorf("the database's sessions default to %s isolation; the store needs read committed (drop default_transaction_isolation from the connection settings)", level)
	}
	return nil
}
