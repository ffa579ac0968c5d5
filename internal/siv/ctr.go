package siv

import (
	"crypto/cipher"
	"crypto/subtle"
)

// ctrBatch is how many counter blocks are encrypted before the keystream is
// xored in: the AES calls of one batch do not depend on each other, so the
// processor overlaps them (four blocks take about half the time of four
// chained ones).
const ctrBatch = 8

// xorKeyStream is AES-CTR keyed by b, starting from the synthetic IV with
// bits 63 and 31 cleared (RFC 5297, sections 2.5 and 2.6): dst = src xor
// keystream. The counter is one 128-bit big-endian integer. x is a 16-byte
// scratch block for a partial last block; it must not overlap dst or src.
// dst may be src, or start before src (never after it).
//
// The counter blocks are written to dst and encrypted there, a batch at a
// time, then the batch of src is xored in; where dst overlaps src, that
// batch of src is copied aside first. cipher.NewCTR would do the same in
// assembly, but it allocates (and copies the expanded key) on every call,
// which costs more than the whole of a short field's encryption.
func xorKeyStream(b cipher.Block, x, dst, src []byte, iv word128) {
	ctr := word128{iv.hi, iv.lo & 0x7fffffff_7fffffff}
	var saved [ctrBatch * 16]byte
	copied := false
	for len(src) >= 16 {
		n := min(len(src)&^15, len(saved))
		in, ks := src[:n], dst[:n]
		if anyOverlap(ks, in) {
			in = saved[:copy(saved[:], in)]
			copied = true
		}
		for i := 0; i < n; i += 16 {
			ctr.store(ks[i:])
			// Q + i is a 128-bit addition, but with bit 63 cleared the
			// low half cannot carry before 2^63 blocks, more than any
			// slice holds.
			ctr.lo++
		}
		for i := 0; i < n; i += 16 {
			b.Encrypt(ks[i:i+16], ks[i:i+16])
		}
		subtle.XORBytes(ks, ks, in)
		src, dst = src[n:], dst[n:]
	}
	if copied {
		clear(saved[:]) // plaintext, when sealing in place
	}
	if len(src) > 0 {
		ctr.store(x)
		b.Encrypt(x, x)
		// Fewer than 16 bytes: dst, at most 16 bytes before src, either is
		// src or does not reach it.
		subtle.XORBytes(dst, src, x[:len(src)])
	}
}
