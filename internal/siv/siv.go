package siv

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"sync"
)

const (
	// KeySize is the key size of AES-256-SIV, the one Tink uses and the
	// one to choose: the first half keys S2V, the second half keys CTR.
	KeySize = 64
	// Overhead is what Seal adds to the plaintext: the synthetic IV.
	Overhead = 16
	// MaxAssociatedData is the most associated-data strings SealVector and
	// OpenVector take: RFC 5297 bounds S2V's vector at 127 strings, the
	// last of which is the plaintext; past that, distinct vectors collide.
	MaxAssociatedData = 126
)

var (
	// ErrOpen is the one error Open returns for a ciphertext that does not
	// authenticate: the wrong key, the wrong associated data, a truncated
	// or altered ciphertext. It says nothing about which.
	ErrOpen = errors.New("siv: message authentication failed (wrong key, wrong associated data, or altered ciphertext)")
	// ErrKeySize is returned by New for a key that is not 32, 48 or 64
	// bytes long.
	ErrKeySize = errors.New("siv: key must be 64 bytes for AES-256-SIV (32 and 48 select AES-128-SIV and AES-192-SIV)")
)

// SIV seals and opens with one AES-SIV key. It is safe for concurrent use.
// It holds expanded key material and never prints it.
type SIV struct {
	mac     cmac         // keyed with the first half of the key (S2V)
	ctr     cipher.Block // keyed with the second half (CTR)
	zeroMAC word128      // CMAC(K1, <zero>), where every S2V starts
	// scratch holds *[16]byte blocks for Open, which, unlike Seal, has no
	// 16 bytes of its output to borrow when the plaintext is short.
	scratch sync.Pool
}

// New returns an SIV for key: 64 bytes for AES-256-SIV, or 32 or 48 bytes
// for AES-128-SIV and AES-192-SIV (RFC 5297, section 6). New does not keep
// key; the caller may clear it.
func New(key []byte) (*SIV, error) {
	switch len(key) {
	case 32, 48, 64:
	default:
		return nil, fmt.Errorf("%w; got %d bytes", ErrKeySize, len(key))
	}
	half := len(key) / 2
	macBlock, err := aes.NewCipher(key[:half])
	if err != nil {
		return nil, fmt.Errorf("siv: %w", err)
	}
	ctrBlock, err := aes.NewCipher(key[half:])
	if err != nil {
		return nil, fmt.Errorf("siv: %w", err)
	}
	s := &SIV{mac: newCMAC(macBlock), ctr: ctrBlock}
	var x [16]byte
	s.zeroMAC = s.mac.sumBlock(x[:], word128{}) // <zero> is one complete block
	s.scratch.New = func() any { return new([16]byte) }
	return s, nil
}

// Seal encrypts plaintext with additionalData as the single associated-data
// string, appends the synthetic IV and the ciphertext to dst and returns
// the updated slice. The result is that of Tink's
// EncryptDeterministically(plaintext, additionalData): S2V runs over the
// vector (additionalData, plaintext), an empty additionalData included.
//
// To encrypt in place, put the plaintext at buf[Overhead:] and pass buf[:0]
// as dst. Any other overlap of the output with plaintext or additionalData
// panics.
func (s *SIV) Seal(dst, plaintext, additionalData []byte) []byte {
	ads := [1][]byte{additionalData}
	return s.seal(dst, plaintext, ads[:])
}

// SealVector is Seal with a vector of associated-data strings, S2V's
// general form (RFC 5297, section 2.6); an empty vector is allowed. For a
// nonce-based SIV, pass the nonce as the last string (section 3). It panics
// when given more than MaxAssociatedData strings.
func (s *SIV) SealVector(dst, plaintext []byte, additionalData [][]byte) []byte {
	checkVector(additionalData)
	return s.seal(dst, plaintext, additionalData)
}

func (s *SIV) seal(dst, plaintext []byte, ads [][]byte) []byte {
	whole, out := placeSeal(dst, plaintext)
	checkAliasAD(out, ads)
	// Until it is known, the IV's own place in the output is the scratch
	// block: Seal then needs no memory beyond dst.
	s.sealTo(out, plaintext, s.s2vAD(out[:Overhead], ads))
	return whole
}

// placeSeal extends dst by the sealed length of plaintext, returning the
// whole slice and the output; it panics on an overlap Seal does not allow.
func placeSeal(dst, plaintext []byte) (whole, out []byte) {
	whole, out = sliceForAppend(dst, Overhead+len(plaintext))
	iv, body := out[:Overhead], out[Overhead:]
	if anyOverlap(iv, plaintext) || (anyOverlap(body, plaintext) && !sameStart(body, plaintext)) {
		panic("siv: invalid buffer overlap of output and plaintext")
	}
	return whole, out
}

// sealTo writes the synthetic IV and the ciphertext of plaintext to out,
// given S2V's D after the associated data.
func (s *SIV) sealTo(out, plaintext []byte, d word128) {
	iv, body := out[:Overhead], out[Overhead:]
	v := s.s2vFinal(iv, d, plaintext)
	xorKeyStream(s.ctr, iv, body, plaintext, v)
	v.store(iv)
}

// Open authenticates and decrypts a ciphertext made by Seal with the same
// key and additionalData, appends the plaintext to dst and returns the
// updated slice. Any failure returns ErrOpen and leaves no plaintext in
// dst's capacity.
//
// To decrypt in place, pass ciphertext[:0] or ciphertext[Overhead:Overhead]
// as dst. Any other overlap of the output with ciphertext or
// additionalData panics.
func (s *SIV) Open(dst, ciphertext, additionalData []byte) ([]byte, error) {
	ads := [1][]byte{additionalData}
	return s.open(dst, ciphertext, ads[:])
}

// OpenVector is Open for a ciphertext made by SealVector with the same
// associated-data strings in the same order. It panics when given more
// than MaxAssociatedData strings.
func (s *SIV) OpenVector(dst, ciphertext []byte, additionalData [][]byte) ([]byte, error) {
	checkVector(additionalData)
	return s.open(dst, ciphertext, additionalData)
}

func (s *SIV) open(dst, ciphertext []byte, ads [][]byte) ([]byte, error) {
	whole, out, ok := placeOpen(dst, ciphertext)
	if !ok {
		return nil, ErrOpen
	}
	checkAliasAD(out, ads)
	x := s.scratch.Get().(*[16]byte)
	return s.openTo(x, whole, out, ciphertext, s.s2vAD(x[:], ads))
}

// placeOpen extends dst by the plaintext length of ciphertext, returning
// the whole slice and the output; ok is false for a ciphertext too short to
// hold an IV. It panics on an overlap Open does not allow.
func placeOpen(dst, ciphertext []byte) (whole, out []byte, ok bool) {
	if len(ciphertext) < Overhead {
		return nil, nil, false
	}
	body := ciphertext[Overhead:]
	whole, out = sliceForAppend(dst, len(body))
	if anyOverlap(out, ciphertext) && !sameStart(out, body) && !sameStart(out, ciphertext) {
		panic("siv: invalid buffer overlap of output and ciphertext")
	}
	return whole, out, true
}

// openTo decrypts ciphertext to out and authenticates it, given S2V's D
// after the associated data; x, the scratch block, goes back to the pool.
func (s *SIV) openTo(x *[16]byte, whole, out, ciphertext []byte, d word128) ([]byte, error) {
	// Copied out first: decrypting in place to ciphertext[:0] overwrites it.
	var iv [Overhead]byte
	copy(iv[:], ciphertext)
	// SIV decrypts before it can authenticate (RFC 5297, section 2.7):
	// out holds unauthenticated plaintext until the comparison below.
	xorKeyStream(s.ctr, x[:], out, ciphertext[Overhead:], load(iv[:]))
	s.s2vFinal(x[:], d, out)
	ok := subtle.ConstantTimeCompare(x[:], iv[:]) == 1
	clear(x[:])
	s.scratch.Put(x)
	if !ok {
		clear(out)
		return nil, ErrOpen
	}
	return whole, nil
}

// Format prints a fixed placeholder for every verb, so that no %v, %+v,
// %#v or %x of an SIV, in a log line or an error, shows key material.
func (s *SIV) Format(f fmt.State, verb rune) {
	io.WriteString(f, "siv.SIV(redacted)")
}

func checkVector(ads [][]byte) {
	if len(ads) > MaxAssociatedData {
		panic("siv: more than MaxAssociatedData associated-data strings")
	}
}

func checkAliasAD(out []byte, ads [][]byte) {
	for _, ad := range ads {
		if anyOverlap(out, ad) {
			panic("siv: invalid buffer overlap of output and additional data")
		}
	}
}
