package siv

import "crypto/cipher"

// cmac is AES-CMAC (RFC 4493) with its subkeys computed once. It keeps no
// per-message state, so one value serves any number of goroutines; each call
// takes a 16-byte scratch block x from its caller, because every buffer
// handed to cipher.Block.Encrypt escapes to the heap and the caller knows
// where 16 bytes can be borrowed without allocating.
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

// encrypt returns AES-K(w), using x as the block buffer.
func (m *cmac) encrypt(x []byte, w word128) word128 {
	w.store(x)
	m.b.Encrypt(x, x)
	return load(x)
}

// sum returns AES-CMAC(K, msg). On return x holds the same 16 bytes.
func (m *cmac) sum(x, msg []byte) word128 {
	var c word128
	if len(msg) > 16 {
		n := (len(msg) - 1) &^ 15 // all but the last 1..16 bytes
		c = m.absorb(x, c, msg[:n])
		msg = msg[n:]
	}
	return m.final(x, c, msg)
}

// sumXorend returns AES-CMAC(K, msg xorend d) for len(msg) >= 16 without
// building the xored message (RFC 5297, section 2.4): only the last 16..31
// bytes, the ones the xor or the last CMAC block touch, are copied.
func (m *cmac) sumXorend(x, msg []byte, d word128) word128 {
	n := (len(msg) - 16) &^ 15
	c := m.absorb(x, word128{}, msg[:n])
	var t [32]byte
	tail := t[:copy(t[:], msg[n:])]
	end := tail[len(tail)-16:]
	load(end).xor(d).store(end)
	if len(tail) > 16 {
		c = m.encrypt(x, c.xor(load(tail)))
		tail = tail[16:]
	}
	return m.final(x, c, tail)
}

// absorb runs the CBC chain c over msg, whose length is a multiple of 16
// and none of whose blocks is the message's last.
func (m *cmac) absorb(x []byte, c word128, msg []byte) word128 {
	for len(msg) >= 16 {
		c = m.encrypt(x, c.xor(load(msg)))
		msg = msg[16:]
	}
	return c
}

// final processes the last block (0 to 16 bytes): a complete block is
// masked with K1, a partial or empty one is padded and masked with K2
// (RFC 4493, section 2.4, steps 4 and 6).
func (m *cmac) final(x []byte, c word128, last []byte) word128 {
	if len(last) == 16 {
		return m.encrypt(x, c.xor(load(last)).xor(m.k1))
	}
	return m.encrypt(x, c.xor(pad(last)).xor(m.k2))
}
