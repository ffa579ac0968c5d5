//go:build interop

package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// The raw RSA key's namespace and name, shared by both keyrings.
const (
	rsaNamespace = "phicrypt-escrow"
	rsaName      = "escrow-key-1"
)

// rsaPaddings pairs each of phicrypt's paddings with the harness's name.
var rsaPaddings = []struct {
	p    keyring.RSAPadding
	flag string
}{
	{keyring.RSAPaddingPKCS1v15, "pkcs1"},
	{keyring.RSAPaddingOAEPSHA1, "oaep-sha1"},
	{keyring.RSAPaddingOAEPSHA256, "oaep-sha256"},
	{keyring.RSAPaddingOAEPSHA384, "oaep-sha384"},
	{keyring.RSAPaddingOAEPSHA512, "oaep-sha512"},
}

// rsaTestKey is a fresh key pair with its PEM forms as the ESDKs load
// them: SubjectPublicKeyInfo and PKCS #8.
type rsaTestKey struct {
	priv    *rsa.PrivateKey
	pubPEM  string
	privPEM string
}

func newRSATestKey(t *testing.T, bits int) rsaTestKey {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return rsaTestKey{priv: priv,
		pubPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})),
		privPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))}
}

// rsaArgs are the harness flags for a raw RSA keyring with the public key
// (encrypt) or the private key (decrypt).
func (k rsaTestKey) rsaArgs(padding string, private bool, extra map[string]any) map[string]any {
	a := map[string]any{"rsa-padding": padding, "rsa-key-namespace": rsaNamespace, "rsa-key-name": rsaName}
	if private {
		a["rsa-private-key-pem"] = k.privPEM
	} else {
		a["rsa-public-key-pem"] = k.pubPEM
	}
	for name, v := range extra {
		a[name] = v
	}
	return a
}

func (k rsaTestKey) keyring(t *testing.T, p keyring.RSAPadding, private bool) *keyring.RawRSA {
	t.Helper()
	cfg := keyring.RawRSAConfig{Namespace: rsaNamespace, Name: rsaName, Padding: p}
	if private {
		cfg.PrivateKey = k.priv
	} else {
		cfg.PublicKey = &k.priv.PublicKey
	}
	kr, err := keyring.NewRawRSA(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// edk is one encrypted data key as a version 2 header stores it.
type edk struct {
	providerID, providerInfo string
	ciphertext               []byte
}

// headerEDKs reads the encrypted data keys of a version 2 message
// (framework/message-header.md), independently of phicrypt's parser:
// version (1) ‖ suite (2) ‖ message id (32) ‖ AAD length (2) ‖ AAD ‖
// EDK count (2) ‖ EDKs, each three 2-byte-length-prefixed fields.
func headerEDKs(t *testing.T, msg []byte) []edk {
	t.Helper()
	r := msg
	take := func(n int) []byte {
		if len(r) < n {
			t.Fatalf("the header ends early")
		}
		b := r[:n]
		r = r[n:]
		return b
	}
	field := func() []byte { return take(int(binary.BigEndian.Uint16(take(2)))) }
	if v := take(1)[0]; v != 2 {
		t.Fatalf("message version %d, want 2", v)
	}
	take(2 + 32)
	field() // the serialized encryption context
	n := int(binary.BigEndian.Uint16(take(2)))
	out := make([]edk, n)
	for i := range out {
		out[i] = edk{string(field()), string(field()), bytes.Clone(field())}
	}
	return out
}

// checkRSAEDK checks that the message's one RSA EDK has the spec's layout:
// provider id the namespace, provider info the name, an RSA ciphertext as
// long as the modulus.
func checkRSAEDK(t *testing.T, msg []byte, k rsaTestKey) {
	t.Helper()
	for _, e := range headerEDKs(t, msg) {
		if e.providerID != rsaNamespace {
			continue
		}
		if e.providerInfo != rsaName || len(e.ciphertext) != k.priv.Size() {
			t.Fatalf("RSA EDK: info %q, ciphertext %d bytes; want %q and %d", e.providerInfo, len(e.ciphertext), rsaName, k.priv.Size())
		}
		return
	}
	t.Fatal("the message has no raw RSA EDK")
}

// rsaVectors: both committing suites; empty, one byte and several frames
// of plaintext; no context and a several-pair one (which raw RSA does not
// bind: the header does).
func rsaVectors() []vector {
	var vs []vector
	for _, suite := range []phicrypt.Suite{phicrypt.SuiteCommitted, phicrypt.SuiteCommittedSigned} {
		for i, size := range []int{0, 1, 3*4096 + 7} {
			ec := map[string]string(nil)
			if i%2 == 1 {
				ec = map[string]string{"tenant": "general-hospital", "purpose": "escrow", "пациент": "José Núñez"}
			}
			pt := make([]byte, size)
			rand.Read(pt)
			vs = append(vs, vector{fmt.Sprintf("%v/size%d/ctx%d", suite, size, len(ec)), suite, 4096, pt, ec})
		}
	}
	return vs
}

// The JS ESDK's RawRsaKeyringNode encrypts with the public key under every
// padding (PKCS #1 v1.5 included: what phicrypt must be able to read);
// phicrypt decrypts with the private key alone. A keyring of another
// padding does not read the message.
func TestRawRSAJSEncryptsGoDecrypts(t *testing.T) {
	keys := []rsaTestKey{newRSATestKey(t, 2048), newRSATestKey(t, 3072)}
	vs := rsaVectors()
	var jobs []job
	for i, rp := range rsaPaddings {
		k := keys[i%len(keys)]
		for _, v := range vs {
			jobs = append(jobs, job{Op: "encrypt", InputB64: b64(v.pt), Args: k.rsaArgs(rp.flag, false, map[string]any{
				"suite": suiteHex(uint16(v.suite)), "frame-length": v.frame, "context": contextJSON(v.ec)})})
		}
	}
	res := runJS(t, jobs)
	for i, rp := range rsaPaddings {
		k := keys[i%len(keys)]
		enc, err := phicrypt.New(phicrypt.Config{Keyring: k.keyring(t, rp.p, true)})
		if err != nil {
			t.Fatal(err)
		}
		otherPadding := rsaPaddings[(i+1)%len(rsaPaddings)].p
		other, err := phicrypt.New(phicrypt.Config{Keyring: k.keyring(t, otherPadding, true)})
		if err != nil {
			t.Fatal(err)
		}
		for j, v := range vs {
			r := res[i*len(vs)+j]
			t.Run(rp.flag+"/"+v.name, func(t *testing.T) {
				if !r.OK {
					t.Fatalf("JS encrypt failed: %s", r.Error)
				}
				msg := r.output(t)
				checkRSAEDK(t, msg, k)
				got, ec, err := enc.Decrypt(context.Background(), msg, v.ec)
				if err != nil {
					t.Fatalf("phicrypt cannot decrypt the JS message: %v", err)
				}
				if !bytes.Equal(got, v.pt) || len(ec) != len(v.ec) {
					t.Fatalf("phicrypt read %d bytes and %d context pairs, want %d and %d", len(got), len(ec), len(v.pt), len(v.ec))
				}
				if _, _, err := other.Decrypt(context.Background(), msg, v.ec); err == nil {
					t.Fatalf("a %v keyring read a %v message", otherPadding, rp.p)
				}
			})
		}
	}
}

// phicrypt encrypts with the public key alone under every OAEP padding;
// the JS ESDK decrypts with the private key. The JS keyring given only the
// public key cannot decrypt.
func TestRawRSAGoEncryptsJSDecrypts(t *testing.T) {
	keys := []rsaTestKey{newRSATestKey(t, 2048), newRSATestKey(t, 3072)}
	vs := rsaVectors()
	var jobs []job
	oaep := rsaPaddings[1:]
	for i, rp := range oaep {
		k := keys[i%len(keys)]
		kr := k.keyring(t, rp.p, false)
		for _, v := range vs {
			enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, Suite: v.suite, FrameLength: v.frame})
			if err != nil {
				t.Fatal(err)
			}
			msg, err := enc.Encrypt(context.Background(), v.pt, v.ec)
			if err != nil {
				t.Fatal(err)
			}
			checkRSAEDK(t, msg, k)
			jobs = append(jobs, job{Op: "decrypt", InputB64: b64(msg), Args: k.rsaArgs(rp.flag, true, map[string]any{"context": contextJSON(v.ec)})})
		}
		// The last message once more, to the JS keyring holding only the
		// public key.
		jobs = append(jobs, job{Op: "decrypt", InputB64: jobs[len(jobs)-1].InputB64, Args: k.rsaArgs(rp.flag, false, nil)})
	}
	res := runJS(t, jobs)
	n := len(vs) + 1
	for i, rp := range oaep {
		for j, v := range vs {
			r := res[i*n+j]
			t.Run(rp.flag+"/"+v.name, func(t *testing.T) {
				if !r.OK {
					t.Fatalf("JS cannot decrypt the phicrypt message: %s", r.Error)
				}
				if !bytes.Equal(r.output(t), v.pt) {
					t.Fatal("plaintext differs")
				}
				if r.Header.SuiteID != suiteHex(uint16(v.suite)) {
					t.Fatalf("JS read suite %s", r.Header.SuiteID)
				}
			})
		}
		if r := res[i*n+len(vs)]; r.OK {
			t.Errorf("%s: the JS keyring with only the public key decrypted", rp.flag)
		}
	}
}

// Escrow across SDKs: a message written by a KMS generator plus a raw RSA
// public-key child, on either side, is read on the other side by the RSA
// private key alone, with the KMS key disabled.
func TestRawRSAEscrowInterop(t *testing.T) {
	ctx := context.Background()
	l := kmsmock.StartTest(t, kmsmock.Config{Region: kmsRegion})
	tg := newKMSTarget(t, "kmsmock", l.URL, l.Client("interop"))
	k := newRSATestKey(t, 3072)
	pt := []byte("escrowed discharge summary")
	ec := map[string]string{"tenant": "general-hospital"}

	gen, err := keyring.NewKMS(keyring.KMSConfig{Client: tg.client, Generator: tg.keyARN})
	if err != nil {
		t.Fatal(err)
	}
	multi, err := keyring.NewMulti(gen, k.keyring(t, keyring.RSAPaddingOAEPSHA256, false))
	if err != nil {
		t.Fatal(err)
	}
	service, err := phicrypt.New(phicrypt.Config{Keyring: multi})
	if err != nil {
		t.Fatal(err)
	}
	goMsg, err := service.Encrypt(ctx, pt, ec)
	if err != nil {
		t.Fatal(err)
	}
	js := runJS(t, []job{{Op: "encrypt", InputB64: b64(pt), Args: k.rsaArgs("oaep-sha256", false, tg.args(map[string]any{
		"kms-key": tg.keyARN, "context": contextJSON(ec)}))}})
	if !js[0].OK {
		t.Fatalf("JS encrypt with KMS and RSA: %s", js[0].Error)
	}
	jsMsg := js[0].output(t)
	for name, msg := range map[string][]byte{"go": goMsg, "js": jsMsg} {
		edks := headerEDKs(t, msg)
		if len(edks) != 2 || edks[0].providerID != "aws-kms" {
			t.Fatalf("%s: want the KMS EDK then the RSA EDK, got %d EDKs", name, len(edks))
		}
		checkRSAEDK(t, msg, k)
	}

	if _, err := tg.client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(tg.keyARN)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := service.Decrypt(ctx, jsMsg, ec); !errors.Is(err, phicrypt.ErrNoKey) {
		t.Fatalf("with the KMS key disabled the service must not read: %v", err)
	}
	recovery, err := phicrypt.New(phicrypt.Config{Keyring: k.keyring(t, keyring.RSAPaddingOAEPSHA256, true)})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := recovery.Decrypt(ctx, jsMsg, ec)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("the RSA private key cannot read the JS escrow message: %v", err)
	}
	res := runJS(t, []job{{Op: "decrypt", InputB64: b64(goMsg), Args: k.rsaArgs("oaep-sha256", true, map[string]any{"context": contextJSON(ec)})}})
	if !res[0].OK || !bytes.Equal(res[0].output(t), pt) {
		t.Fatalf("the JS RSA keyring cannot read phicrypt's escrow message: %s", res[0].Error)
	}
}
