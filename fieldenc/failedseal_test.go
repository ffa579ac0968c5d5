package fieldenc_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/stretchr/testify/require"
)

// A failed Seal must not let an INSERT store PHI in the clear (issue 9,
// item 7): the service below ignores Seal's error, as careless code does,
// and the database must still hold no plaintext.
func TestFailedSealStoresNoPlaintextSQLite(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "patients.db"))
	require.NoError(t, err)
	defer db.Close()
	db.SetMaxOpenConns(1)
	runFailedSeal(t, db, "BLOB")
}

func TestFailedSealStoresNoPlaintextPostgres(t *testing.T) {
	if db := postgresDB(t); db != nil {
		runFailedSeal(t, db, "BYTEA")
	}
}

// canary is in every plaintext the failing rows carry.
const canary = "CANARY-PHI-5e1d"

func canaryRow(id string) Row {
	notes := fieldenc.Of(canary + " notes")
	return Row{ID: id, Name: fieldenc.Of(canary + " name"), SSN: fieldenc.Of("123-45-6789"), MRN: fieldenc.Of(canary + " mrn"),
		DOB: fieldenc.Of(time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC)), Notes: &notes, Photo: fieldenc.Of([]byte(canary + " photo"))}
}

func runFailedSeal(t *testing.T, db *sql.DB, blobType string) {
	ctx := context.Background()
	_, err := db.ExecContext(ctx, `CREATE TABLE patients (id TEXT PRIMARY KEY, name TEXT, ssn TEXT,
		ssn_bidx `+blobType+`, mrn TEXT, dob TEXT, notes TEXT, photo `+blobType+`)`)
	require.NoError(t, err)
	e := newEnv(t, zeroHC())
	tbl := e.table(t, fieldenc.Config{})
	codec, err := fieldenc.NewCodec[Row](tbl)
	require.NoError(t, err)

	// A row with a plain string column, as the README once showed: a Seal
	// failing after Name would leave MRN in the clear for the INSERT, so
	// such a type is refused before anything is sealed.
	type plainRow struct {
		ID   string                  `phi:"rowid"`
		Name fieldenc.Sealed[string] `phi:"encrypt"`
		MRN  string                  `phi:"encrypt,deterministic"`
	}
	_, err = fieldenc.NewCodec[plainRow](tbl)
	require.ErrorContains(t, err, "field MRN")
	require.ErrorContains(t, err, "declare it fieldenc.Sealed[string]")
	plain := plainRow{ID: "failed-plain", Name: fieldenc.Of(canary + " name"), MRN: canary + " mrn"}
	require.Error(t, tbl.Seal(ctx, &plain))
	_, err = db.ExecContext(ctx, "INSERT INTO patients (id, name, mrn) VALUES ($1, $2, $3)", plain.ID, plain.Name, plain.MRN)
	require.ErrorContains(t, err, "not sealed", "Name refuses; MRN alone would have gone in the clear")
	requireNoCanary(t, db)

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	tooBig := func(r *Row) {
		big := fieldenc.Of(canary + strings.Repeat("x", fieldenc.MaxPlaintext))
		r.Notes = &big // after Name, SSN, MRN and DOB, which are fine
	}
	cases := []struct {
		name   string
		change func(*Row)
		codec  func(t *testing.T) *fieldenc.Codec[Row]
		ctx    context.Context
		want   string // in Seal's error
	}{
		{"a value over the cap after four good fields", tooBig, func(*testing.T) *fieldenc.Codec[Row] { return codec }, ctx,
			"field Notes: value over its size cap"},
		// Nothing cached: Seal must reach the store and KMS.
		{"a canceled context", nil, coldCodec, canceled, "context canceled"},
		{"KMS down", nil, downKMSCodec, ctx, "KMS Decrypt"},
		{"no row identity", func(r *Row) { r.ID = "" }, func(*testing.T) *fieldenc.Codec[Row] { return codec }, ctx,
			"row identity is not set"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			codec := c.codec(t)
			r := canaryRow("failed-" + string(rune('a'+i)))
			if c.change != nil {
				c.change(&r)
			}
			before := r
			require.ErrorContains(t, codec.Seal(c.ctx, &r), c.want)
			require.Equal(t, before, r, "all or nothing: the struct is as it was")
			require.Nil(t, r.SSNBidx, "no blind index written")
			for _, v := range []driver.Valuer{r.Name, r.SSN, r.MRN, r.DOB, *r.Notes, r.Photo} {
				_, err := v.Value()
				require.ErrorIs(t, err, fieldenc.ErrNotSealed, "every field refuses to be written unsealed")
			}

			err := insertRow(ctx, db, &r) // Seal's error ignored
			require.Error(t, err, "the INSERT after a failed Seal must fail")
			require.ErrorContains(t, err, "not sealed")
			requireNoCanary(t, db)
		})
	}

	// An edit of a stored row whose Seal fails: the UPDATE fails, and the
	// row keeps its earlier sealed values.
	stored := makePatient(1).row()
	require.NoError(t, codec.Seal(ctx, &stored))
	require.NoError(t, insertRow(ctx, db, &stored))
	rows, err := selectIn(ctx, db, "id", []any{stored.ID})
	require.NoError(t, err)
	require.Len(t, rows, 1)
	r := rows[0]
	require.NoError(t, codec.Open(ctx, &r))
	r.Name.Set(canary + " renamed")
	r.SSN.Set("999-99-9999")
	big := fieldenc.Of(canary + strings.Repeat("x", fieldenc.MaxPlaintext))
	r.Notes = &big
	before := r
	require.ErrorIs(t, codec.Seal(ctx, &r), fieldenc.ErrTooLarge)
	require.Equal(t, before, r, "all or nothing: fields and blind index as they were")
	require.Equal(t, rows[0].SSNBidx, r.SSNBidx, "the old index stays with the old SSN")
	err = updateRow(ctx, db, &r)
	require.ErrorContains(t, err, "not sealed")
	requireNoCanary(t, db)
	again, err := selectIn(ctx, db, "id", []any{stored.ID})
	require.NoError(t, err)
	require.Len(t, again, 1)
	require.NoError(t, codec.Open(ctx, &again[0]))
	require.Equal(t, makePatient(1).name, get(t, again[0].Name), "the stored row is unchanged")
}

// requireNoCanary checks that no stored value holds the canary, in any
// column, and counts only the rows the test sealed properly.
func requireNoCanary(t *testing.T, db *sql.DB) {
	t.Helper()
	rows, err := db.Query(`SELECT id, name, ssn, mrn, dob, notes, photo FROM patients`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var id string
		var cols [6][]byte
		require.NoError(t, rows.Scan(&id, &cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5]))
		require.True(t, strings.HasPrefix(id, "p"), "only rows sealed properly are stored, not %s", id)
		for _, c := range cols {
			require.NotContains(t, string(c), canary)
			require.NotContains(t, string(c), "123-45-6789")
		}
	}
	require.NoError(t, rows.Err())
}

// coldCodec is a Codec over a new key store and keyring: nothing cached.
func coldCodec(t *testing.T) *fieldenc.Codec[Row] {
	e := newEnv(t, zeroHC())
	c, err := fieldenc.NewCodec[Row](e.table(t, fieldenc.Config{}))
	require.NoError(t, err)
	return c
}

// downKMSCodec is a Codec whose keyring has nothing cached and whose KMS
// is unreachable (kmsmock's outage), with SDK retries off so the test is
// quick.
func downKMSCodec(t *testing.T) *fieldenc.Codec[Row] {
	e := newEnv(t, zeroHC())
	client := e.kms.Client("svc", func(o *kms.Options) { o.RetryMaxAttempts = 1 })
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: e.store, Client: client,
		KMSKeyARN: e.arn, LogicalStoreName: "fieldenc-test"})
	require.NoError(t, err)
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: e.id,
		CacheTTL: testTTL, MaxUsesPerVersion: 1 << 30})
	require.NoError(t, err)
	tbl, err := fieldenc.New(fieldenc.Config{Keys: kr, BranchKeyID: e.id, Table: "patients"})
	require.NoError(t, err)
	c, err := fieldenc.NewCodec[Row](tbl)
	require.NoError(t, err)
	e.kms.SetOutage(true)
	t.Cleanup(func() { e.kms.SetOutage(false) })
	return c
}
