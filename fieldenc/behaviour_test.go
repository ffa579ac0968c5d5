package fieldenc_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/stretchr/testify/require"
)

func TestTransplantRefused(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	tbl := e.table(t, fieldenc.Config{})
	codec, err := fieldenc.NewCodec[Patient](tbl)
	require.NoError(t, err)
	a, b := samplePatient(), samplePatient()
	b.ID = "row-2"
	require.NoError(t, codec.Seal(ctx, &a))
	require.NoError(t, codec.Seal(ctx, &b))

	// Another row: a's notes pasted into b.
	moved := b
	notes := sealedOnly(t, *a.Notes)
	moved.Notes = &notes
	err = codec.Open(ctx, &moved)
	require.ErrorIs(t, err, fieldenc.ErrWrongField)
	var fe *fieldenc.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "Notes", fe.Path)

	// Another column of the same row: Home.Street into Notes.
	moved = a
	street := sealedOnly(t, a.Home.Street)
	moved.Notes = &street
	require.ErrorIs(t, codec.Open(ctx, &moved), fieldenc.ErrWrongField)

	// Another table with the same key.
	other := e.table(t, fieldenc.Config{Table: "visits"})
	oc, err := fieldenc.NewCodec[Patient](other)
	require.NoError(t, err)
	copyA := a
	require.ErrorIs(t, oc.Open(ctx, &copyA), fieldenc.ErrWrongField)

	// Deterministic values are not row-bound (that is what makes them
	// searchable), but they are column-bound.
	det := b
	det.MRN = sealedOnly(t, a.MRN)
	require.NoError(t, codec.Open(ctx, &det))
	det = a
	det.Home.Street = sealedOnly(t, a.MRN)
	require.ErrorIs(t, codec.Open(ctx, &det), fieldenc.ErrWrongField)

	// A flipped bit anywhere is refused; never a panic.
	raw := a.Photo.Ciphertext()
	for i := range raw {
		for bit := range 8 {
			x := a
			flipped := append([]byte(nil), raw...)
			flipped[i] ^= 1 << bit
			x.Photo = fieldenc.Sealed[[]byte]{}
			require.NoError(t, x.Photo.Scan(flipped))
			err := codec.Open(ctx, &x)
			require.Error(t, err, "byte %d bit %d", i, bit)
		}
	}
}

func TestDeterministicAndBlindIndexSearch(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	tbl := e.table(t, fieldenc.Config{})
	codec, err := fieldenc.NewCodec[Patient](tbl)
	require.NoError(t, err)
	a, b := samplePatient(), samplePatient()
	b.ID = "row-2"
	b.SSN = fieldenc.Of("123 45 6789") // normalized to the same digits
	require.NoError(t, codec.Seal(ctx, &a))
	require.NoError(t, codec.Seal(ctx, &b))
	require.Equal(t, a.MRN.Ciphertext(), b.MRN.Ciphertext(), "deterministic: equal plaintexts, equal ciphertexts")
	require.Equal(t, a.SSNIndex, b.SSNIndex, "normalized before indexing")
	nb, _ := b.Name.Get()
	require.NotEqual(t, a.Name.Ciphertext(), b.Name.Ciphertext(), "randomized: %s", nb)

	idx, err := codec.IndexValues(ctx, "ssn_bidx", "123456789")
	require.NoError(t, err)
	require.Equal(t, []any{a.SSNIndex}, idx)
	eq, err := codec.EqualValues(ctx, "MRN", "MRN-000042")
	require.NoError(t, err)
	require.Equal(t, []any{text(t, a.MRN)}, eq)

	// After a rotation both versions are live: two values each, active
	// first, and the old rows' values among them.
	e.rotate(t, tbl)
	c := samplePatient()
	c.ID = "row-3"
	require.NoError(t, codec.Seal(ctx, &c))
	require.NotEqual(t, a.MRN.Ciphertext(), c.MRN.Ciphertext(), "a new version gives new deterministic values")
	idx, err = codec.IndexValues(ctx, "ssn_bidx", "123-45-6789")
	require.NoError(t, err)
	require.Equal(t, []any{c.SSNIndex, a.SSNIndex}, idx)
	eq, err = codec.EqualValues(ctx, "MRN", "MRN-000042")
	require.NoError(t, err)
	require.Equal(t, []any{text(t, c.MRN), text(t, a.MRN)}, eq)
	// Old rows still open.
	require.NoError(t, codec.Open(ctx, &a))

	_, err = codec.EqualValues(ctx, "Notes", "x")
	require.ErrorContains(t, err, "not deterministic")
	_, err = codec.IndexValues(ctx, "ssn_bidx", 42)
	require.ErrorContains(t, err, "query value")
	_, err = codec.IndexValues(ctx, "nope", "x")
	require.Error(t, err)
}

// Retiring a version makes its values fail with keyring.ErrVersionRetired.
func TestRetiredVersion(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, keyring.HierarchicalConfig{CacheTTL: 50 * time.Millisecond})
	tbl := e.table(t, fieldenc.Config{})
	codec, err := fieldenc.NewCodec[Patient](tbl)
	require.NoError(t, err)
	old := samplePatient()
	require.NoError(t, codec.Seal(ctx, &old))
	v0, err := e.store.Active(ctx, e.id)
	require.NoError(t, err)
	e.rotate(t, tbl)
	require.NoError(t, e.store.SetState(ctx, e.id, v0.Version, keystore.StateDecryptOnly, keystore.StateRetired))
	time.Sleep(60 * time.Millisecond) // the keyring's cache lifetime
	tbl.Refresh()
	x := old
	err = codec.Open(ctx, &x)
	require.Error(t, err)
	require.True(t, errorsIsAny(err, keyring.ErrVersionRetired, fieldenc.ErrUnknownKey), "%v", err)
}

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errorsIs(err, t) {
			return true
		}
	}
	return false
}

func TestCompileErrors(t *testing.T) {
	type badTag struct {
		A fieldenc.Sealed[string] `phi:"encrypt,sideways"`
	}
	type badType struct {
		A time.Time `phi:"encrypt"`
	}
	type noTarget struct {
		A fieldenc.Sealed[string] `phi:"encrypt,blindindex=a_idx:16"`
	}
	type noSource struct {
		A []byte `phi:"index=a_idx"`
	}
	type badBits struct {
		A fieldenc.Sealed[string] `phi:"encrypt,blindindex=a_idx:300"`
		I []byte                  `phi:"index=a_idx"`
	}
	type int64TooNarrow struct {
		A fieldenc.Sealed[string] `phi:"encrypt,blindindex=a_idx:64"`
		I int64                   `phi:"index=a_idx"`
	}
	type normNoIndex struct {
		A fieldenc.Sealed[string] `phi:"encrypt,normalize=digits"`
	}
	type badNorm struct {
		A fieldenc.Sealed[string] `phi:"encrypt,blindindex=a_idx:16,normalize=soundex"`
		I []byte                  `phi:"index=a_idx"`
	}
	type normNotText struct {
		A fieldenc.Sealed[int64] `phi:"encrypt,blindindex=a_idx:16,normalize=digits"`
		I []byte                 `phi:"index=a_idx"`
	}
	type twoRows struct {
		A string `phi:"rowid"`
		B string `phi:"rowid"`
	}
	type dupColumn struct {
		A fieldenc.Sealed[string] `phi:"encrypt,column=x"`
		B fieldenc.Sealed[string] `phi:"encrypt,column=x"`
	}
	type unexported struct {
		//lint:ignore U1000 the codec must refuse an unexported tagged field; only its tag is read
		a fieldenc.Sealed[string] `phi:"encrypt"`
	}
	for name, err := range map[string]error{
		"badTag":         fieldenc.Check[badTag](),
		"badType":        fieldenc.Check[badType](),
		"noTarget":       fieldenc.Check[noTarget](),
		"noSource":       fieldenc.Check[noSource](),
		"badBits":        fieldenc.Check[badBits](),
		"int64TooNarrow": fieldenc.Check[int64TooNarrow](),
		"normNoIndex":    fieldenc.Check[normNoIndex](),
		"badNorm":        fieldenc.Check[badNorm](),
		"normNotText":    fieldenc.Check[normNotText](),
		"twoRows":        fieldenc.Check[twoRows](),
		"dupColumn":      fieldenc.Check[dupColumn](),
		"unexported":     fieldenc.Check[unexported](),
	} {
		require.Error(t, err, name)
		require.Contains(t, err.Error(), "field ", name)
		require.Contains(t, err.Error(), "phi:", name)
		t.Logf("%s: %v", name, err)
	}
	require.NoError(t, fieldenc.Check[Patient]())
	require.Contains(t, fieldenc.Check[badType]().Error(), "Sealed[time.Time]")
}

// The canary: a recognisable plaintext never shows in errors, fmt, JSON
// or slog output.
func TestCanaryNeverPrinted(t *testing.T) {
	ctx := context.Background()
	const canary = "CANARY-7f3a9c"
	e := newEnv(t, zeroHC())
	tbl := e.table(t, fieldenc.Config{})
	codec, err := fieldenc.NewCodec[Patient](tbl)
	require.NoError(t, err)
	p := samplePatient()
	p.Name = fieldenc.Of(canary)
	p.SSN = fieldenc.Of(canary)
	p.DOB = fieldenc.Of(time.Date(1999, 9, 9, 0, 0, 0, 0, time.UTC))

	var out bytes.Buffer
	show := func(p Patient) {
		fmt.Fprintf(&out, "%v %+v %#v %s %q %x\n", p.Name, p, p, p.Name, p.SSN, p.Name)
		js, err := json.Marshal(p)
		require.NoError(t, err)
		out.Write(js)
		slog.New(slog.NewJSONHandler(&out, nil)).Info("patient", "name", p.Name, "p", p)
		slog.New(slog.NewTextHandler(&out, nil)).Info("patient", "ssn", p.SSN)
	}
	show(p) // plaintext only
	require.NoError(t, codec.Seal(ctx, &p))
	show(p) // plaintext and sealed
	require.NoError(t, codec.Open(ctx, &p))
	show(p) // opened

	// Errors: bad values pushed through every open path.
	var errs []error
	bad := p
	bad.Name = fieldenc.Sealed[string]{}
	errs = append(errs, bad.Name.Scan("phi:"+canary))
	require.NoError(t, bad.Name.Scan("phi:"+canary[:8]))
	errs = append(errs, codec.Open(ctx, &bad))
	require.NoError(t, bad.Name.Scan(canary)) // legacy plaintext, not in migration mode
	errs = append(errs, codec.Open(ctx, &bad))
	var sealedInt fieldenc.Sealed[int64]
	errs = append(errs, sealedInt.UnmarshalJSON([]byte(`"`+canary+`"`)))
	_, err = codec.IndexValues(ctx, "ssn_bidx", []byte(canary))
	errs = append(errs, err)
	_, err = codec.EqualValues(ctx, "Notes", canary)
	errs = append(errs, err)
	for _, err := range errs {
		require.Error(t, err)
		out.WriteString(err.Error() + "\n")
	}
	require.NotContains(t, out.String(), canary)
	require.NotContains(t, out.String(), "1999")
	require.Contains(t, out.String(), fieldenc.Redacted)
}

func TestMigrationMode(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	type legacy struct {
		ID    int64                   `phi:"rowid"`
		Name  fieldenc.Sealed[string] `phi:"encrypt"`
		Notes fieldenc.Sealed[string] `phi:"encrypt"`
		Raw   fieldenc.Sealed[[]byte] `phi:"encrypt"`
	}
	// Legacy plaintext as a driver returns it: text, and bytes from a
	// BYTEA or BLOB column.
	old := legacy{ID: 7}
	require.NoError(t, old.Name.Scan("Grace Hopper"))
	require.NoError(t, old.Notes.Scan("plain notes"))
	require.NoError(t, old.Raw.Scan([]byte("plain raw")))

	strict, err := fieldenc.NewCodec[legacy](e.table(t, fieldenc.Config{}))
	require.NoError(t, err)
	x := old
	require.ErrorIs(t, strict.Open(ctx, &x), fieldenc.ErrMalformed, "legacy plaintext needs Migration")

	mig, err := fieldenc.NewCodec[legacy](e.table(t, fieldenc.Config{Migration: true}))
	require.NoError(t, err)
	x = old
	require.NoError(t, mig.Open(ctx, &x))
	name, ok := x.Name.Get()
	require.True(t, ok)
	require.Equal(t, "Grace Hopper", name)
	require.Equal(t, "plain notes", get(t, x.Notes))
	require.Equal(t, []byte("plain raw"), get(t, x.Raw))
	_, err = x.Notes.Value()
	require.ErrorIs(t, err, fieldenc.ErrNotSealed, "a legacy value opened is written back only sealed")
	require.NoError(t, mig.Seal(ctx, &x), "legacy rows are sealed on their next write")
	require.True(t, strings.HasPrefix(text(t, x.Notes), fieldenc.TextPrefix))
	y := legacy{ID: 7, Name: sealedOnly(t, x.Name), Notes: sealedOnly(t, x.Notes), Raw: sealedOnly(t, x.Raw)}
	require.NoError(t, strict.Open(ctx, &y))
	require.Equal(t, "Grace Hopper", get(t, y.Name))
	require.Equal(t, "plain notes", get(t, y.Notes))
	require.Equal(t, []byte("plain raw"), get(t, y.Raw))
}

func TestSealRefusals(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	codec, err := fieldenc.NewCodec[Patient](e.table(t, fieldenc.Config{}))
	require.NoError(t, err)
	p := samplePatient()
	p.ID = ""
	require.ErrorContains(t, codec.Seal(ctx, &p), "row identity is not set")
	p = samplePatient()
	require.NoError(t, codec.Seal(ctx, &p))
	// A row read back and not opened: sealing it again is refused.
	read := Patient{ID: p.ID, Name: sealedOnly(t, p.Name)}
	before := read
	require.ErrorContains(t, codec.Seal(ctx, &read), "Open it first")
	require.Equal(t, before, read, "a failed Seal leaves the struct as it was")
	p = samplePatient()
	big := fieldenc.Of(strings.Repeat("x", fieldenc.MaxPlaintext+1))
	p.Notes = &big
	require.ErrorIs(t, codec.Seal(ctx, &p), fieldenc.ErrTooLarge)
	require.Error(t, codec.Seal(ctx, nil))

	var s fieldenc.Sealed[string]
	require.True(t, s.IsNull())
	v, err := s.Value()
	require.NoError(t, err)
	require.Nil(t, v, "the zero Sealed is NULL")
	s.Set("x")
	_, err = s.Value()
	require.ErrorIs(t, err, fieldenc.ErrNotSealed)
}

// A plain string or []byte tagged encrypt would keep its plaintext after a
// failed Seal, and an INSERT would store it: it is refused when the type is
// compiled, with the Sealed type to use instead.
func TestPlainFieldsRefused(t *testing.T) {
	// The struct the README showed before: MRN a plain string.
	type readmePatient struct {
		ID       string                     `phi:"rowid"`
		Name     fieldenc.Sealed[string]    `phi:"encrypt"`
		SSN      fieldenc.Sealed[string]    `phi:"encrypt,blindindex=ssn_bidx:24,normalize=digits"`
		SSNIndex []byte                     `phi:"index=ssn_bidx"`
		MRN      string                     `phi:"encrypt,deterministic"`
		DOB      fieldenc.Sealed[time.Time] `phi:"encrypt"`
	}
	e := newEnv(t, zeroHC())
	tbl := e.table(t, fieldenc.Config{})
	_, err := fieldenc.NewCodec[readmePatient](tbl)
	require.EqualError(t, err, `fieldenc: fieldenc_test.readmePatient field MRN, tag phi:"encrypt,deterministic": `+
		`a plain string would still hold its plaintext after a failed Seal, and an INSERT would store it; `+
		`declare it fieldenc.Sealed[string], which refuses to be written unsealed`)
	p := readmePatient{ID: "r1", MRN: "MRN-000042"}
	require.ErrorContains(t, tbl.Seal(context.Background(), &p), "fieldenc.Sealed[string]")
	require.Equal(t, "MRN-000042", p.MRN)

	type mrn string
	type photo []byte
	type inner struct {
		Street string `phi:"encrypt"`
	}
	for _, c := range []struct {
		err        error
		path, want string
	}{
		{fieldenc.Check[struct {
			Notes string `phi:"encrypt"`
		}](), "Notes", "fieldenc.Sealed[string]"},
		{fieldenc.Check[struct {
			Photo []byte `phi:"encrypt"`
		}](), "Photo", "fieldenc.Sealed[[]byte]"},
		{fieldenc.Check[struct {
			Notes *string `phi:"encrypt"`
		}](), "Notes", "fieldenc.Sealed[string]"},
		{fieldenc.Check[struct {
			MRN mrn `phi:"encrypt,deterministic"`
		}](), "MRN", "fieldenc.Sealed[fieldenc_test.mrn]"},
		{fieldenc.Check[struct {
			Photo photo `phi:"encrypt"`
		}](), "Photo", "fieldenc.Sealed[fieldenc_test.photo]"},
		{fieldenc.Check[struct {
			SSN string `phi:"encrypt,blindindex=ssn:16,normalize=digits"`
			Idx []byte `phi:"index=ssn"`
		}](), "SSN", "fieldenc.Sealed[string]"},
		{fieldenc.Check[struct{ Home inner }](), "Home.Street", "fieldenc.Sealed[string]"},
	} {
		require.Error(t, c.err, c.path)
		require.ErrorContains(t, c.err, "field "+c.path+", tag phi:")
		require.ErrorContains(t, c.err, "declare it "+c.want+", which refuses to be written unsealed")
	}
}

// An error names the failing step once: no "fieldenc: field X: fieldenc:"
// (issue 9, item 8).
func TestErrorsNameFieldencOnce(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	tbl := e.table(t, fieldenc.Config{})
	codec, err := fieldenc.NewCodec[Patient](tbl)
	require.NoError(t, err)
	var errs []error

	// Seal: a field over the cap; a row read back and not opened.
	p := samplePatient()
	big := fieldenc.Of(strings.Repeat("x", fieldenc.MaxPlaintext+1))
	p.Notes = &big
	errs = append(errs, codec.Seal(ctx, &p))
	p = samplePatient()
	require.NoError(t, codec.Seal(ctx, &p))
	read := Patient{ID: p.ID, Name: sealedOnly(t, p.Name)}
	errs = append(errs, codec.Seal(ctx, &read))

	// Open: moved to another row; not sealed (legacy, no Migration); an
	// unknown format version; a plaintext that does not fit its type.
	moved := Patient{ID: "row-2", Name: sealedOnly(t, p.Name)}
	errs = append(errs, codec.Open(ctx, &moved))
	legacy := Patient{ID: p.ID}
	require.NoError(t, legacy.Name.Scan("Ada"))
	errs = append(errs, codec.Open(ctx, &legacy))
	bad := Patient{ID: p.ID}
	require.NoError(t, bad.Photo.Scan(append([]byte{9}, p.Photo.Ciphertext()[1:]...)))
	errs = append(errs, codec.Open(ctx, &bad))
	type asInt struct {
		ID   string                 `phi:"rowid"`
		Name fieldenc.Sealed[int32] `phi:"encrypt,column=Name"`
	}
	wrongType := asInt{ID: p.ID, Name: fieldenc.Sealed[int32]{}}
	require.NoError(t, wrongType.Name.Scan(text(t, p.Name)))
	errs = append(errs, tbl.Open(ctx, &wrongType))

	// Binding a type whose column name is too long; a canceled first Seal.
	long := reflect.StructOf([]reflect.StructField{{Name: strings.Repeat("A", 300), Type: reflect.TypeFor[fieldenc.Sealed[string]](), Tag: `phi:"encrypt"`}})
	errs = append(errs, tbl.Seal(ctx, reflect.New(long).Interface()))
	cold := newEnv(t, zeroHC())
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	coldCodec, err := fieldenc.NewCodec[Patient](cold.table(t, fieldenc.Config{}))
	require.NoError(t, err)
	p = samplePatient()
	errs = append(errs, coldCodec.Seal(canceled, &p))

	// A re-encryption job meeting a row it cannot open.
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "reencrypt.db"))
	require.NoError(t, err)
	defer db.Close()
	job := &fieldenc.Reencrypt[Patient]{DB: db, Codec: codec, Job: "errors",
		Load: func(_ context.Context, _ *sql.Tx, after string, _ int) ([]Patient, error) {
			if after != "" {
				return nil, nil
			}
			return []Patient{legacy}, nil
		},
		Key:  func(p *Patient) string { return p.ID },
		Save: func(context.Context, *sql.Tx, *Patient) error { return nil },
	}
	_, err = job.Run(ctx)
	require.ErrorIs(t, err, fieldenc.ErrMalformed)
	require.ErrorContains(t, err, "re-sealing the row after the checkpoint: field Name:")
	errs = append(errs, err)

	for _, err := range errs {
		require.Error(t, err)
		msg := err.Error()
		require.True(t, strings.HasPrefix(msg, "fieldenc: "), msg)
		require.Equal(t, 1, strings.Count(msg, "fieldenc:"), "fieldenc named more than once: %s", msg)
		t.Log(msg)
	}
}
