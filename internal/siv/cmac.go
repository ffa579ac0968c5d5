package siv

import (
	"crypto/cipher"
	"crypto/subtle"
)

// cmac is AES-CMAC (RFC 4493) with its subkeys computed once. It keeps no
// per-message state, so one value serves any number of goroutines; each call
// takes a 16-byte scratch block x from its caller, because every buffer
// handed to cipher.Block.Encrypt escapes to the heap and the caller knows
// where 16 bytes can be borrowed without allocating.
//
// The CBC chain stays in x and message blocks are xored into it with
// crypto/subtle.XORBytes, which reads and writes whole 16-byte words. AES
// loads its input as one 16-byte word; built from two 8-byte stores (two
// uint64 halves), that load waits for the stores to reach the cache on
// every block, which cost about a third of the chain's time.
type cmac struct {
	b      cipher.Block
	k1, k2 word128 // RFC 4493, section 2.3
}

func newCMAC(b cipher.Block) cmac {
	var x [16]byte
	b.Encrypt(x[:], x[:]) // L = AES-K(0^128)
	k1 := load(x[:]).dbl()
	return cmac{b: b, k1: k1, k2: k1.dbl()}
}

// sum returns AES-CMAC(K, msg). On return x holds the same 16 bytes.
func (m *cmac) sum(x, msg []byte) word128 {
	var t [16]byte
	n := 0
	if len(msg) > 16 {
		n = (len(msg) - 1) &^ 15 // all but the last 1..16 bytes
	}
	m.last(msg[n:]).store(t[:])
	m.chain(x, msg[:n], t[:])
	return load(x)
}

// sumXorend returns AES-CMAC(K, msg xorend d) for len(msg) >= 16 without
// building the xored message (RFC 5297, section 2.4): only the last 16..31
// bytes, the ones the xor or the last CMAC block touch, are copied, and
// prepared (xored, padded, masked) before the chain starts.
func (m *cmac) sumXorend(x, msg []byte, d word128) word128 {
	n := (len(msg) - 16) &^ 15
	var t [32]byte
	tail := t[:copy(t[:], msg[n:])]
	end := tail[len(tail)-16:]
	load(end).xor(d).store(end)
	prep := t[:16]
	if len(tail) > 16 { // a complete block, then a partial last one
		prep = t[:32]
		m.last(tail[16:]).store(t[16:])
	} else {
		m.last(tail).store(t[:16])
	}
	m.chain(x, msg[:n], prep)
	return load(x)
}

// sumBlock returns AES-CMAC(K, w) for the one complete block w.
func (m *cmac) sumBlock(x []byte, w word128) word128 {
	var t [16]byte
	w.xor(m.k1).store(t[:])
	m.chain(x, nil, t[:])
	return load(x)
}

// last returns the message's last block (0 to 16 bytes) ready for the
// chain: a complete block is masked with K1, a partial or empty one is
// padded and masked with K2 (RFC 4493, section 2.4, steps 4 and 6).
func (m *cmac) last(b []byte) word128 {
	if len(b) == 16 {
		return load(b).xor(m.k1)
	}
	return pad(b).xor(m.k2)
}

// chain runs the CBC chain of CMAC in x: first over head, whole blocks
// read straight from the message, then over prep, the final one or two
// blocks already prepared by the caller (the last of them padded and
// masked). x needs no initial value.
func (m *cmac) chain(x, head, prep []byte) {
	if len(head) > 0 {
		m.b.Encrypt(x, head[:16]) // AES-K(0 xor M1)
		head = head[16:]
	} else {
		// prep lives on the caller's stack: copied, not handed to
		// Encrypt, so that it stays there.
		*(*[16]byte)(x) = [16]byte(prep)
		m.b.Encrypt(x, x)
		prep = prep[16:]
	}
	for ; len(head) > 0; head = head[16:] {
		subtle.XORBytes(x, x, head[:16])
		m.b.Encrypt(x, x)
	}
	for ; len(prep) > 0; prep = prep[16:] {
		subtle.XORBytes(x, x, prep[:16])
		m.b.Encrypt(x, x)
	}
}
