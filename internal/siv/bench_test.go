package siv

import (
	"testing"

	tinksubtle "github.com/tink-crypto/tink-go/v2/daead/subtle"
)

// The sizes of a deterministic PHI column: a 64-byte value (a name, an
// address line) and 32 bytes of associated data (table, column, key
// version).
const benchPlaintext, benchAD = 64, 32

func benchInputs(b *testing.B) (key, pt, ad []byte) {
	return randBytes(KeySize), randBytes(benchPlaintext), randBytes(benchAD)
}

func BenchmarkSeal64(b *testing.B) {
	key, pt, ad := benchInputs(b)
	s := mustNew(b, key)
	out := make([]byte, 0, Overhead+len(pt))
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		out = s.Seal(out[:0], pt, ad)
	}
}

// BenchmarkBoundSeal64 is Seal with the associated data bound once, as
// fieldenc seals a column's values.
func BenchmarkBoundSeal64(b *testing.B) {
	key, pt, ad := benchInputs(b)
	s := mustNew(b, key).Bind(ad)
	out := make([]byte, 0, Overhead+len(pt))
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		out = s.Seal(out[:0], pt)
	}
}

func BenchmarkTinkSeal64(b *testing.B) {
	key, pt, ad := benchInputs(b)
	tink, err := tinksubtle.NewAESSIV(key)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tink.EncryptDeterministically(pt, ad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen64(b *testing.B) {
	key, pt, ad := benchInputs(b)
	s := mustNew(b, key)
	ct := s.Seal(nil, pt, ad)
	out := make([]byte, 0, len(pt))
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if out, err = s.Open(out[:0], ct, ad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBoundOpen64(b *testing.B) {
	key, pt, ad := benchInputs(b)
	s := mustNew(b, key).Bind(ad)
	ct := s.Seal(nil, pt)
	out := make([]byte, 0, len(pt))
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if out, err = s.Open(out[:0], ct); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTinkOpen64(b *testing.B) {
	key, pt, ad := benchInputs(b)
	tink, err := tinksubtle.NewAESSIV(key)
	if err != nil {
		b.Fatal(err)
	}
	ct, err := tink.EncryptDeterministically(pt, ad)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tink.DecryptDeterministically(ct, ad); err != nil {
			b.Fatal(err)
		}
	}
}
