package siv

import (
	"bytes"
	"fmt"
	"testing"

	tinksubtle "github.com/tink-crypto/tink-go/v2/daead/subtle"
)

// TestBoundMatchesSeal checks that a Bound seals and opens exactly as SIV
// does with the same associated data, at every plaintext length across
// several CTR batches, for every key size and for empty associated data.
func TestBoundMatchesSeal(t *testing.T) {
	for _, keySize := range []int{32, 48, 64} {
		s := mustNew(t, randBytes(keySize))
		for _, adLen := range []int{0, 1, 15, 16, 17, 40} {
			ad := randBytes(adLen)
			b := s.Bind(ad)
			for n := 0; n <= 300; n++ {
				pt := randBytes(n)
				want := s.Seal(nil, pt, ad)
				got := b.Seal([]byte("prefix"), pt)
				if !bytes.Equal(got[6:], want) || string(got[:6]) != "prefix" {
					t.Fatalf("key %d, ad %d, len %d: Bound.Seal = %x, want %x after the prefix", keySize, adLen, n, got, want)
				}
				back, err := b.Open([]byte("p"), want)
				if err != nil || !bytes.Equal(back[1:], pt) || back[0] != 'p' {
					t.Fatalf("key %d, ad %d, len %d: Bound.Open = %x, %v", keySize, adLen, n, back, err)
				}
			}
		}
	}
}

// TestBoundMatchesTink checks a Bound against Tink's AES-SIV directly, in
// both directions.
func TestBoundMatchesTink(t *testing.T) {
	key := randBytes(KeySize)
	tink, err := tinksubtle.NewAESSIV(key)
	if err != nil {
		t.Fatal(err)
	}
	s := mustNew(t, key)
	for _, ad := range [][]byte{nil, []byte("x"), randBytes(24), randBytes(41)} {
		b := s.Bind(ad)
		for n := 0; n <= 200; n += 7 {
			pt := randBytes(n)
			want, err := tink.EncryptDeterministically(pt, ad)
			if err != nil {
				t.Fatal(err)
			}
			if got := b.Seal(nil, pt); !bytes.Equal(got, want) {
				t.Fatalf("ad %d, len %d: Bound.Seal = %x, Tink = %x", len(ad), n, got, want)
			}
			if back, err := b.Open(nil, want); err != nil || !bytes.Equal(back, pt) {
				t.Fatalf("ad %d, len %d: Bound.Open(Tink's output) = %x, %v", len(ad), n, back, err)
			}
		}
	}
}

// TestBoundRefusesOtherAD: a value sealed under other associated data, or
// altered, does not open, and leaves nothing in dst.
func TestBoundRefusesOtherAD(t *testing.T) {
	s := mustNew(t, randBytes(KeySize))
	pt := randBytes(64)
	other := s.Seal(nil, pt, []byte("patients.mrn"))
	b := s.Bind([]byte("patients.ssn"))
	out := make([]byte, 0, 64)
	if _, err := b.Open(out, other); err != ErrOpen {
		t.Fatalf("Open of another column's value: %v, want ErrOpen", err)
	}
	if !bytes.Equal(out[:64], make([]byte, 64)) {
		t.Error("a failed Open left bytes in dst's capacity")
	}
	ct := b.Seal(nil, pt)
	for i := range ct {
		bad := bytes.Clone(ct)
		bad[i] ^= 1
		if _, err := b.Open(nil, bad); err != ErrOpen {
			t.Fatalf("flipped byte %d: %v, want ErrOpen", i, err)
		}
	}
	if _, err := b.Open(nil, ct[:Overhead-1]); err != ErrOpen {
		t.Fatalf("short ciphertext: %v, want ErrOpen", err)
	}
}

// TestBindCopies: Bind keeps nothing of the caller's associated data.
func TestBindCopies(t *testing.T) {
	s := mustNew(t, randBytes(KeySize))
	ad := []byte("patients.ssn")
	b := s.Bind(ad)
	ad[0] = 'X'
	pt := []byte("123-45-6789")
	if got, want := b.Seal(nil, pt), s.Seal(nil, pt, []byte("patients.ssn")); !bytes.Equal(got, want) {
		t.Fatal("Bound.Seal changed with the caller's associated-data slice")
	}
}

// TestBoundInPlace seals and opens in place across CTR batch boundaries.
func TestBoundInPlace(t *testing.T) {
	s := mustNew(t, randBytes(KeySize))
	b := s.Bind([]byte("ad"))
	for _, n := range []int{0, 5, 16, 64, 127, 128, 129, 300} {
		pt := randBytes(n)
		want := b.Seal(nil, pt)
		buf := make([]byte, Overhead+n)
		copy(buf[Overhead:], pt)
		if got := b.Seal(buf[:0], buf[Overhead:]); !bytes.Equal(got, want) {
			t.Fatalf("len %d: in-place Seal differs", n)
		}
		ct := bytes.Clone(want)
		if got, err := b.Open(ct[:0], ct); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("len %d: Open to ciphertext[:0] = %v", n, err)
		}
		ct = bytes.Clone(want)
		if got, err := b.Open(ct[Overhead:Overhead], ct); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("len %d: Open to ciphertext[Overhead:Overhead] = %v", n, err)
		}
	}
}

func TestBoundOverlapPanics(t *testing.T) {
	b := mustNew(t, randBytes(KeySize)).Bind(nil)
	buf := make([]byte, 200)
	ct := b.Seal(nil, buf[:40])
	for name, f := range map[string]func(){
		"Seal to plaintext[:0]": func() { b.Seal(buf[:0], buf[:40]) },
		"Seal body shifted":     func() { b.Seal(buf[:0], buf[17:57]) },
		"Open shifted":          func() { copy(buf, ct); b.Open(buf[1:1], buf[:len(ct)]) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("did not panic")
				}
			}()
			f()
		})
	}
}

func TestBoundRedacted(t *testing.T) {
	b := mustNew(t, bytes.Repeat([]byte{0x42}, KeySize)).Bind([]byte("patients.ssn"))
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		if got := fmt.Sprintf(verb, b); got != "siv.Bound(redacted)" {
			t.Errorf("Sprintf(%q) = %q", verb, got)
		}
	}
}
