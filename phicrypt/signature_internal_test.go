package phicrypt

import (
	"bytes"
	"crypto/elliptic"
	"encoding/base64"
	"math/big"
	"testing"
)

// The public key in the context is the compressed point, as
// elliptic.MarshalCompressed writes it, for keys of both parities of y; the
// verifier reads it back and checks the signer's footer.
func TestSignerPublicKeyIsCompressedPoint(t *testing.T) {
	parities := map[byte]bool{}
	for i := 0; i < 64 && len(parities) < 2; i++ {
		s, err := newSigner()
		if err != nil {
			t.Fatal(err)
		}
		point, err := s.key.PublicKey.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		x := new(big.Int).SetBytes(point[1:49])
		y := new(big.Int).SetBytes(point[49:])
		want := elliptic.MarshalCompressed(elliptic.P384(), x, y)
		got, err := base64.StdEncoding.DecodeString(s.publicKey())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("public key %x, want the compressed point %x", got, want)
		}
		parities[got[0]] = true

		v, err := newVerifier(s.publicKey())
		if err != nil {
			t.Fatalf("the verifier refuses the signer's key: %v", err)
		}
		s.write([]byte("header and body"))
		v.write([]byte("header and body"))
		footer, err := s.appendFooter(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !v.verify(footer[2:]) {
			t.Fatal("the verifier rejects the signer's signature")
		}
	}
	if !parities[0x02] || !parities[0x03] {
		t.Errorf("64 keys did not cover both parities of y: %v", parities)
	}
}

func TestVerifierRejectsBadKeys(t *testing.T) {
	s, err := newSigner()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(s.publicKey())
	uncompressed, _ := s.key.PublicKey.Bytes()
	for name, encoded := range map[string]string{
		"not base64":   "%%%",
		"uncompressed": base64.StdEncoding.EncodeToString(uncompressed),
		"truncated":    base64.StdEncoding.EncodeToString(raw[:len(raw)-1]),
		"bad prefix":   base64.StdEncoding.EncodeToString(append([]byte{0x04}, raw[1:]...)),
	} {
		if _, err := newVerifier(encoded); err == nil {
			t.Errorf("%s: newVerifier accepted it", name)
		}
	}
}
