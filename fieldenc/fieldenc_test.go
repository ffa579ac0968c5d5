package fieldenc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/stretchr/testify/require"
)

type Address struct {
	Street fieldenc.Sealed[string] `phi:"encrypt"`
	City   string                  // not PHI
}

type Patient struct {
	ID       string                     `phi:"rowid"`
	Name     fieldenc.Sealed[string]    `phi:"encrypt"`
	SSN      fieldenc.Sealed[string]    `phi:"encrypt,blindindex=ssn_bidx:24,normalize=digits"`
	SSNIndex []byte                     `phi:"index=ssn_bidx"`
	MRN      fieldenc.Sealed[string]    `phi:"encrypt,deterministic"`
	DOB      fieldenc.Sealed[time.Time] `phi:"encrypt,column=dob"`
	Weight   fieldenc.Sealed[int64]     `phi:"encrypt"`
	Deceased fieldenc.Sealed[bool]      `phi:"encrypt"`
	Notes    *fieldenc.Sealed[string]   `phi:"encrypt"`
	Photo    fieldenc.Sealed[[]byte]    `phi:"encrypt"`
	Home     Address
	Work     *Address
	Ward     string `phi:"-"`
}

func samplePatient() Patient {
	notes := fieldenc.Of("allergic to penicillin")
	return Patient{
		ID:       "row-1",
		Name:     fieldenc.Of("Ada Lovelace"),
		SSN:      fieldenc.Of("123-45-6789"),
		MRN:      fieldenc.Of("MRN-000042"),
		DOB:      fieldenc.Of(time.Date(1815, 12, 10, 0, 0, 0, 0, time.UTC)),
		Weight:   fieldenc.Of[int64](61),
		Deceased: fieldenc.Of(true),
		Notes:    &notes,
		Photo:    fieldenc.Of([]byte{0xff, 0xd8, 0xff}),
		Home:     Address{Street: fieldenc.Of("12 St James's Square"), City: "London"},
		Ward:     "4B",
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	tbl := e.table(t, fieldenc.Config{})
	codec, err := fieldenc.NewCodec[Patient](tbl)
	require.NoError(t, err)

	p := samplePatient()
	require.NoError(t, codec.Seal(ctx, &p))
	require.True(t, strings.HasPrefix(text(t, p.MRN), fieldenc.TextPrefix), "Sealed values are written in the text form")
	require.True(t, strings.HasPrefix(text(t, *p.Notes), fieldenc.TextPrefix), "pointers to Sealed are sealed")
	require.True(t, strings.HasPrefix(text(t, p.Home.Street), fieldenc.TextPrefix), "nested fields are sealed")
	require.Equal(t, "London", p.Home.City)
	require.Equal(t, "4B", p.Ward)
	require.Nil(t, p.Work, "a nil pointer stays nil")
	require.NotNil(t, p.Photo.Ciphertext())
	require.Len(t, p.SSNIndex, 3, "24 bits")
	require.NotNil(t, p.Name.Ciphertext())
	require.NotContains(t, text(t, p.MRN), "000042")

	// Another process: a fresh struct from the stored values only.
	notes := sealedOnly(t, *p.Notes)
	stored := Patient{ID: p.ID, Name: sealedOnly(t, p.Name), SSN: sealedOnly(t, p.SSN), MRN: sealedOnly(t, p.MRN),
		DOB: sealedOnly(t, p.DOB), Weight: sealedOnly(t, p.Weight), Deceased: sealedOnly(t, p.Deceased),
		Notes: &notes, Photo: sealedOnly(t, p.Photo), Home: Address{Street: sealedOnly(t, p.Home.Street), City: p.Home.City}}
	_, ok := stored.Name.Get()
	require.False(t, ok)
	tbl2 := e.table(t, fieldenc.Config{})
	require.NoError(t, tbl2.Open(ctx, &stored))
	want := samplePatient()
	require.Equal(t, "Ada Lovelace", get(t, stored.Name))
	require.Equal(t, "123-45-6789", get(t, stored.SSN))
	require.True(t, get(t, want.DOB).Equal(get(t, stored.DOB)))
	require.Equal(t, int64(61), get(t, stored.Weight))
	require.True(t, get(t, stored.Deceased))
	require.Equal(t, get(t, want.MRN), get(t, stored.MRN))
	require.Equal(t, get(t, *want.Notes), get(t, *stored.Notes))
	require.Equal(t, get(t, want.Photo), get(t, stored.Photo))
	require.Equal(t, get(t, want.Home.Street), get(t, stored.Home.Street))
	require.Equal(t, want.Home.City, stored.Home.City)
}

// sealedOnly is s as read back from a database: the sealed form only.
func sealedOnly[T fieldenc.Plain](t testing.TB, s fieldenc.Sealed[T]) fieldenc.Sealed[T] {
	t.Helper()
	v, err := s.Value()
	require.NoError(t, err)
	var out fieldenc.Sealed[T]
	require.NoError(t, out.Scan(v))
	return out
}

// text is what s writes to a database.
func text[T fieldenc.Plain](t testing.TB, s fieldenc.Sealed[T]) string {
	t.Helper()
	v, err := s.Value()
	require.NoError(t, err)
	str, ok := v.(string)
	require.True(t, ok, "the text form")
	return str
}

// get is s's plaintext, which must be there.
func get[T fieldenc.Plain](t testing.TB, s fieldenc.Sealed[T]) T {
	t.Helper()
	v, ok := s.Get()
	require.True(t, ok, "no plaintext")
	return v
}
