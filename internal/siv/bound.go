package siv

import (
	"fmt"
	"io"
)

// Bound is an SIV with one associated-data string fixed, for callers that
// seal many values under the same associated data (a column's table and
// name). Its Seal and Open give exactly the results of SIV.Seal and
// SIV.Open with that associated data; the part of S2V that depends only on
// the key and the associated data is computed once, in Bind, instead of on
// every call. It is safe for concurrent use and never prints key material.
type Bound struct {
	s *SIV
	// d is S2V's D after the associated data (RFC 5297, section 2.4):
	// dbl(CMAC(<zero>)) xor CMAC(additionalData).
	d word128
}

// Bind returns s bound to additionalData, which it does not keep: the
// caller may change or reuse it afterwards.
func (s *SIV) Bind(additionalData []byte) *Bound {
	var x [16]byte
	ads := [1][]byte{additionalData}
	return &Bound{s: s, d: s.s2vAD(x[:], ads[:])}
}

// Seal is SIV.Seal with the bound associated data: it appends the
// synthetic IV and the ciphertext of plaintext to dst and returns the
// updated slice. To encrypt in place, put the plaintext at buf[Overhead:]
// and pass buf[:0] as dst; any other overlap of the output with plaintext
// panics.
func (b *Bound) Seal(dst, plaintext []byte) []byte {
	whole, out := placeSeal(dst, plaintext)
	b.s.sealTo(out, plaintext, b.d)
	return whole
}

// Open is SIV.Open with the bound associated data: it authenticates and
// decrypts ciphertext, appends the plaintext to dst and returns the updated
// slice. Any failure returns ErrOpen and leaves no plaintext in dst's
// capacity. To decrypt in place, pass ciphertext[:0] or
// ciphertext[Overhead:Overhead] as dst; any other overlap panics.
func (b *Bound) Open(dst, ciphertext []byte) ([]byte, error) {
	whole, out, ok := placeOpen(dst, ciphertext)
	if !ok {
		return nil, ErrOpen
	}
	return b.s.openTo(b.s.scratch.Get().(*[16]byte), whole, out, ciphertext, b.d)
}

// Format prints a fixed placeholder for every verb, as SIV's does.
func (b *Bound) Format(f fmt.State, verb rune) {
	io.WriteString(f, "siv.Bound(redacted)")
}
