package fieldenc_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/stretchr/testify/require"
)

// Found in review: each of these failed before its fix.

type noteRow struct {
	ID   string                  `phi:"rowid"`
	Note fieldenc.Sealed[string] `phi:"encrypt"`
}

// A value sealed under a version this process rotated to opens at once.
func TestOpenRightAfterCapRotation(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, keyring.HierarchicalConfig{MaxUsesPerVersion: 20, UsageBlock: 10, CacheTTL: time.Hour})
	codec, err := fieldenc.NewCodec[noteRow](e.table(t, fieldenc.Config{ReservedUses: 10}))
	require.NoError(t, err)
	for i := range 60 {
		r := noteRow{ID: fmt.Sprint("r", i), Note: fieldenc.Of(fmt.Sprint("note ", i))}
		require.NoError(t, codec.Seal(ctx, &r))
		r.Note = sealedOnly(t, r.Note)
		require.NoError(t, codec.Open(ctx, &r), "row %d", i)
		require.Equal(t, fmt.Sprint("note ", i), get(t, r.Note))
	}
}

// A value sealed by another process under a version it rotated to opens
// within the re-read interval, not after the live list's 30 s lifetime.
func TestOpenAfterAnotherProcessRotates(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	reader, err := fieldenc.NewCodec[noteRow](e.table(t, fieldenc.Config{}))
	require.NoError(t, err)
	r := noteRow{ID: "a", Note: fieldenc.Of("x")}
	require.NoError(t, reader.Seal(ctx, &r))
	require.NoError(t, reader.Open(ctx, &r)) // the reader now holds a live list
	_, err = testkeys.Custodian(t, e.bk).Rotate(ctx, e.id)
	require.NoError(t, err)
	time.Sleep(testTTL + 20*time.Millisecond)
	kr2, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: e.bk, BranchKeyID: e.id, CacheTTL: testTTL, MaxUsesPerVersion: 1 << 30})
	require.NoError(t, err)
	w, err := fieldenc.New(fieldenc.Config{Keys: kr2, BranchKeyID: e.id, Table: "patients"})
	require.NoError(t, err)
	writer, err := fieldenc.NewCodec[noteRow](w)
	require.NoError(t, err)
	n := noteRow{ID: "b", Note: fieldenc.Of("y")}
	require.NoError(t, writer.Seal(ctx, &n))
	n.Note = sealedOnly(t, n.Note)
	deadline := time.Now().Add(time.Second)
	for {
		x := n
		err := reader.Open(ctx, &x)
		if err == nil {
			require.Equal(t, "y", get(t, x.Note))
			return
		}
		require.ErrorIs(t, err, fieldenc.ErrUnknownKey)
		require.True(t, time.Now().Before(deadline), "still unknown after a second")
		time.Sleep(50 * time.Millisecond)
	}
}

// A cache lifetime ending keeps the uses already reserved: an idle table
// does not burn a block per lifetime and rotate for nothing.
func TestReservedUsesSurviveExpiry(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, keyring.HierarchicalConfig{MaxUsesPerVersion: 4000, UsageBlock: 1000})
	col, err := e.table(t, fieldenc.Config{ReservedUses: 1000}).Column("notes", fieldenc.Randomized)
	require.NoError(t, err)
	for i := range 6 {
		_, err := col.Seal(ctx, nil, []byte(fmt.Sprint("n", i)), nil)
		require.NoError(t, err)
		time.Sleep(testTTL + 20*time.Millisecond)
	}
	versions, err := e.store.List(ctx, e.id)
	require.NoError(t, err)
	require.Len(t, versions, 1, "6 encryptions under a cap of 4000 do not rotate")
	require.Equal(t, uint64(1000), versions[0].Usage, "one block reserved, carried across expiries")
}

type revAddr struct {
	Zip    fieldenc.Sealed[string] `phi:"encrypt,blindindex=zip:16"`
	ZipIdx []byte                  `phi:"index=zip"`
}

type revRow struct {
	ID   string                  `phi:"rowid"`
	Name fieldenc.Sealed[string] `phi:"encrypt"`
	Work *revAddr
}

// A blind index inside a nil nested struct is absent, not a panic.
func TestNilNestedIndex(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	codec, err := fieldenc.NewCodec[revRow](e.table(t, fieldenc.Config{}))
	require.NoError(t, err)
	r := revRow{ID: "r1", Name: fieldenc.Of("x")}
	require.NoError(t, codec.Seal(ctx, &r))
	r.Name = sealedOnly(t, r.Name)
	require.NoError(t, codec.Open(ctx, &r))
	require.Equal(t, "x", get(t, r.Name))
	r = revRow{ID: "r2", Name: fieldenc.Of("y"), Work: &revAddr{Zip: fieldenc.Of("02139")}}
	require.NoError(t, codec.Seal(ctx, &r))
	require.Len(t, r.Work.ZipIdx, 2)
}

// Sealing twice (a retried INSERT) seals the plaintext again, never the
// ciphertext; a row read back and not opened is refused; a string
// plaintext that merely looks sealed is sealed as usual.
func TestDoubleSealRefused(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	type row struct {
		ID    string                  `phi:"rowid"`
		Photo fieldenc.Sealed[[]byte] `phi:"encrypt"`
		Note  fieldenc.Sealed[string] `phi:"encrypt"`
	}
	codec, err := fieldenc.NewCodec[row](e.table(t, fieldenc.Config{}))
	require.NoError(t, err)
	r := row{ID: "r1", Photo: fieldenc.Of([]byte("jpeg bytes")), Note: fieldenc.Of("phi:ok")}
	require.NoError(t, codec.Seal(ctx, &r))
	require.NoError(t, codec.Seal(ctx, &r))
	read := row{ID: r.ID, Photo: sealedOnly(t, r.Photo), Note: sealedOnly(t, r.Note)}
	before := read
	require.ErrorContains(t, codec.Seal(ctx, &read), "Open it first")
	require.Equal(t, before, read)
	require.NoError(t, codec.Open(ctx, &read))
	require.Equal(t, []byte("jpeg bytes"), get(t, read.Photo))
	require.Equal(t, "phi:ok", get(t, read.Note))
}

// Stored values: an unknown format version is reported as such, and a
// text form with line breaks or stray bits is refused (one value, one
// text form, so deterministic search and UNIQUE constraints hold).
func TestStoredValueChecks(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	type row struct {
		ID  string                  `phi:"rowid"`
		Raw fieldenc.Sealed[[]byte] `phi:"encrypt"`
		MRN fieldenc.Sealed[string] `phi:"encrypt,deterministic"`
	}
	codec, err := fieldenc.NewCodec[row](e.table(t, fieldenc.Config{}))
	require.NoError(t, err)
	r := row{ID: "r1", Raw: fieldenc.Of([]byte("x")), MRN: fieldenc.Of("MRN-42")}
	require.NoError(t, codec.Seal(ctx, &r))
	r = row{ID: r.ID, Raw: sealedOnly(t, r.Raw), MRN: sealedOnly(t, r.MRN)}

	// A binary value (from a BYTEA or BLOB column) of format version 3.
	x := r
	x.Raw = fieldenc.Sealed[[]byte]{}
	require.NoError(t, x.Raw.Scan(append([]byte{3}, r.Raw.Ciphertext()[1:]...)))
	require.ErrorIs(t, codec.Open(ctx, &x), fieldenc.ErrUnsupportedVersion)

	mrn := text(t, r.MRN)
	var y fieldenc.Sealed[string]
	require.ErrorIs(t, y.Scan(mrn[:10]+"\n"+mrn[10:]), fieldenc.ErrMalformed)
	last := mrn[len(mrn)-1]
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
		if c != last {
			z := r
			z.MRN = fieldenc.Sealed[string]{}
			if z.MRN.Scan(mrn[:len(mrn)-1]+string(c)) != nil {
				continue
			}
			if err := codec.Open(ctx, &z); err == nil {
				t.Fatalf("a second text form of one value opened")
			}
		}
	}
}

// Migration mode reads legacy plaintext of every Sealed type, from text or
// from the driver's native values.
func TestMigrationNativeTypes(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	type legacy struct {
		ID     string                     `phi:"rowid"`
		DOB    fieldenc.Sealed[time.Time] `phi:"encrypt"`
		Born   fieldenc.Sealed[time.Time] `phi:"encrypt"`
		Weight fieldenc.Sealed[int64]     `phi:"encrypt"`
		Alive  fieldenc.Sealed[bool]      `phi:"encrypt"`
		Count  fieldenc.Sealed[uint16]    `phi:"encrypt"`
	}
	var x legacy
	x.ID = "r1"
	require.NoError(t, x.DOB.Scan("1990-02-03"))
	require.NoError(t, x.Born.Scan(time.Date(1991, 4, 5, 6, 7, 8, 0, time.UTC)))
	require.NoError(t, x.Weight.Scan(int64(72)))
	require.NoError(t, x.Alive.Scan("true"))
	require.NoError(t, x.Count.Scan("12"))
	codec, err := fieldenc.NewCodec[legacy](e.table(t, fieldenc.Config{Migration: true}))
	require.NoError(t, err)
	require.NoError(t, codec.Open(ctx, &x))
	dob, _ := x.DOB.Get()
	born, _ := x.Born.Get()
	w, _ := x.Weight.Get()
	alive, _ := x.Alive.Get()
	count, _ := x.Count.Get()
	require.Equal(t, time.Date(1990, 2, 3, 0, 0, 0, 0, time.UTC), dob)
	require.Equal(t, time.Date(1991, 4, 5, 6, 7, 8, 0, time.UTC), born)
	require.Equal(t, int64(72), w)
	require.True(t, alive)
	require.Equal(t, uint16(12), count)
	require.NoError(t, codec.Seal(ctx, &x))
	var bad legacy
	bad.ID = "r2"
	require.NoError(t, bad.Count.Scan("70000"))
	require.Error(t, codec.Open(ctx, &bad), "out of range for uint16")
}

// Query values have the same cap as sealed ones.
func TestQueryValueCap(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	codec, err := fieldenc.NewCodec[Patient](e.table(t, fieldenc.Config{}))
	require.NoError(t, err)
	big := strings.Repeat("x", fieldenc.MaxPlaintext+1)
	_, err = codec.EqualValues(ctx, "MRN", big)
	require.ErrorIs(t, err, fieldenc.ErrTooLarge)
	_, err = codec.IndexValues(ctx, "ssn_bidx", big)
	require.ErrorIs(t, err, fieldenc.ErrTooLarge, "capped before normalization shrinks it")
}
