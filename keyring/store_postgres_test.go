package keyring_test

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
)

// TestPostgresStore runs against the PostgreSQL at PHICRYPT_POSTGRES_URL,
// which the full test suite starts (scripts/postgres.sh). Without it, go
// test stays hermetic and registers no subtests; the full suite
// (PHICRYPT_FULL_SUITE) fails instead.
func TestPostgresStore(t *testing.T) {
	base := os.Getenv("PHICRYPT_POSTGRES_URL")
	if base == "" {
		if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
			t.Fatal("the full suite must set PHICRYPT_POSTGRES_URL (scripts/test.sh starts PostgreSQL with scripts/postgres.sh)")
		}
		return
	}
	b := postgresBackend(base)
	t.Run("Conformance", func(t *testing.T) { runStoreConformance(t, b) })
	t.Run("TwoProcesses", func(t *testing.T) { runTwoProcessRotation(t, "postgres", b.fresh(t)) })
	t.Run("TwoProcessUsage", func(t *testing.T) { runTwoProcessUsage(t, "postgres", b.fresh(t)) })
	t.Run("Schema", func(t *testing.T) {
		loc := b.fresh(t)
		testSQLSchema(t, b.open(t, loc), rawPostgres(t, loc))
	})
	t.Run("MigratesSchema1", func(t *testing.T) {
		loc := b.fresh(t)
		testSQLMigrationFromSchema1(t, "postgres", loc, rawPostgres(t, loc), postgresSchema1)
	})
	t.Run("ConcurrentOpen", func(t *testing.T) {
		loc := b.fresh(t)
		testConcurrentOpen(t, "postgres", loc, rawPostgres(t, loc))
	})
}

// postgresBackend gives every test a schema of its own in the database at
// base (dropped afterwards), selected through search_path in the URL.
func postgresBackend(base string) storeBackend {
	return storeBackend{
		kind: "postgres",
		fresh: func(t *testing.T) string {
			var b [8]byte
			rand.Read(b[:])
			schema := "phicrypt_test_" + hex.EncodeToString(b[:])
			admin := rawPostgres(t, base)
			_, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema)
			require.NoError(t, err)
			t.Cleanup(func() {
				_, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE")
				require.NoError(t, err)
			})
			return withSearchPath(t, base, schema)
		},
		futureSchema: func(t *testing.T, loc string) { futureSQLSchema(t, rawPostgres(t, loc)) },
	}
}

// withSearchPath adds search_path to a URL or a key=value connection string.
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

// rawPostgres connects to conn directly, bypassing the store.
func rawPostgres(t *testing.T, conn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", conn)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}
