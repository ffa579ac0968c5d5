package siv

import (
	"bytes"
	"testing"

	tinksubtle "github.com/tink-crypto/tink-go/v2/daead/subtle"
)

// TestMatchesTink checks byte-for-byte agreement with Tink's AES-SIV, the
// implementation DESIGN.md names for deterministic fields, on random keys,
// plaintexts of every length from 0 to 300 and random associated data,
// the empty string included; and that each opens the other's output.
func TestMatchesTink(t *testing.T) {
	for k := range 4 {
		key := randBytes(KeySize)
		ours := mustNew(t, key)
		tink, err := tinksubtle.NewAESSIV(key)
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n <= 300; n++ {
			pt := randBytes(n)
			ad := randBytes((n*7 + k) % 50) // 0..49 bytes, empty every so often
			if n%10 == 0 {
				ad = nil
			}
			checkAgainstTink(t, ours, tink, pt, ad)
		}
	}
}

func checkAgainstTink(t *testing.T, ours *SIV, tink *tinksubtle.AESSIV, pt, ad []byte) {
	t.Helper()
	want, err := tink.EncryptDeterministically(pt, ad)
	if err != nil {
		t.Fatal(err)
	}
	got := ours.Seal(nil, pt, ad)
	if !bytes.Equal(got, want) {
		t.Fatalf("len %d, ad %d: Seal = %x, Tink = %x", len(pt), len(ad), got, want)
	}
	if back, err := ours.Open(nil, want, ad); err != nil || !bytes.Equal(back, pt) {
		t.Fatalf("len %d, ad %d: Open(Tink's output) = %x, %v", len(pt), len(ad), back, err)
	}
	if back, err := tink.DecryptDeterministically(got, ad); err != nil || !bytes.Equal(back, pt) {
		t.Fatalf("len %d, ad %d: Tink cannot open our output: %x, %v", len(pt), len(ad), back, err)
	}
}

func FuzzSealMatchesTink(f *testing.F) {
	f.Add(make([]byte, KeySize), []byte(""), []byte(""))
	f.Add(bytes.Repeat([]byte{1}, KeySize), []byte("123-45-6789"), []byte("patients.ssn"))
	f.Add(bytes.Repeat([]byte{2}, KeySize), bytes.Repeat([]byte("x"), 47), []byte{})
	f.Fuzz(func(t *testing.T, key, pt, ad []byte) {
		if len(key) < KeySize {
			key = append(key, make([]byte, KeySize-len(key))...)
		}
		key = key[:KeySize]
		tink, err := tinksubtle.NewAESSIV(key)
		if err != nil {
			t.Fatal(err)
		}
		checkAgainstTink(t, mustNew(t, key), tink, pt, ad)
	})
}
