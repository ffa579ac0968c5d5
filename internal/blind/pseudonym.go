package blind

import "fmt"

// TokenLen is the length in characters of a pseudonym token.
const TokenLen = 32

// tokenBytes is how much of the MAC a token keeps: 160 bits, which base32
// encodes in exactly 32 characters with no padding.
const tokenBytes = 20

// base32Lower is the RFC 4648 base32 alphabet, lower-cased.
const base32Lower = "abcdefghijklmnopqrstuvwxyz234567"

// Pseudonymizer turns identifiers into pseudonyms: stable tokens that stand
// in for a value (a medical record number, say) in data shared for one
// purpose, such as a research extract.
//
// Tokens are linkable within a purpose: the same value always gives the same
// token under one key, so records about one patient still join. They are
// unlinkable across purposes: under keys derived for different purposes the
// same value gives unrelated tokens. They are not reversible: without the
// key, recovering a value means guessing it, and with the key it still means
// trying candidates, so keep the key as secret as the data.
//
// A Pseudonymizer is safe for concurrent use and never prints its key.
type Pseudonymizer struct {
	mac keyedMAC
}

// NewPseudonymizer returns a pseudonymizer under key, which must be
// [KeySize] bytes and is copied. Derive one key per purpose.
func NewPseudonymizer(key []byte) (*Pseudonymizer, error) {
	p := &Pseudonymizer{}
	if err := p.mac.init(key); err != nil {
		return nil, err
	}
	return p, nil
}

// Token appends the pseudonym of value to dst and returns the result: the
// first 20 bytes of HMAC-SHA-256(key, value) in RFC 4648 base32, lower case,
// without padding ([TokenLen] characters). Token allocates nothing when dst
// has room for TokenLen more bytes.
func (p *Pseudonymizer) Token(dst, value []byte) []byte {
	st := p.mac.get()
	st.h.Write(value)
	dst = appendBase32(dst, st.finish()[:tokenBytes])
	p.mac.put(st)
	return dst
}

// appendBase32 appends the base32 encoding of src, whose length is a
// multiple of 5 bytes, so no padding is ever needed.
func appendBase32(dst, src []byte) []byte {
	for ; len(src) >= 5; src = src[5:] {
		v := uint64(src[0])<<32 | uint64(src[1])<<24 | uint64(src[2])<<16 |
			uint64(src[3])<<8 | uint64(src[4])
		for shift := 35; shift >= 0; shift -= 5 {
			dst = append(dst, base32Lower[v>>shift&31])
		}
	}
	return dst
}

// Format prints a fixed placeholder and never the key, whatever the verb.
func (p *Pseudonymizer) Format(f fmt.State, verb rune) {
	fmt.Fprint(f, "blind.Pseudonymizer")
}
