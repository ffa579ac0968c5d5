package siv

import (
	"bytes"
	"testing"
)

// FuzzOpen feeds attacker-chosen ciphertexts and associated data to Open:
// it must never panic, and anything it accepts must seal back to itself.
func FuzzOpen(f *testing.F) {
	s := mustNew(f, bytes.Repeat([]byte{9}, KeySize))
	f.Add([]byte{}, []byte{})
	f.Add(make([]byte, 15), []byte("ad"))
	f.Add(s.Seal(nil, []byte("hello"), []byte("ad")), []byte("ad"))
	f.Add(s.Seal(nil, bytes.Repeat([]byte("y"), 40), nil), []byte{})
	f.Fuzz(func(t *testing.T, ct, ad []byte) {
		pt, err := s.Open(nil, ct, ad)
		if err != nil {
			if err != ErrOpen || pt != nil {
				t.Fatalf("Open = %x, %v; want nil, ErrOpen", pt, err)
			}
			return
		}
		if again := s.Seal(nil, pt, ad); !bytes.Equal(again, ct) {
			t.Fatalf("Open accepted %x, which does not seal back to itself", ct)
		}
	})
}
