package goesdk

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"testing"

	mpltypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygeneratedtypes"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// The raw RSA key's namespace and name, shared by both keyrings.
const (
	rsaNamespace = "phicrypt-escrow"
	rsaName      = "escrow-key-1"
)

// rsaPaddings pairs each of phicrypt's paddings with the ESDK's.
var rsaPaddings = []struct {
	ours   keyring.RSAPadding
	theirs mpltypes.PaddingScheme
}{
	{keyring.RSAPaddingPKCS1v15, mpltypes.PaddingSchemePkcs1},
	{keyring.RSAPaddingOAEPSHA1, mpltypes.PaddingSchemeOaepSha1Mgf1},
	{keyring.RSAPaddingOAEPSHA256, mpltypes.PaddingSchemeOaepSha256Mgf1},
	{keyring.RSAPaddingOAEPSHA384, mpltypes.PaddingSchemeOaepSha384Mgf1},
	{keyring.RSAPaddingOAEPSHA512, mpltypes.PaddingSchemeOaepSha512Mgf1},
}

// rsaKeys are fresh key pairs of 2048, 3072 and 4096 bits, padding i
// using key i mod 3.
func rsaKeys(t *testing.T) []*rsa.PrivateKey {
	t.Helper()
	var out []*rsa.PrivateKey
	for _, bits := range []int{2048, 3072, 4096} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}

// rawRSA is the ESDK's raw RSA keyring over the PEM forms its
// specification asks keyrings to load: the public key as
// SubjectPublicKeyInfo (encrypt), the private key as PKCS #8 (decrypt).
func (p *goESDK) rawRSA(t *testing.T, key *rsa.PrivateKey, padding mpltypes.PaddingScheme, private bool) mpltypes.IKeyring {
	t.Helper()
	in := mpltypes.CreateRawRsaKeyringInput{KeyNamespace: rsaNamespace, KeyName: rsaName, PaddingScheme: padding}
	if private {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		in.PrivateKey = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	} else {
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		in.PublicKey = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	kr, err := p.mpl.CreateRawRsaKeyring(context.Background(), in)
	if err != nil {
		t.Fatalf("ESDK raw RSA keyring: %v", err)
	}
	return kr
}

// phicryptRawRSA is phicrypt's raw RSA keyring under the shared names with
// the public key (encrypt) or the private key (decrypt) alone.
func phicryptRawRSA(t *testing.T, key *rsa.PrivateKey, padding keyring.RSAPadding, private bool) keyring.Keyring {
	t.Helper()
	cfg := keyring.RawRSAConfig{Namespace: rsaNamespace, Name: rsaName, Padding: padding}
	if private {
		cfg.PrivateKey = key
	} else {
		cfg.PublicKey = &key.PublicKey
	}
	kr, err := keyring.NewRawRSA(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// checkRSAEDK checks the message's one encrypted data key against the
// raw RSA layout: provider id the namespace, provider info the name, and a
// ciphertext as long as the modulus (its 2-byte length prefix precedes it).
func checkRSAEDK(t *testing.T, msg []byte, l *layout, key *rsa.PrivateKey) {
	t.Helper()
	if len(l.edkProvider) != 1 || l.edkProvider[0] != rsaNamespace || l.edkInfo[0] != rsaName {
		t.Fatalf("EDKs %q / %q, want one of %s / %s", l.edkProvider, l.edkInfo, rsaNamespace, rsaName)
	}
	off := l.edkCipher[0]
	if n := int(msg[off-2])<<8 | int(msg[off-1]); n != key.Size() {
		t.Fatalf("RSA EDK ciphertext is %d bytes, want the modulus's %d", n, key.Size())
	}
}

// The ESDK encrypts under its raw RSA keyring with each padding, PKCS #1
// v1.5 included (phicrypt reads it but never writes it); phicrypt decrypts
// with the private key alone. Then one byte of the RSA ciphertext flipped:
// both refuse the message.
func TestRawRSAGoESDKEncryptsPhicryptDecrypts(t *testing.T) {
	keys := rsaKeys(t)
	p := newGoESDK(t)
	for i, rp := range rsaPaddings {
		key := keys[i%len(keys)]
		m := withKeyring(p.rawRSA(t, key, rp.theirs, false))
		enc := newEncryptor(t, phicrypt.Config{Keyring: phicryptRawRSA(t, key, rp.ours, true)})
		for _, v := range matrix([]int{128}) {
			t.Run(fmt.Sprintf("%s/%d/%s", rp.theirs, key.N.BitLen(), v.name), func(t *testing.T) {
				msg, err := p.encrypt(m, v.suite, v.frame, v.pt, v.ec)
				if err != nil {
					t.Fatalf("ESDK encrypt: %v", err)
				}
				checkRSAEDK(t, msg, checkHeader(t, msg, v), key)
				phicryptReads(t, enc, msg, v)
			})
		}
		t.Run(fmt.Sprintf("%s/tampered", rp.theirs), func(t *testing.T) {
			v := vector{name: "tampered", suite: phicrypt.SuiteCommitted, frame: 128, pt: randomBytes(300), ec: contexts[1]}
			msg, err := p.encrypt(m, v.suite, v.frame, v.pt, v.ec)
			if err != nil {
				t.Fatalf("ESDK encrypt: %v", err)
			}
			l := checkHeader(t, msg, v)
			bad := bytes.Clone(msg)
			bad[l.edkCipher[0]+key.Size()/2] ^= 0x10
			if _, _, err := enc.Decrypt(context.Background(), bad, v.ec); err == nil {
				t.Fatal("phicrypt read a message whose RSA EDK was tampered with")
			}
			crossChecked()
			own := withKeyring(p.rawRSA(t, key, rp.theirs, true))
			if rp.ours == keyring.RSAPaddingPKCS1v15 {
				return // the peer's PKCS #1 v1.5 decryption is not ours to test
			}
			if _, err := p.decrypt(own, bad, v.ec); err == nil {
				t.Fatal("the ESDK read a message whose RSA EDK was tampered with")
			}
		})
	}
}

// phicrypt encrypts with the public key alone under each OAEP padding; the
// ESDK decrypts with the private key. A phicrypt message whose RSA
// ciphertext is tampered with is refused by the ESDK too.
func TestRawRSAPhicryptEncryptsGoESDKDecrypts(t *testing.T) {
	keys := rsaKeys(t)
	p := newGoESDK(t)
	for i, rp := range rsaPaddings[1:] {
		key := keys[i%len(keys)]
		kr := phicryptRawRSA(t, key, rp.ours, false)
		m := withKeyring(p.rawRSA(t, key, rp.theirs, true))
		for _, v := range matrix([]int{128}) {
			t.Run(fmt.Sprintf("%s/%d/%s", rp.theirs, key.N.BitLen(), v.name), func(t *testing.T) {
				enc := newEncryptor(t, phicrypt.Config{Keyring: kr, Suite: v.suite, FrameLength: v.frame})
				msg, err := enc.Encrypt(t.Context(), v.pt, v.ec)
				if err != nil {
					t.Fatalf("phicrypt encrypt: %v", err)
				}
				checkRSAEDK(t, msg, checkHeader(t, msg, v), key)
				esdkReads(t, p, m, msg, v)

				bad := bytes.Clone(msg)
				bad[checkHeader(t, msg, v).edkCipher[0]+3] ^= 0x01
				if _, err := p.decrypt(m, bad, v.ec); err == nil {
					t.Fatal("the ESDK read a phicrypt message whose RSA EDK was tampered with")
				}
				crossChecked()
			})
		}
	}
}

// An ESDK message wrapped with one padding is not read by a phicrypt
// keyring of another: the padding is part of the key's configuration.
func TestRawRSAPaddingMismatchRefused(t *testing.T) {
	key := rsaKeys(t)[0]
	p := newGoESDK(t)
	v := vector{name: "mismatch", suite: phicrypt.SuiteCommitted, frame: 128, pt: randomBytes(10), ec: contexts[1]}
	for i, wrote := range rsaPaddings {
		msg, err := p.encrypt(withKeyring(p.rawRSA(t, key, wrote.theirs, false)), v.suite, v.frame, v.pt, v.ec)
		if err != nil {
			t.Fatalf("ESDK encrypt: %v", err)
		}
		reads := rsaPaddings[(i+2)%len(rsaPaddings)]
		enc := newEncryptor(t, phicrypt.Config{Keyring: phicryptRawRSA(t, key, reads.ours, true)})
		if _, _, err := enc.Decrypt(context.Background(), msg, v.ec); err == nil {
			t.Fatalf("a %v keyring read a %s message", reads.ours, wrote.theirs)
		}
		crossChecked()
	}
}
