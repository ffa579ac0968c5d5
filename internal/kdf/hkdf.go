// Package kdf implements HKDF (RFC 5869) over caller-owned hash states, so
// that deriving per-message keys on a hot path allocates nothing. It computes
// exactly what crypto/hkdf computes (the tests prove it); crypto/hkdf builds a
// new HMAC, and so several hash states, on every call.
package kdf

import (
	"hash"
)

// HMAC is a reusable HMAC over one hash function (RFC 2104), keyed anew for
// each use without allocating. It is not safe for concurrent use.
type HMAC struct {
	inner, outer hash.Hash
	blockSize    int
	ipad, opad   []byte
	sum          []byte
	zeros        []byte // the default salt
	counter      [1]byte
}

// NewHMAC returns an HMAC over the hash that newHash makes.
func NewHMAC(newHash func() hash.Hash) *HMAC {
	inner, outer := newHash(), newHash()
	bs := inner.BlockSize()
	return &HMAC{
		inner: inner, outer: outer, blockSize: bs,
		ipad: make([]byte, bs), opad: make([]byte, bs),
		sum: make([]byte, 0, inner.Size()), zeros: make([]byte, inner.Size()),
	}
}

// Size is the length of the MAC in bytes.
func (h *HMAC) Size() int { return h.inner.Size() }

// Key starts a MAC under key. Keys longer than the hash's block size are
// hashed first, as RFC 2104 requires.
func (h *HMAC) Key(key []byte) {
	if len(key) > h.blockSize {
		h.outer.Reset()
		h.outer.Write(key)
		key = h.outer.Sum(h.sum[:0])
	}
	clear(h.ipad)
	copy(h.ipad, key)
	copy(h.opad, h.ipad)
	for i := range h.ipad {
		h.ipad[i] ^= 0x36
		h.opad[i] ^= 0x5c
	}
	h.inner.Reset()
	h.inner.Write(h.ipad)
}

// Write adds message bytes.
func (h *HMAC) Write(p []byte) { h.inner.Write(p) }

// Sum appends the MAC to dst.
func (h *HMAC) Sum(dst []byte) []byte {
	inner := h.inner.Sum(h.sum[:0])
	h.outer.Reset()
	h.outer.Write(h.opad)
	h.outer.Write(inner)
	return h.outer.Sum(dst)
}

// Wipe clears the key-dependent state.
func (h *HMAC) Wipe() {
	clear(h.ipad)
	clear(h.opad)
	clear(h.sum[:cap(h.sum)])
	h.inner.Reset()
	h.outer.Reset()
}

// Extract is HKDF-Extract: it appends PRK = HMAC(salt, ikm) to prk. An empty
// salt means a string of hash-length zeros (RFC 5869 §2.2).
func (h *HMAC) Extract(prk, salt, ikm []byte) []byte {
	if len(salt) == 0 {
		salt = h.zeros
	}
	h.Key(salt)
	h.Write(ikm)
	return h.Sum(prk)
}

// Expand is HKDF-Expand: it appends length bytes of output keying material
// derived from prk and the info parts (concatenated) to out. It panics if
// length exceeds 255 hash lengths, which RFC 5869 forbids.
func (h *HMAC) Expand(out, prk []byte, length int, info ...[]byte) []byte {
	if length > 255*h.Size() {
		panic("kdf: HKDF-Expand length too large")
	}
	var prev []byte
	start := len(out)
	for counter := byte(1); len(out)-start < length; counter++ {
		h.Key(prk)
		h.Write(prev)
		for _, part := range info {
			h.Write(part)
		}
		h.counter[0] = counter
		h.Write(h.counter[:])
		n := len(out)
		out = h.Sum(out)
		prev = out[n:]
	}
	return out[:start+length]
}
