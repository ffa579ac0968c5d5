package keystore_test

import "testing"

func TestSQLiteStoreVersionRecords(t *testing.T) {
	b := sqliteBackend()
	t.Run("Table", func(t *testing.T) {
		loc := b.Fresh(t)
		testSQLVersionRecordsTable(t, mustOpen(t, b, loc), rawSQLite(t, loc))
	})
	t.Run("ListCap", func(t *testing.T) {
		loc := b.Fresh(t)
		testSQLVersionRecordListCap(t, mustOpen(t, b, loc), rawSQLite(t, loc), sqliteFillVersionRecords)
	})
	t.Run("FromSchema4", func(t *testing.T) {
		loc := b.Fresh(t)
		testSQLVersionRecordsFromSchema4(t, b, loc, rawSQLite(t, loc), sqliteSchema4)
	})
}
