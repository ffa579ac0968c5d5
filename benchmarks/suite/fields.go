package suite

import (
	"context"
	"testing"

	"github.com/phicrypt/phicrypt/fieldenc"
	daead "github.com/tink-crypto/tink-go/v2/daead/subtle"
)

// fieldSize is the plaintext of every field case.
const fieldSize = 64

// fieldCases are fieldenc's seal, open, deterministic seal, blind index
// and ten-field struct seal (SealAppend, and Seal as a table-only
// variant), beside raw GCM and Tink's AES-SIV.
func fieldCases(env *Env) []Case {
	return []Case{
		rawSeal(env, fieldSize, 1), rawOpen(env, fieldSize),
		fieldSeal(env, fieldenc.Randomized, "field-seal"),
		fieldOpen(env),
		fieldSeal(env, fieldenc.Deterministic, "deterministic-seal"),
		tinkAESSIV(env),
		blindIndex(env),
		rawSeal(env, fieldSize, 10),
		structSeal(env, false), structSeal(env, true),
	}
}

// column returns a warmed column of kind: the cases measure cache hits.
func column(b *testing.B, env *Env, kind fieldenc.Kind) *fieldenc.Column {
	tbl, err := env.Table()
	if err != nil {
		b.Fatal(err)
	}
	col, err := tbl.Column("notes", kind)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := col.Seal(context.Background(), nil, []byte("warm"), nil); err != nil {
		b.Fatal(err)
	}
	return col
}

func fieldSeal(env *Env, kind fieldenc.Kind, op string) Case {
	return Case{
		Name: name(ImplPhicrypt, op, fieldSize), Impl: ImplPhicrypt, Op: op, Size: fieldSize,
		Bench: func(b *testing.B) {
			col := column(b, env, kind)
			ctx := context.Background()
			pt := env.Plaintext(fieldSize)
			out := make([]byte, 0, 256)
			b.SetBytes(fieldSize)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if out, err = col.Seal(ctx, out[:0], pt, nil); err != nil {
					b.Fatal(err)
				}
			}
		},
	}
}

func fieldOpen(env *Env) Case {
	return Case{
		Name: name(ImplPhicrypt, "field-open", fieldSize), Impl: ImplPhicrypt, Op: "field-open", Size: fieldSize,
		Bench: func(b *testing.B) {
			col := column(b, env, fieldenc.Randomized)
			ctx := context.Background()
			sealed, err := col.Seal(ctx, nil, env.Plaintext(fieldSize), nil)
			if err != nil {
				b.Fatal(err)
			}
			out := make([]byte, 0, 256)
			b.SetBytes(fieldSize)
			b.ReportAllocs()
			for b.Loop() {
				if out, err = col.Open(ctx, out[:0], sealed, nil); err != nil {
					b.Fatal(err)
				}
			}
		},
	}
}

// tinkAESSIV is Tink's deterministic AEAD on the same 64 bytes, with an
// associated data the size of a column's (version, key reference, table
// and column names).
func tinkAESSIV(env *Env) Case {
	return Case{
		Name: name(ImplTink, "daead-encrypt", fieldSize), Impl: ImplTink, Op: "daead-encrypt", Size: fieldSize,
		Bench: func(b *testing.B) {
			key := append(append([]byte{}, env.RawKey()...), env.RawKey()...)
			s, err := daead.NewAESSIV(key)
			if err != nil {
				b.Fatal(err)
			}
			pt, ad := env.Plaintext(fieldSize), make([]byte, 24)
			b.SetBytes(fieldSize)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.EncryptDeterministically(pt, ad); err != nil {
					b.Fatal(err)
				}
			}
		},
	}
}

// ssn is the blind index case's source value.
const ssn = "123-45-6789"

type indexed struct {
	SSN fieldenc.Sealed[string] `phi:"encrypt,blindindex=ssn_bidx:24,normalize=digits"`
	Idx []byte                  `phi:"index=ssn_bidx"`
}

func blindIndex(env *Env) Case {
	return Case{
		Name: name(ImplPhicrypt, "blind-index", int64(len(ssn))), Impl: ImplPhicrypt, Op: "blind-index", Size: int64(len(ssn)),
		Bench: func(b *testing.B) {
			tbl, err := env.Table()
			if err != nil {
				b.Fatal(err)
			}
			codec, err := fieldenc.NewCodec[indexed](tbl)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if _, err := codec.IndexValues(ctx, "ssn_bidx", ssn); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := codec.IndexValues(ctx, "ssn_bidx", ssn); err != nil {
					b.Fatal(err)
				}
			}
		},
	}
}

// tenFields has ten randomized 64-byte fields (Sealed bytes, so the
// struct path has no text encoding) and a row identity.
type tenFields struct {
	ID                             string                  `phi:"rowid"`
	F0, F1, F2, F3, F4, F5, F6, F7 fieldenc.Sealed[[]byte] `phi:"encrypt"`
	F8, F9                         fieldenc.Sealed[[]byte] `phi:"encrypt"`
}

// structSeal seals the ten fields of a row as a performance-minded caller
// does: Codec.SealAppend into one buffer reused from row to row, as the
// raw seals beside it reuse theirs. With alloc set it is the table-only
// variant "seal-alloc": Codec.Seal, which allocates one buffer per row for
// the sealed forms it must keep.
func structSeal(env *Env, alloc bool) Case {
	variant := ""
	if alloc {
		variant = "seal-alloc"
	}
	return Case{
		Name: name(ImplPhicrypt, "struct-seal", fieldSize, "x10", variant), Impl: ImplPhicrypt, Op: "struct-seal",
		Size: fieldSize, Count: 10, NoJSON: alloc,
		Bench: func(b *testing.B) {
			tbl, err := env.Table()
			if err != nil {
				b.Fatal(err)
			}
			codec, err := fieldenc.NewCodec[tenFields](tbl)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			pt := env.Plaintext(fieldSize)
			var v tenFields
			fields := []*fieldenc.Sealed[[]byte]{&v.F0, &v.F1, &v.F2, &v.F3, &v.F4, &v.F5, &v.F6, &v.F7, &v.F8, &v.F9}
			// Room for the ten sealed forms: SealAppend allocates nothing.
			buf := make([]byte, 0, 10*(fieldSize+64))
			// One row first, so that the loop measures cache hits (the
			// columns' keys derived), as the single-field cases do.
			seal := func() error {
				v.ID = "patient-00000042"
				for _, f := range fields {
					f.Set(pt)
				}
				if alloc {
					return codec.Seal(ctx, &v)
				}
				buf, err = codec.SealAppend(ctx, buf[:0], &v)
				return err
			}
			if err := seal(); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(10 * fieldSize)
			b.ReportAllocs()
			for b.Loop() {
				if err := seal(); err != nil {
					b.Fatal(err)
				}
			}
		},
	}
}
