package keystore_test

import (
	"testing"

	"github.com/phicrypt/phicrypt/keystore/storetest"
)

func TestSQLiteStoreRecords(t *testing.T) {
	storetest.RunRecords(t, sqliteBackend(), "TestSQLiteStoreChild")
}

func TestSQLiteStoreRecordListCap(t *testing.T) {
	b := sqliteBackend()
	loc := b.Fresh(t)
	testSQLRecordListCap(t, mustOpen(t, b, loc), rawSQLite(t, loc), sqliteFillRecords)
}

func TestSQLiteStoreRecordsSchema(t *testing.T) {
	b := sqliteBackend()
	loc := b.Fresh(t)
	testSQLRecordsSchema(t, mustOpen(t, b, loc), rawSQLite(t, loc))
}

func TestSQLiteStoreRecordsAfterMigration(t *testing.T) {
	b := sqliteBackend()
	loc := b.Fresh(t)
	testSQLRecordsAfterMigration(t, b, loc, rawSQLite(t, loc), sqliteSchema1)
}
