package keystore_test

import (
	"os"
	"testing"

	"github.com/phicrypt/phicrypt/keystore/storetest"
)

// TestPostgresStoreRecords runs the records suite against the PostgreSQL
// at PHICRYPT_POSTGRES_URL, as TestPostgresStore does the Store suite.
func TestPostgresStoreRecords(t *testing.T) {
	base := os.Getenv("PHICRYPT_POSTGRES_URL")
	if base == "" {
		if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
			t.Fatal("the full suite must set PHICRYPT_POSTGRES_URL (scripts/test.sh starts PostgreSQL with scripts/postgres.sh)")
		}
		return
	}
	b := postgresBackend(base)
	t.Run("Conformance", func(t *testing.T) { storetest.RunRecords(t, b, "TestPostgresStoreChild") })
	t.Run("ListCap", func(t *testing.T) {
		loc := b.Fresh(t)
		testSQLRecordListCap(t, mustOpen(t, b, loc), rawPostgres(t, loc), postgresFillRecords)
	})
	t.Run("Schema", func(t *testing.T) {
		loc := b.Fresh(t)
		testSQLRecordsSchema(t, mustOpen(t, b, loc), rawPostgres(t, loc))
	})
	t.Run("AfterMigration", func(t *testing.T) {
		loc := b.Fresh(t)
		testSQLRecordsAfterMigration(t, b, loc, rawPostgres(t, loc), postgresSchema1)
	})
}
