package keystore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/postgres"
	"github.com/phicrypt/phicrypt/keystore/storetest"
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
	t.Run("Conformance", func(t *testing.T) { storetest.Run(t, b) })
	t.Run("TwoProcesses", func(t *testing.T) { storetest.RunTwoProcesses(t, b, "TestPostgresStoreChild") })
	t.Run("RefusesSerializableSessions", func(t *testing.T) {
		loc := b.Fresh(t)
		u, err := url.Parse(loc)
		if err != nil || u.Scheme == "" {
			t.Fatalf("PHICRYPT_POSTGRES_URL is not a URL: %v", err)
		}
		q := u.Query()
		q.Set("default_transaction_isolation", "serializable")
		u.RawQuery = q.Encode()
		db, err := sql.Open("pgx", u.String())
		require.NoError(t, err)
		defer db.Close()
		_, err = postgres.New(t.Context(), db)
		require.ErrorContains(t, err, "read committed")
	})
	t.Run("Schema", func(t *testing.T) {
		loc := b.Fresh(t)
		testSQLSchema(t, mustOpen(t, b, loc), rawPostgres(t, loc))
	})
	t.Run("MigratesSchema1", func(t *testing.T) {
		loc := b.Fresh(t)
		testSQLMigrationFromSchema1(t, b, loc, rawPostgres(t, loc), postgresSchema1)
	})
	t.Run("ConcurrentOpen", func(t *testing.T) {
		loc := b.Fresh(t)
		testConcurrentOpen(t, b, loc, rawPostgres(t, loc))
	})
}

// TestPostgresStoreChild is a child process of TestPostgresStore.
func TestPostgresStoreChild(t *testing.T) {
	if base := os.Getenv("PHICRYPT_POSTGRES_URL"); base != "" {
		storetest.Child(t, postgresBackend(base))
	}
}

// openPostgres opens the store in the database at conn through pgx's
// database/sql driver; closing the store closes that database handle.
func openPostgres(ctx context.Context, conn string) (keystore.Store, error) {
	db, err := sql.Open("pgx", conn)
	if err != nil {
		return nil, err
	}
	s, err := postgres.New(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	return closingStore{s, db}, nil
}

// closingStore closes the database handle the test opened with the store.
// It embeds the concrete store, so its optional interfaces (Records) show.
type closingStore struct {
	*postgres.Store
	db *sql.DB
}

func (s closingStore) Close() error { return errors.Join(s.Store.Close(), s.db.Close()) }

// postgresBackend gives every test a schema of its own in the database at
// base (dropped afterwards), selected through search_path in the URL.
func postgresBackend(base string) storetest.Backend {
	return storetest.Backend{
		Name: "postgres",
		Open: openPostgres,
		Fresh: func(t *testing.T) string {
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
		FutureSchema: func(t *testing.T, loc string) { futureSQLSchema(t, rawPostgres(t, loc)) },
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
