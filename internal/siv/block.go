package siv

import "encoding/binary"

// word128 is one 128-bit block held as two big-endian halves, so that the
// block arithmetic of RFC 5297 (xor, doubling, the counter) runs on
// registers instead of byte slices.
type word128 struct{ hi, lo uint64 }

func load(b []byte) word128 {
	_ = b[15] // one bounds check
	return word128{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}
}

func (w word128) store(b []byte) {
	_ = b[15]
	binary.BigEndian.PutUint64(b, w.hi)
	binary.BigEndian.PutUint64(b[8:], w.lo)
}

func (w word128) xor(v word128) word128 { return word128{w.hi ^ v.hi, w.lo ^ v.lo} }

// dbl multiplies by x in GF(2^128) with the polynomial x^128+x^7+x^2+x+1
// (RFC 5297, section 2.3; RFC 4493, section 2.3 for the CMAC subkeys). The
// reduction is masked rather than branched, so the time does not depend on
// the top bit of secret values.
func (w word128) dbl() word128 {
	carry := w.hi >> 63
	return word128{
		hi: w.hi<<1 | w.lo>>63,
		lo: w.lo<<1 ^ (0x87 & -carry),
	}
}

// pad returns b (shorter than a block) followed by a single 1 bit and zeros:
// the padding of RFC 4493 (section 2.4) and RFC 5297 (section 2.1).
func pad(b []byte) word128 {
	var p [16]byte
	copy(p[:], b)
	p[len(b)] = 0x80
	return load(p[:])
}
