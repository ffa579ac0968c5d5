package siv

import "crypto/cipher"

// xorKeyStream is AES-CTR keyed by b, starting from the synthetic IV with
// bits 63 and 31 cleared (RFC 5297, sections 2.5 and 2.6): dst = src xor keystream.
// The counter is one 128-bit big-endian integer. x is the 16-byte scratch
// block for the keystream; it must not overlap dst or src. dst may be src,
// or start before src (never after it): every block is read before the
// block at the same index is written.
//
// cipher.NewCTR would pipeline several blocks, but it allocates on every
// call; the fields fieldenc seals are a few blocks long, where the
// allocation would cost more than the pipelining saves.
func xorKeyStream(b cipher.Block, x, dst, src []byte, iv word128) {
	ctr := word128{iv.hi, iv.lo & 0x7fffffff_7fffffff}
	for len(src) >= 16 {
		ctr.store(x)
		b.Encrypt(x, x)
		load(src).xor(load(x)).store(dst)
		// Q + i is a 128-bit addition, but with bit 63 cleared the low half
		// cannot carry before 2^63 blocks, more than any slice holds.
		ctr.lo++
		src, dst = src[16:], dst[16:]
	}
	if len(src) > 0 {
		ctr.store(x)
		b.Encrypt(x, x)
		for i := range src {
			dst[i] = src[i] ^ x[i]
		}
	}
}
