package fieldenc_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/stretchr/testify/require"
)

// rowOfTwo names its columns, so a test can open a field through the
// Column API too.
type rowOfTwo struct {
	ID    string                  `phi:"rowid"`
	Notes fieldenc.Sealed[[]byte] `phi:"encrypt,column=notes"`
	Plan  fieldenc.Sealed[string] `phi:"encrypt,column=plan"`
	MRN   fieldenc.Sealed[string] `phi:"encrypt,deterministic,column=mrn"`
}

// A struct sealed in one go opens field by field with Column.Open: the
// AAD a row builds (each column's prefix before the row part, written once
// per row) is the one docs/FORMAT.md §4 gives, with and without a row
// identity, under Seal and SealAppend alike.
func TestStructSealMatchesColumnFormat(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	tbl := e.table(t, fieldenc.Config{})
	codec, err := fieldenc.NewCodec[rowOfTwo](tbl)
	require.NoError(t, err)
	type noRow struct {
		Notes fieldenc.Sealed[[]byte] `phi:"encrypt,column=notes"`
	}
	noRowCodec, err := fieldenc.NewCodec[noRow](tbl)
	require.NoError(t, err)
	notes, err := tbl.Column("notes", fieldenc.Randomized)
	require.NoError(t, err)
	plan, err := tbl.Column("plan", fieldenc.Randomized)
	require.NoError(t, err)
	mrn, err := tbl.Column("mrn", fieldenc.Deterministic)
	require.NoError(t, err)

	for _, appendTo := range []bool{false, true} {
		for _, id := range []string{"r", "patient-00000042", string(make([]byte, fieldenc.MaxRowIDLen))} {
			v := rowOfTwo{ID: id, Notes: fieldenc.Of([]byte("notes " + id)), Plan: fieldenc.Of("plan"), MRN: fieldenc.Of("MRN-1")}
			if appendTo {
				_, err = codec.SealAppend(ctx, nil, &v)
			} else {
				err = codec.Seal(ctx, &v)
			}
			require.NoError(t, err)
			pt, err := notes.Open(ctx, nil, v.Notes.Ciphertext(), []byte(id))
			require.NoError(t, err)
			require.Equal(t, "notes "+id, string(pt))
			pt, err = plan.Open(ctx, nil, v.Plan.Ciphertext(), []byte(id))
			require.NoError(t, err)
			require.Equal(t, "plan", string(pt))
			_, err = plan.Open(ctx, nil, v.Plan.Ciphertext(), []byte(id+"x"))
			require.ErrorIs(t, err, fieldenc.ErrWrongField, "bound to its row")
			sealed, err := mrn.Seal(ctx, nil, []byte("MRN-1"), nil)
			require.NoError(t, err)
			require.Equal(t, sealed, v.MRN.Ciphertext(), "deterministic: the same bytes by either path")
		}
		w := noRow{Notes: fieldenc.Of([]byte("no row"))}
		if appendTo {
			_, err = noRowCodec.SealAppend(ctx, nil, &w)
		} else {
			err = noRowCodec.Seal(ctx, &w)
		}
		require.NoError(t, err)
		pt, err := notes.Open(ctx, nil, w.Notes.Ciphertext(), nil)
		require.NoError(t, err)
		require.Equal(t, "no row", string(pt))
	}
}

// SealAppend appends every sealed form to dst, keeping what dst held, and
// the row opens again after a round trip through JSON (the sealed text
// forms), as after Seal.
func TestSealAppendRoundTrip(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	codec, err := fieldenc.NewCodec[Patient](e.table(t, fieldenc.Config{}))
	require.NoError(t, err)
	p := samplePatient()
	buf := append(make([]byte, 0, 4096), "keep"...)
	out, err := codec.SealAppend(ctx, buf, &p)
	require.NoError(t, err)
	require.Equal(t, "keep", string(out[:4]))
	require.Same(t, &buf[0], &out[0], "sealed into dst's room, not new memory")
	total := 0
	for _, ct := range [][]byte{p.Name.Ciphertext(), p.SSN.Ciphertext(), p.MRN.Ciphertext(), p.DOB.Ciphertext(),
		p.Weight.Ciphertext(), p.Deceased.Ciphertext(), p.Notes.Ciphertext(), p.Photo.Ciphertext(), p.Home.Street.Ciphertext()} {
		require.NotEmpty(t, ct)
		require.Equal(t, len(ct), cap(ct), "a field cannot append into its neighbour")
		total += len(ct)
	}
	require.Len(t, out, 4+total, "every sealed form, nothing else")
	require.NotEmpty(t, p.SSNIndex)

	js, err := json.Marshal(p)
	require.NoError(t, err)
	var q Patient
	require.NoError(t, json.Unmarshal(js, &q))
	require.NoError(t, codec.Open(ctx, &q))
	want := samplePatient()
	for _, pair := range [][2]fieldenc.Sealed[string]{{q.Name, want.Name}, {q.SSN, want.SSN}, {q.MRN, want.MRN}, {*q.Notes, *want.Notes}, {q.Home.Street, want.Home.Street}} {
		got, ok := pair[0].Get()
		require.True(t, ok)
		w, _ := pair[1].Get()
		require.Equal(t, w, got)
	}
	dob, _ := q.DOB.Get()
	wantDOB, _ := want.DOB.Get()
	require.True(t, wantDOB.Equal(dob))
	photo, _ := q.Photo.Get()
	require.Equal(t, []byte{0xff, 0xd8, 0xff}, photo)
}

// A SealAppend that fails returns nil and leaves v as it was.
func TestSealAppendFailureLeavesRow(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	codec, err := fieldenc.NewCodec[rowOfTwo](e.table(t, fieldenc.Config{}))
	require.NoError(t, err)
	const secret = "canary-plaintext-7f3a"
	v := rowOfTwo{Notes: fieldenc.Of([]byte(secret)), Plan: fieldenc.Of(secret)} // no row id
	out, err := codec.SealAppend(ctx, make([]byte, 0, 512), &v)
	require.Error(t, err)
	require.NotContains(t, err.Error(), secret)
	require.Nil(t, out)
	require.Nil(t, v.Notes.Ciphertext())
	require.Nil(t, v.Plan.Ciphertext())
	_, err = v.Plan.Value()
	require.ErrorIs(t, err, fieldenc.ErrNotSealed)
	_, err = codec.SealAppend(ctx, nil, nil)
	require.Error(t, err)
}

// Sealing a row of ten []byte fields allocates once with Seal (the memory
// the sealed forms keep) and not at all with SealAppend into a buffer with
// room: column keys, nonces and AADs cost nothing per row.
func TestStructSealAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates; scripts/test.sh runs this without -race")
	}
	ctx := context.Background()
	e := newEnv(t, benchHC()) // no cache expiry within the runs
	codec, err := fieldenc.NewCodec[tenFields](e.table(t, fieldenc.Config{ReservedUses: 1 << 20}))
	require.NoError(t, err)
	pt := make([]byte, 64)
	var v tenFields
	fields := []*fieldenc.Sealed[[]byte]{&v.F0, &v.F1, &v.F2, &v.F3, &v.F4, &v.F5, &v.F6, &v.F7, &v.F8, &v.F9}
	fill := func() {
		v.ID = "patient-00000042"
		for _, f := range fields {
			f.Set(pt)
		}
	}
	fill()
	require.NoError(t, codec.Seal(ctx, &v)) // warm the caches
	buf := make([]byte, 0, 2048)
	seal := testing.AllocsPerRun(200, func() {
		fill()
		err = codec.Seal(ctx, &v)
	})
	require.NoError(t, err)
	sealAppend := testing.AllocsPerRun(200, func() {
		fill()
		buf, err = codec.SealAppend(ctx, buf[:0], &v)
	})
	require.NoError(t, err)
	require.Equal(t, 1.0, seal, "Seal")
	require.Zero(t, sealAppend, "SealAppend")
	require.Len(t, buf, 10*(64+33))
}

// A buffer whose room holds a plaintext of the row (the row's bytes were
// read into it, say) is left alone: the plaintext is sealed as it was,
// not overwritten first by another field's sealed form.
func TestSealAppendKeepsPlaintextInDst(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	tbl := e.table(t, fieldenc.Config{})
	codec, err := fieldenc.NewCodec[rowOfTwo](tbl)
	require.NoError(t, err)
	notes, err := tbl.Column("notes", fieldenc.Randomized)
	require.NoError(t, err)
	buf := make([]byte, 0, 1024)
	inBuf := append(buf[10:10], "notes held in the buffer"...) // where Plan's sealed form would go
	v := rowOfTwo{ID: "r1", Plan: fieldenc.Of("p"), Notes: fieldenc.Of(inBuf), MRN: fieldenc.Of("m")}
	out, err := codec.SealAppend(ctx, buf, &v)
	require.NoError(t, err)
	require.NotSame(t, &buf[:1][0], &out[:1][0], "sealed into new memory")
	require.Equal(t, "notes held in the buffer", string(inBuf), "the plaintext is untouched")
	pt, err := notes.Open(ctx, nil, v.Notes.Ciphertext(), []byte("r1"))
	require.NoError(t, err)
	require.Equal(t, "notes held in the buffer", string(pt))
}
