package phicrypt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
)

// Signing suites end with a footer (data-format/message-footer.md):
//
//	signatureLength(2) signature (DER ECDSA P-384 over SHA-384 of header || body)
//
// The verification key travels in the encryption context under
// aws-crypto-public-key as base64 of the compressed point, so it is itself
// authenticated by the header tag.
const maxSignatureLength = 128 // a DER P-384 signature is at most 104 bytes

type signer struct {
	key    *ecdsa.PrivateKey
	public string // base64 of the compressed public point
	h      hash.Hash
}

func newSigner() (*signer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	point, err := k.PublicKey.Bytes() // 0x04 || x || y
	if err != nil {
		return nil, err
	}
	return &signer{key: k, public: base64.StdEncoding.EncodeToString(compressPoint(point)), h: sha512.New384()}, nil
}

// compressPoint turns an uncompressed point (0x04 || x || y) into its
// compressed form (SEC 1, section 2.3.3): 0x02 or 0x03 for the parity of
// y, then x.
func compressPoint(point []byte) []byte {
	n := (len(point) - 1) / 2
	compressed := make([]byte, 1+n)
	compressed[0] = 0x02 | point[len(point)-1]&1
	copy(compressed[1:], point[1:1+n])
	return compressed
}

func (s *signer) publicKey() string { return s.public }

func (s *signer) write(p []byte) { s.h.Write(p) }

func (s *signer) appendFooter(dst []byte) ([]byte, error) {
	sig, err := ecdsa.SignASN1(rand.Reader, s.key, s.h.Sum(nil))
	if err != nil {
		return nil, err
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(sig)))
	return append(dst, sig...), nil
}

type verifier struct {
	key *ecdsa.PublicKey
	h   hash.Hash
}

func newVerifier(encoded string) (*verifier, error) {
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, errors.New("not base64")
	}
	x, y := elliptic.UnmarshalCompressed(elliptic.P384(), raw)
	if x == nil {
		return nil, errors.New("not a compressed P-384 point")
	}
	// 0x04 || x || y, the uncompressed form the ecdsa package parses.
	const coordLen = 48
	point := make([]byte, 1+2*coordLen)
	point[0] = 0x04
	x.FillBytes(point[1 : 1+coordLen])
	y.FillBytes(point[1+coordLen:])
	key, err := ecdsa.ParseUncompressedPublicKey(elliptic.P384(), point)
	if err != nil {
		return nil, errors.New("not a P-384 point")
	}
	return &verifier{key: key, h: sha512.New384()}, nil
}

func (v *verifier) write(p []byte) { v.h.Write(p) }

func (v *verifier) verify(sig []byte) bool {
	return ecdsa.VerifyASN1(v.key, v.h.Sum(nil), sig)
}
