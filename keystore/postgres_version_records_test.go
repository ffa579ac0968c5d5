package keystore_test

import (
	"os"
	"testing"
)

// TestPostgresStoreVersionRecords runs against the PostgreSQL at
// PHICRYPT_POSTGRES_URL, as TestPostgresStore does.
func TestPostgresStoreVersionRecords(t *testing.T) {
	base := os.Getenv("PHICRYPT_POSTGRES_URL")
	if base == "" {
		if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
			t.Fatal("the full suite must set PHICRYPT_POSTGRES_URL (scripts/test.sh starts PostgreSQL with scripts/postgres.sh)")
		}
		return
	}
	b := postgresBackend(base)
	t.Run("Table", func(t *testing.T) {
		loc := b.Fresh(t)
		testSQLVersionRecordsTable(t, mustOpen(t, b, loc), rawPostgres(t, loc))
	})
	t.Run("ListCap", func(t *testing.T) {
		loc := b.Fresh(t)
		testSQLVersionRecordListCap(t, mustOpen(t, b, loc), rawPostgres(t, loc), postgresFillVersionRecords)
	})
	t.Run("FromSchema4", func(t *testing.T) {
		loc := b.Fresh(t)
		testSQLVersionRecordsFromSchema4(t, b, loc, rawPostgres(t, loc), postgresSchema4)
	})
}
