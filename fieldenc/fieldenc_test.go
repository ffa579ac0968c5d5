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
	Street string `phi:"encrypt"`
	City   string // not PHI
}

type Patient struct {
	ID       string                     `phi:"rowid"`
	Name     fieldenc.Sealed[string]    `phi:"encrypt"`
	SSN      fieldenc.Sealed[string]    `phi:"encrypt,blindindex=ssn_bidx:24,normalize=digits"`
	SSNIndex []byte                     `phi:"index=ssn_bidx"`
	MRN      string                     `phi:"encrypt,deterministic"`
	DOB      fieldenc.Sealed[time.Time] `phi:"encrypt,column=dob"`
	Weight   fieldenc.Sealed[int64]     `phi:"encrypt"`
	Deceased fieldenc.Sealed[bool]      `phi:"encrypt"`
	Notes    *string                    `phi:"encrypt"`
	Photo    []byte                     `phi:"encrypt"`
	Home     Address
	Work     *Address
	Ward     string `phi:"-"`
}

func samplePatient() Patient {
	notes := "allergic to penicillin"
	return Patient{
		ID:       "row-1",
		Name:     fieldenc.Of("Ada Lovelace"),
		SSN:      fieldenc.Of("123-45-6789"),
		MRN:      "MRN-000042",
		DOB:      fieldenc.Of(time.Date(1815, 12, 10, 0, 0, 0, 0, time.UTC)),
		Weight:   fieldenc.Of[int64](61),
		Deceased: fieldenc.Of(true),
		Notes:    &notes,
		Photo:    []byte{0xff, 0xd8, 0xff},
		Home:     Address{Street: "12 St James's Square", City: "London"},
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
	require.True(t, strings.HasPrefix(p.MRN, fieldenc.TextPrefix), "in-place strings hold the text form")
	require.True(t, strings.HasPrefix(*p.Notes, fieldenc.TextPrefix))
	require.True(t, strings.HasPrefix(p.Home.Street, fieldenc.TextPrefix), "nested fields are sealed")
	require.Equal(t, "London", p.Home.City)
	require.Equal(t, "4B", p.Ward)
	require.Nil(t, p.Work, "a nil pointer stays nil")
	require.NotEqual(t, []byte{0xff, 0xd8, 0xff}, p.Photo)
	require.Len(t, p.SSNIndex, 3, "24 bits")
	require.NotNil(t, p.Name.Ciphertext())
	require.NotContains(t, p.MRN, "000042")

	// Another process: a fresh struct from the stored values only.
	stored := Patient{ID: p.ID, Name: sealedOnly(t, p.Name), SSN: sealedOnly(t, p.SSN), MRN: p.MRN,
		DOB: sealedOnly(t, p.DOB), Weight: sealedOnly(t, p.Weight), Deceased: sealedOnly(t, p.Deceased),
		Notes: p.Notes, Photo: p.Photo, Home: p.Home}
	_, ok := stored.Name.Get()
	require.False(t, ok)
	tbl2 := e.table(t, fieldenc.Config{})
	require.NoError(t, tbl2.Open(ctx, &stored))
	want := samplePatient()
	name, _ := stored.Name.Get()
	require.Equal(t, "Ada Lovelace", name)
	ssn, _ := stored.SSN.Get()
	require.Equal(t, "123-45-6789", ssn)
	dob, _ := stored.DOB.Get()
	wantDOB, _ := want.DOB.Get()
	require.True(t, wantDOB.Equal(dob))
	w, _ := stored.Weight.Get()
	require.Equal(t, int64(61), w)
	d, _ := stored.Deceased.Get()
	require.True(t, d)
	require.Equal(t, want.MRN, stored.MRN)
	require.Equal(t, *want.Notes, *stored.Notes)
	require.Equal(t, want.Photo, stored.Photo)
	require.Equal(t, want.Home, stored.Home)
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
