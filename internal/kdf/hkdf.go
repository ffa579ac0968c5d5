// Package kdf implements HKDF (RFC 5869) over caller-owned hash states, so
// that deriving per-message keys on a hot path allocates nothing. It computes
// exactly what crypto/hkdf computes (the tests prove it); crypto/hkdf builds a
// new HMAC, and so several hash states, on every call. A committing suite's
// derivation (an Extract and two Expands under one PRK) costs the ten
// SHA-512 blocks the construction needs and little more: Extract's salt is
// keyed once without saving states, and only the PRK's pad states are saved
// and restored, when a hash does not already hold them.
package kdf

import (
	"crypto/subtle"
	"encoding"
	"hash"
)

// stateHash is a hash whose state can be saved and restored without
// allocating, as the standard library's SHA-2 digests can.
type stateHash interface {
	hash.Hash
	encoding.BinaryAppender
	encoding.BinaryUnmarshaler
}

// HMAC is a reusable HMAC over one hash function (RFC 2104), keyed anew for
// each use without allocating. It is not safe for concurrent use.
type HMAC struct {
	inner, outer hash.Hash
	blockSize    int
	ipad, opad   []byte
	sum          []byte
	zeros        []byte // the default salt
	counter      [1]byte
	// keyed holds the states of the inner and outer hashes just after the
	// pads of the current key, when the hash can save them, so a key used
	// again (HKDF-Expand's PRK) costs no pad blocks.
	keyed            bool
	innerAt, outerAt []byte
	// innerFresh and outerFresh say that a hash holds exactly the state
	// after its pad (nothing written since), so using it needs no restore.
	innerFresh, outerFresh bool
}

// maxBlockSize is the largest block of the hashes HMAC pads word-wise
// (SHA-512's); larger blocks are padded byte by byte.
const maxBlockSize = 128

var ipadBytes, opadBytes = padBlock(0x36), padBlock(0x5c)

func padBlock(b byte) *[maxBlockSize]byte {
	var p [maxBlockSize]byte
	for i := range p {
		p[i] = b
	}
	return &p
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
// hashed first, as RFC 2104 requires. It saves the states after the pads,
// when the hash can, so that Rekey costs no pad blocks.
func (h *HMAC) Key(key []byte) {
	h.start(key)
	h.keyed = false
	si, ok1 := h.inner.(stateHash)
	so, ok2 := h.outer.(stateHash)
	if !ok1 || !ok2 {
		return
	}
	var err1, err2 error
	h.innerAt, err1 = si.AppendBinary(h.innerAt[:0])
	h.outerAt, err2 = so.AppendBinary(h.outerAt[:0])
	h.keyed = err1 == nil && err2 == nil
}

// start computes the pads for key and feeds them to the inner and outer
// hashes, saving nothing: a key used once (HKDF-Extract's salt) needs no
// saved states.
func (h *HMAC) start(key []byte) {
	if len(key) > h.blockSize {
		h.outer.Reset()
		h.outer.Write(key)
		key = h.outer.Sum(h.sum[:0])
	}
	clear(h.ipad)
	copy(h.ipad, key)
	if h.blockSize <= maxBlockSize {
		subtle.XORBytes(h.opad, h.ipad, opadBytes[:h.blockSize])
		subtle.XORBytes(h.ipad, h.ipad, ipadBytes[:h.blockSize])
	} else {
		copy(h.opad, h.ipad)
		for i := range h.ipad {
			h.ipad[i] ^= 0x36
			h.opad[i] ^= 0x5c
		}
	}
	h.inner.Reset()
	h.inner.Write(h.ipad)
	h.outer.Reset()
	h.outer.Write(h.opad)
	h.innerFresh, h.outerFresh = true, true
}

// Rekey starts another MAC under the key of the last Key call.
func (h *HMAC) Rekey() {
	if h.innerFresh {
		return
	}
	h.innerFresh = true
	if si, ok := h.inner.(stateHash); h.keyed && ok && si.UnmarshalBinary(h.innerAt) == nil {
		return
	}
	h.inner.Reset()
	h.inner.Write(h.ipad)
}

// Write adds message bytes.
func (h *HMAC) Write(p []byte) {
	h.innerFresh = false
	h.inner.Write(p)
}

// Sum appends the MAC to dst.
func (h *HMAC) Sum(dst []byte) []byte {
	inner := h.inner.Sum(h.sum[:0])
	h.innerFresh = false
	if !h.outerFresh {
		if so, ok := h.outer.(stateHash); !h.keyed || !ok || so.UnmarshalBinary(h.outerAt) != nil {
			h.outer.Reset()
			h.outer.Write(h.opad)
		}
	}
	h.outer.Write(inner)
	h.outerFresh = false
	return h.outer.Sum(dst)
}

// Wipe clears the key-dependent state.
func (h *HMAC) Wipe() {
	clear(h.ipad)
	clear(h.opad)
	clear(h.innerAt)
	clear(h.outerAt)
	h.keyed, h.innerFresh, h.outerFresh = false, false, false
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
	h.start(salt)
	h.keyed = false // the salt's pads are used once: nothing to save
	h.Write(ikm)
	return h.Sum(prk)
}

// ExpandAgain is Expand under the PRK of the previous Expand or Extract's
// result keyed with Key, skipping the key's pad blocks.
func (h *HMAC) ExpandAgain(out []byte, length int, info ...[]byte) []byte {
	if length > h.Size() {
		panic("kdf: ExpandAgain yields at most one hash length")
	}
	h.Rekey()
	for _, part := range info {
		h.Write(part)
	}
	h.counter[0] = 1
	h.Write(h.counter[:])
	n := len(out)
	out = h.Sum(out)
	return out[:n+length]
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
	h.Key(prk)
	for counter := byte(1); len(out)-start < length; counter++ {
		if counter > 1 {
			h.Rekey()
		}
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
