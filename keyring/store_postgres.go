package keyring

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// OpenPostgresStore connects to PostgreSQL with connString (a URL such as
// postgres://user:pass@host:5432/db?sslmode=verify-full, or key=value
// pairs; a search_path parameter selects the schema) and brings the
// store's tables up to date. It is the store for fleets of service
// instances sharing one set of branch keys. It refuses a database whose
// schema is newer than this phicrypt knows (ErrUnsupportedSchema).
//
// Writes run at READ COMMITTED and lock the branch key's row (SELECT ...
// FOR UPDATE) before checking their condition; migrations hold a
// transaction-scoped advisory lock, so instances starting together migrate
// once.
func OpenPostgresStore(ctx context.Context, connString string) (*SQLStore, error) {
	cfg, err := pgx.ParseConfig(connString) // its errors redact the password
	if err != nil {
		return nil, fmt.Errorf("keyring: postgres store: %w", err)
	}
	return openSQLStore(ctx, stdlib.OpenDB(*cfg), postgresDialect())
}

// postgresMigrationLock is the advisory lock key migrations hold: the
// ASCII bytes "PhiMigra" as a bigint.
const postgresMigrationLock = `SELECT pg_advisory_xact_lock(x'5068694d69677261'::bigint)`

func postgresDialect() *sqlDialect {
	return &sqlDialect{
		name: "postgres",
		migrations: [][]string{
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
		},
		lockMigrations:  postgresMigrationLock,
		lockKeySuffix:   " FOR UPDATE",
		uniqueViolation: postgresUniqueViolation,
	}
}

// postgresUniqueViolation reports SQLSTATE 23505, unique_violation.
func postgresUniqueViolation(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505"
}
