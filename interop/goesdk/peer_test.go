package goesdk

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	mpl "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygenerated"
	mpltypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygeneratedtypes"
	esdk "github.com/aws/aws-encryption-sdk/releases/go/encryption-sdk/awscryptographyencryptionsdksmithygenerated"
	esdktypes "github.com/aws/aws-encryption-sdk/releases/go/encryption-sdk/awscryptographyencryptionsdksmithygeneratedtypes"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// crossChecks counts the checks in which one implementation judged a
// message: read one the other made, or refused one as it must (a wrong or
// missing context pair, another key, a tampered message from either side).
// TestMain prints the total, so a run that silently checked nothing shows.
var crossChecks atomic.Int64

func crossChecked() { crossChecks.Add(1) }

func TestMain(m *testing.M) {
	code := m.Run()
	fmt.Printf("goesdk interop: %d cross-checks between phicrypt and the AWS Encryption SDK for Go\n", crossChecks.Load())
	os.Exit(code)
}

// The raw AES key's name, shared by both keyrings: its namespace and name
// are the provider id and key name in every encrypted data key.
const (
	rawNamespace = "phicrypt-interop"
	rawName      = "wrapping-key-1"
)

// goESDK is the peer: an ESDK client at its defaults (commitment policy
// require-encrypt-require-decrypt) and a material providers client that
// makes its keyrings and CMMs.
type goESDK struct {
	client *esdk.Client
	mpl    *mpl.Client
}

func newGoESDK(t *testing.T) *goESDK {
	t.Helper()
	c, err := esdk.NewClient(esdktypes.AwsEncryptionSdkConfig{})
	if err != nil {
		t.Fatalf("ESDK client: %v", err)
	}
	m, err := mpl.NewClient(mpltypes.MaterialProvidersConfig{})
	if err != nil {
		t.Fatalf("material providers client: %v", err)
	}
	return &goESDK{client: c, mpl: m}
}

func (p *goESDK) rawAES(t *testing.T, key []byte) mpltypes.IKeyring {
	t.Helper()
	kr, err := p.mpl.CreateRawAesKeyring(context.Background(), mpltypes.CreateRawAesKeyringInput{
		KeyNamespace: rawNamespace, KeyName: rawName, WrappingKey: key,
		WrappingAlg: mpltypes.AesWrappingAlgAlgAes256GcmIv12Tag16,
	})
	if err != nil {
		t.Fatalf("ESDK raw AES keyring: %v", err)
	}
	return kr
}

func (p *goESDK) kmsStrict(t *testing.T, c *kms.Client, keyARN string) mpltypes.IKeyring {
	t.Helper()
	kr, err := p.mpl.CreateAwsKmsKeyring(context.Background(), mpltypes.CreateAwsKmsKeyringInput{KmsClient: c, KmsKeyId: keyARN})
	if err != nil {
		t.Fatalf("ESDK KMS keyring: %v", err)
	}
	return kr
}

func (p *goESDK) kmsDiscovery(t *testing.T, c *kms.Client, account string) mpltypes.IKeyring {
	t.Helper()
	kr, err := p.mpl.CreateAwsKmsDiscoveryKeyring(context.Background(), mpltypes.CreateAwsKmsDiscoveryKeyringInput{
		KmsClient: c, DiscoveryFilter: &mpltypes.DiscoveryFilter{Partition: "aws", AccountIds: []string{account}},
	})
	if err != nil {
		t.Fatalf("ESDK KMS discovery keyring: %v", err)
	}
	return kr
}

// requiredCMM is the ESDK's required-encryption-context CMM over kr: on
// encrypt the pairs of keys are authenticated but left out of the header;
// on decrypt the caller must supply them.
func (p *goESDK) requiredCMM(t *testing.T, kr mpltypes.IKeyring, keys ...string) mpltypes.ICryptographicMaterialsManager {
	t.Helper()
	// v0.4.0 takes only an underlying CMM, not a keyring.
	def, err := p.mpl.CreateDefaultCryptographicMaterialsManager(context.Background(), mpltypes.CreateDefaultCryptographicMaterialsManagerInput{Keyring: kr})
	if err != nil {
		t.Fatalf("ESDK default CMM: %v", err)
	}
	cmm, err := p.mpl.CreateRequiredEncryptionContextCMM(context.Background(), mpltypes.CreateRequiredEncryptionContextCMMInput{
		UnderlyingCMM: def, RequiredEncryptionContextKeys: keys,
	})
	if err != nil {
		t.Fatalf("ESDK required encryption context CMM: %v", err)
	}
	return cmm
}

// materials is a keyring or a CMM, whichever the ESDK call should use.
type materials struct {
	kr  mpltypes.IKeyring
	cmm mpltypes.ICryptographicMaterialsManager
}

func withKeyring(kr mpltypes.IKeyring) materials { return materials{kr: kr} }

func (p *goESDK) encrypt(m materials, suite phicrypt.Suite, frame int, pt []byte, ec map[string]string) ([]byte, error) {
	id := esdkSuite(suite)
	fl := int64(frame)
	out, err := p.client.Encrypt(context.Background(), esdktypes.EncryptInput{
		Plaintext: pt, EncryptionContext: ec, AlgorithmSuiteId: &id, FrameLength: &fl,
		Keyring: m.kr, MaterialsManager: m.cmm,
	})
	if err != nil {
		return nil, err
	}
	return out.Ciphertext, nil
}

func (p *goESDK) decrypt(m materials, msg []byte, ec map[string]string) (*esdktypes.DecryptOutput, error) {
	return p.client.Decrypt(context.Background(), esdktypes.DecryptInput{
		Ciphertext: msg, EncryptionContext: ec, Keyring: m.kr, MaterialsManager: m.cmm,
	})
}

func esdkSuite(s phicrypt.Suite) mpltypes.ESDKAlgorithmSuiteId {
	return mpltypes.ESDKAlgorithmSuiteId(fmt.Sprintf("0x%04x", uint16(s)))
}

// phicryptRawAES is phicrypt's raw AES keyring under the shared name.
func phicryptRawAES(t *testing.T, key []byte) keyring.Keyring {
	t.Helper()
	kr, err := keyring.NewRawAES(rawNamespace, rawName, key)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func newEncryptor(t *testing.T, cfg phicrypt.Config) *phicrypt.Encryptor {
	t.Helper()
	enc, err := phicrypt.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// vector is one message to make on one side and read on the other.
type vector struct {
	name  string
	suite phicrypt.Suite
	frame int
	pt    []byte
	ec    map[string]string
	// authOnly are keys of ec whose pairs are authenticated but not
	// stored in the header (the ESDK's required encryption context).
	authOnly []string
}

var suites = []phicrypt.Suite{phicrypt.SuiteCommitted, phicrypt.SuiteCommittedSigned}

// contexts: none, ASCII, and non-ASCII keys whose UTF-8 byte order differs
// from their UTF-16 code unit order. In UTF-8, U+E000 (EE 80 80) and
// U+FB01 (EF AC 81) sort before U+1F3E5 (F0 9F 8F A5); in UTF-16 the
// surrogate pair of U+1F3E5 (D83C DFE5) sorts before both. A peer that
// sorted the serialized context by UTF-16 (or by locale) would write a
// different header and different raw AES wrapping AAD.
var contexts = []map[string]string{
	nil,
	{"tenant": "general-hospital", "table": "patients", "column": "notes", "purpose": "go-esdk-interop"},
	{"\U0001F3E5 ward": "cardiología", "\uE000private": "José Núñez", "\uFB01le": "総合病院", "zeta": "🩺", "Ω": "ω"},
}

// sizes are the plaintext lengths the issue asks for at one frame length:
// empty, one byte, one byte short of a frame, a frame, one byte past it,
// and a few frames and a tail.
func sizes(frame int) []int {
	var out []int
	seen := map[int]bool{}
	for _, n := range []int{0, 1, frame - 1, frame, frame + 1, 3*frame + frame/2 + 1} {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// matrix crosses both suites, the frame lengths and every size, giving
// each (suite, frame) every context at least once.
func matrix(frames []int) []vector {
	var vs []vector
	for _, suite := range suites {
		for _, frame := range frames {
			for i, size := range sizes(frame) {
				ci := i % len(contexts)
				vs = append(vs, vector{
					name:  fmt.Sprintf("%v/frame%d/size%d/ctx%d", suite, frame, size, ci),
					suite: suite, frame: frame, pt: randomBytes(size), ec: contexts[ci],
				})
			}
		}
	}
	return vs
}

// phicryptReads checks that phicrypt decrypts a message the ESDK made for v:
// same plaintext and context, and a header with v's suite, frame length and
// context in UTF-8 byte order.
func phicryptReads(t *testing.T, enc *phicrypt.Encryptor, msg []byte, v vector) {
	t.Helper()
	checkHeader(t, msg, v)
	got, ec, err := enc.Decrypt(context.Background(), msg, v.ec)
	if err != nil {
		t.Fatalf("phicrypt cannot decrypt the ESDK's message: %v", err)
	}
	if !bytes.Equal(got, v.pt) {
		t.Fatal("phicrypt read another plaintext than the ESDK encrypted")
	}
	if !sameContext(ec, v.ec) {
		t.Fatalf("phicrypt read a context of %d pairs, want the %d the ESDK encrypted", len(ec), len(v.ec))
	}
	crossChecked()
}

// esdkReads checks that the ESDK decrypts a message phicrypt made for v.
func esdkReads(t *testing.T, p *goESDK, m materials, msg []byte, v vector) {
	t.Helper()
	checkHeader(t, msg, v)
	out, err := p.decrypt(m, msg, v.ec)
	if err != nil {
		t.Fatalf("the ESDK cannot decrypt phicrypt's message: %v", err)
	}
	if !bytes.Equal(out.Plaintext, v.pt) {
		t.Fatal("the ESDK read another plaintext than phicrypt encrypted")
	}
	if out.AlgorithmSuiteId != esdkSuite(v.suite) {
		t.Fatalf("the ESDK read suite %s, want %s", out.AlgorithmSuiteId, esdkSuite(v.suite))
	}
	ec := out.EncryptionContext
	if v.suite == phicrypt.SuiteCommittedSigned {
		if ec[publicKeyContextKey] == "" {
			t.Fatal("the ESDK found no signing key in a signed message's context")
		}
		ec = withoutKey(ec, publicKeyContextKey)
	}
	if !sameContext(ec, v.ec) {
		t.Fatalf("the ESDK read a context of %d pairs, want the %d phicrypt encrypted", len(ec), len(v.ec))
	}
	crossChecked()
}

const publicKeyContextKey = "aws-crypto-public-key"

func sameContext(got, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return false
		}
	}
	return true
}

func withoutKey(m map[string]string, key string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}
