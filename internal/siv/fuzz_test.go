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

// FuzzBoundMatchesSeal: a Bound seals as SIV.Seal does with the same
// associated data, in place or not, and opens the result in both places.
func FuzzBoundMatchesSeal(f *testing.F) {
	s := mustNew(f, bytes.Repeat([]byte{3}, KeySize))
	f.Add([]byte{}, []byte{})
	f.Add([]byte("123-45-6789"), []byte("patients.ssn"))
	f.Add(bytes.Repeat([]byte("z"), 130), bytes.Repeat([]byte("a"), 33))
	f.Fuzz(func(t *testing.T, pt, ad []byte) {
		b := s.Bind(ad)
		want := s.Seal(nil, pt, ad)
		if got := b.Seal(nil, pt); !bytes.Equal(got, want) {
			t.Fatalf("Bound.Seal = %x, SIV.Seal = %x", got, want)
		}
		buf := make([]byte, Overhead+len(pt))
		copy(buf[Overhead:], pt)
		if got := b.Seal(buf[:0], buf[Overhead:]); !bytes.Equal(got, want) {
			t.Fatalf("in-place Bound.Seal = %x, SIV.Seal = %x", got, want)
		}
		if got, err := b.Open(buf[:0], buf); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("in-place Bound.Open = %x, %v", got, err)
		}
	})
}
