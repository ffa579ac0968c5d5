package keyring_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"testing/cryptotest"

	"github.com/phicrypt/phicrypt/internal/shamir"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/stretchr/testify/require"
)

// go test ./keyring -run TestThresholdVector -update-threshold-vector
// rewrites testdata/threshold-2-of-3.json from the fixed seed below.
var updateThresholdVector = flag.Bool("update-threshold-vector", false, "rewrite keyring/testdata/threshold-2-of-3.json")

const thresholdVectorPath = "testdata/threshold-2-of-3.json"

// thresholdVector is a 2-of-3 threshold keyring's output over three raw
// AES children, made with crypto/rand replaced by a seeded source
// (testing/cryptotest), with every field broken out.
type thresholdVector struct {
	Description       string            `json:"description"`
	Seed              uint64            `json:"seed"`
	Suite             uint16            `json:"suite"`
	Threshold         int               `json:"threshold"`
	EncryptionContext map[string]string `json:"encryption_context"`
	Children          []vectorRawAES    `json:"children"`
	DataKeyHex        string            `json:"data_key_hex"`
	GroupIDHex        string            `json:"group_id_hex"`
	KeyCheckHex       string            `json:"key_check_hex"`
	EDKs              []vectorShareEDK  `json:"edks"`
}

type vectorRawAES struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	KeyHex    string `json:"key_hex"`
}

type vectorEDK struct {
	ProviderID      string `json:"provider_id"`
	ProviderInfoHex string `json:"provider_info_hex"`
	CiphertextHex   string `json:"ciphertext_hex"`
}

type vectorShareEDK struct {
	vectorEDK
	ShareIndex int       `json:"share_index"`
	ShareHex   string    `json:"share_hex"` // the share's Y, as child ShareIndex unwraps it
	Child      vectorEDK `json:"child_edk"`
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

func (v vectorEDK) edk(t *testing.T) keyring.EncryptedDataKey {
	return keyring.EncryptedDataKey{ProviderID: v.ProviderID, ProviderInfo: unhex(t, v.ProviderInfoHex), Ciphertext: unhex(t, v.CiphertextHex)}
}

func vectorEDKOf(e keyring.EncryptedDataKey) vectorEDK {
	return vectorEDK{ProviderID: e.ProviderID, ProviderInfoHex: hex.EncodeToString(e.ProviderInfo), CiphertextHex: hex.EncodeToString(e.Ciphertext)}
}

func (v *thresholdVector) children(t *testing.T) []keyring.Keyring {
	var out []keyring.Keyring
	for _, c := range v.Children {
		out = append(out, newRawAES(t, c.Namespace, c.Name, unhex(t, c.KeyHex)))
	}
	return out
}

// makeThresholdVector encrypts under the seeded source: the same seed
// gives the same bytes.
func makeThresholdVector(t *testing.T, seed uint64) *thresholdVector {
	v := &thresholdVector{
		Description: "A 2-of-3 threshold keyring over three raw AES-256 children (ESDK raw AES keyring format), " +
			"encrypting with crypto/rand replaced by testing/cryptotest.SetGlobalRandom(seed). Each EDK is broken out " +
			"field by field; share_hex is the share the child unwraps; any two shares combine to data_key_hex.",
		Seed: seed, Suite: 0x0478, Threshold: 2,
		EncryptionContext: map[string]string{"purpose": "threshold vector", "tenant": "example-clinic"},
	}
	for i := range 3 {
		key := make([]byte, 32)
		for j := range key {
			key[j] = byte(0x10*(i+1) + j)
		}
		v.Children = append(v.Children, vectorRawAES{Namespace: "phicrypt-custodians", Name: "custodian-" + string(rune('1'+i)), KeyHex: hex.EncodeToString(key)})
	}
	children := v.children(t)
	kr := newThreshold(t, v.Threshold, children...)
	cryptotest.SetGlobalRandom(t, seed)
	em := &keyring.EncryptionMaterials{SuiteID: v.Suite, DataKeyLength: 32, EncryptionContext: v.EncryptionContext}
	require.NoError(t, kr.OnEncrypt(context.Background(), em))
	v.DataKeyHex = hex.EncodeToString(em.DataKey)
	v.GroupIDHex = hex.EncodeToString(em.EncryptedDataKeys[0].ProviderInfo[1:17])
	v.KeyCheckHex = hex.EncodeToString(em.EncryptedDataKeys[0].Ciphertext[:32])
	for i, edk := range em.EncryptedDataKeys {
		child := edk.Ciphertext[33:]
		idLen := int(binary.BigEndian.Uint16(child))
		id := child[2 : 2+idLen]
		rest := child[2+idLen:]
		infoLen := int(binary.BigEndian.Uint16(rest))
		info := rest[2 : 2+infoLen]
		ct := rest[2+infoLen+2:]
		childEDK := keyring.EncryptedDataKey{ProviderID: string(id), ProviderInfo: info, Ciphertext: ct}
		dm := &keyring.DecryptionMaterials{SuiteID: v.Suite, DataKeyLength: 32, EncryptionContext: v.EncryptionContext}
		require.NoError(t, children[i].OnDecrypt(context.Background(), dm, []keyring.EncryptedDataKey{childEDK}))
		v.EDKs = append(v.EDKs, vectorShareEDK{vectorEDK: vectorEDKOf(edk), ShareIndex: i + 1,
			ShareHex: hex.EncodeToString(dm.DataKey), Child: vectorEDKOf(childEDK)})
	}
	return v
}

func loadThresholdVector(t *testing.T) *thresholdVector {
	t.Helper()
	if *updateThresholdVector {
		v := makeThresholdVector(t, 20261206)
		out, err := json.MarshalIndent(v, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(thresholdVectorPath), 0o755))
		require.NoError(t, os.WriteFile(thresholdVectorPath, append(out, '\n'), 0o644))
	}
	data, err := os.ReadFile(thresholdVectorPath)
	require.NoError(t, err)
	var v thresholdVector
	require.NoError(t, json.Unmarshal(data, &v))
	require.Len(t, v.EDKs, 3)
	return &v
}

// TestThresholdVectorBytes decodes the vector's EDKs byte by byte as
// docs/FORMAT.md ("Threshold keyring EDKs") lays them out, written here
// independently of the keyring's parser.
func TestThresholdVectorBytes(t *testing.T) {
	v := loadThresholdVector(t)
	dataKey, group, check := unhex(t, v.DataKeyHex), unhex(t, v.GroupIDHex), unhex(t, v.KeyCheckHex)
	require.Len(t, group, 16)

	// key check = HMAC-SHA-256(data key, label || version || group id || M || N)
	mac := hmac.New(sha256.New, dataKey)
	mac.Write([]byte("phicrypt-threshold key check v1"))
	mac.Write([]byte{0x01})
	mac.Write(group)
	mac.Write([]byte{2, 3})
	require.Equal(t, mac.Sum(nil), check)

	var shares []shamir.Share
	for i, e := range v.EDKs {
		require.Equal(t, "phicrypt-threshold", e.ProviderID)
		info := unhex(t, e.ProviderInfoHex)
		require.Len(t, info, 20)
		require.Equal(t, byte(0x01), info[0], "format version")
		require.Equal(t, group, info[1:17], "group id")
		require.Equal(t, []byte{2, 3, byte(i + 1)}, info[17:], "M, N, share index")
		require.Equal(t, i+1, e.ShareIndex)

		ct := unhex(t, e.CiphertextHex)
		require.Equal(t, check, ct[:32], "key check")
		require.Equal(t, byte(1), ct[32], "one child EDK")
		child := e.Child
		want := []byte{}
		for _, field := range [][]byte{[]byte(child.ProviderID), unhex(t, child.ProviderInfoHex), unhex(t, child.CiphertextHex)} {
			want = binary.BigEndian.AppendUint16(want, uint16(len(field)))
			want = append(want, field...)
		}
		require.Equal(t, want, ct[33:], "the child's EDK, length-prefixed, and nothing after it")

		// The child EDK is the ESDK raw AES keyring's: key name, tag
		// bits 128, IV length 12, IV; 32-byte wrapped share and 16-byte
		// tag.
		require.Equal(t, "phicrypt-custodians", child.ProviderID)
		childInfo := unhex(t, child.ProviderInfoHex)
		name := v.Children[i].Name
		require.Equal(t, name, string(childInfo[:len(name)]))
		require.Equal(t, []byte{0, 0, 0, 128, 0, 0, 0, 12}, childInfo[len(name):len(name)+8])
		require.Len(t, childInfo, len(name)+8+12)
		require.Len(t, unhex(t, child.CiphertextHex), 32+16)

		// Each child alone unwraps its share.
		dm := &keyring.DecryptionMaterials{SuiteID: v.Suite, DataKeyLength: 32, EncryptionContext: v.EncryptionContext}
		require.NoError(t, v.children(t)[i].OnDecrypt(context.Background(), dm, []keyring.EncryptedDataKey{child.edk(t)}))
		require.Equal(t, e.ShareHex, hex.EncodeToString(dm.DataKey))
		shares = append(shares, shamir.Share{X: byte(i + 1), Y: unhex(t, e.ShareHex)})
	}
	for _, pair := range [][]shamir.Share{{shares[0], shares[1]}, {shares[0], shares[2]}, {shares[2], shares[1]}} {
		got, err := shamir.Combine(pair)
		require.NoError(t, err)
		require.Equal(t, dataKey, got)
	}
}

// TestThresholdVectorDecrypts: the keyring reads the vector with all three
// children and with any two (the third replaced by a raw AES keyring of
// the same name and another key), and writes the same bytes again from the
// same seed.
func TestThresholdVectorDecrypts(t *testing.T) {
	v := loadThresholdVector(t)
	var edks []keyring.EncryptedDataKey
	for _, e := range v.EDKs {
		edks = append(edks, e.edk(t))
	}
	for lost := -1; lost < 3; lost++ {
		children := v.children(t)
		if lost >= 0 {
			children[lost] = newRawAES(t, v.Children[lost].Namespace, v.Children[lost].Name, bytes.Repeat([]byte{0xee}, 32))
		}
		dm := &keyring.DecryptionMaterials{SuiteID: v.Suite, DataKeyLength: 32, EncryptionContext: v.EncryptionContext}
		require.NoError(t, newThreshold(t, 2, children...).OnDecrypt(context.Background(), dm, edks), "child %d lost", lost+1)
		require.Equal(t, v.DataKeyHex, hex.EncodeToString(dm.DataKey))
	}

	again := makeThresholdVector(t, v.Seed)
	require.Equal(t, v.DataKeyHex, again.DataKeyHex)
	require.Equal(t, v.EDKs, again.EDKs, "the same seed writes the same bytes")
}
