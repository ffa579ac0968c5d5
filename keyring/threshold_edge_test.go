package keyring_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/stretchr/testify/require"
)

// keyringFunc is a keyring whose OnEncrypt is f, for children that
// misbehave; it never decrypts.
type keyringFunc func(*keyring.EncryptionMaterials)

func (f keyringFunc) OnEncrypt(_ context.Context, m *keyring.EncryptionMaterials) error {
	f(m)
	return nil
}

func (f keyringFunc) OnDecrypt(context.Context, *keyring.DecryptionMaterials, []keyring.EncryptedDataKey) error {
	return keyring.ErrNoMatchingKey
}

// A child that wraps its share under two KMS keys (a KMS keyring with a
// generator and another key) leaves both EDKs in the share; either opens it.
func TestThresholdChildWithSeveralEDKs(t *testing.T) {
	e := newThresholdEnv(t, 2, 3)
	second := e.key("")
	svc := e.client("svc")
	children := append([]keyring.Keyring{newKMS(t, keyring.KMSConfig{Client: svc, Generator: e.arns[0], Keys: []string{second}})}, e.children[1:]...)
	kr := newThreshold(t, 2, children...)
	em := encMaterials(phiContext)
	require.NoError(t, kr.OnEncrypt(context.Background(), em))
	require.Equal(t, byte(2), em.EncryptedDataKeys[0].Ciphertext[32], "share 1 holds two child EDKs")
	require.Equal(t, byte(1), em.EncryptedDataKeys[1].Ciphertext[32])

	e.disable(0) // share 1's first key; its second still opens it
	e.disable(2) // share 3
	dk, err := decryptWith(kr, em.EncryptedDataKeys)
	require.NoError(t, err)
	require.Equal(t, []byte(em.DataKey), []byte(dk))
}

// A child must wrap the share it was given, and make 1 to 8 EDKs.
func TestThresholdMisbehavingChild(t *testing.T) {
	good := newRawAES(t, "ns", "good", canaryKey)
	edk := keyring.EncryptedDataKey{ProviderID: "x", ProviderInfo: []byte("i"), Ciphertext: []byte("c")}
	for name, c := range map[string]struct {
		f    func(*keyring.EncryptionMaterials)
		want string
	}{
		"replaces the share": {func(m *keyring.EncryptionMaterials) {
			m.DataKey = keyring.Secret(bytes.Repeat([]byte{1}, len(m.DataKey)))
			m.EncryptedDataKeys = append(m.EncryptedDataKeys, edk)
		}, "replaced the share"},
		"makes no EDK": {func(*keyring.EncryptionMaterials) {}, "made no encrypted data key"},
		"makes nine EDKs": {func(m *keyring.EncryptionMaterials) {
			for range 9 {
				m.EncryptedDataKeys = append(m.EncryptedDataKeys, edk)
			}
		}, "made 9 encrypted data keys for its share; 1 to 8 fit"},
		"empty provider id": {func(m *keyring.EncryptionMaterials) {
			m.EncryptedDataKeys = append(m.EncryptedDataKeys, keyring.EncryptedDataKey{Ciphertext: []byte("c")})
		}, "empty or non-UTF-8 provider id"},
		"too large for the header": {func(m *keyring.EncryptionMaterials) {
			m.EncryptedDataKeys = append(m.EncryptedDataKeys, keyring.EncryptedDataKey{ProviderID: "x", Ciphertext: make([]byte, 0xffff-39)})
		}, "a message holds at most 65535"},
	} {
		t.Run(name, func(t *testing.T) {
			kr := newThreshold(t, 2, good, keyringFunc(c.f))
			em := encMaterials(phiContext)
			err := kr.OnEncrypt(context.Background(), em)
			require.ErrorContains(t, err, c.want)
			require.Nil(t, em.DataKey)
			require.Empty(t, em.EncryptedDataKeys)
		})
	}
}

// More than 255 threshold EDKs are refused before any is looked at.
func TestThresholdEDKCountCap(t *testing.T) {
	e := newThresholdEnv(t, 2, 3)
	em := e.encrypt()
	var many []keyring.EncryptedDataKey
	for len(many) <= 255 {
		many = append(many, em.EncryptedDataKeys...)
	}
	before := e.calls("Decrypt")
	_, err := decryptWith(e.kr, many)
	require.ErrorIs(t, err, keyring.ErrThresholdTampered)
	require.ErrorContains(t, err, "more than 255 threshold shares")
	require.Equal(t, before, e.calls("Decrypt"))
}

// A hierarchical child bounds how long the materials may be cached (its
// branch key's cache entry); the threshold keyring passes the bound on, on
// both sides.
func TestThresholdPassesOnValidity(t *testing.T) {
	env := testkeys.New(t, testkeys.Options{})
	env.Create(t, "tenant-1")
	hier := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: env.Keys, BranchKeyID: "tenant-1", CacheTTL: time.Minute})
	kr := newThreshold(t, 2, hier, newRawAES(t, "ns", "escrow", canaryKey))
	em := encMaterials(phiContext)
	require.NoError(t, kr.OnEncrypt(context.Background(), em))
	require.Positive(t, em.ValidFor)
	require.LessOrEqual(t, em.ValidFor, time.Minute)
	dm := decMaterials(phiContext)
	require.NoError(t, kr.OnDecrypt(context.Background(), dm, em.EncryptedDataKeys))
	require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))
	require.Positive(t, dm.ValidFor)
	require.LessOrEqual(t, dm.ValidFor, time.Minute)
}

// Whatever bytes a message holds in place of threshold EDKs, OnDecrypt
// returns an error and never panics.
func FuzzThresholdOnDecrypt(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 1}, make([]byte, 40), uint8(2))
	f.Add(make([]byte, 20), []byte{}, uint8(1))
	var children []keyring.Keyring
	for _, name := range []string{"a", "b", "c"} {
		c, err := keyring.NewRawAES("ns", name, canaryKey)
		if err != nil {
			f.Fatal(err)
		}
		children = append(children, c)
	}
	kr, err := keyring.NewThreshold(keyring.ThresholdConfig{Threshold: 2, Children: children})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, info, ct []byte, copies uint8) {
		var edks []keyring.EncryptedDataKey
		for i := range int(copies % 4) {
			in := bytes.Clone(info)
			if len(in) == 20 {
				in[19] = byte(i + 1)
			}
			edks = append(edks, keyring.EncryptedDataKey{ProviderID: keyring.ThresholdProviderID, ProviderInfo: in, Ciphertext: ct})
		}
		dm := decMaterials(phiContext)
		if err := kr.OnDecrypt(context.Background(), dm, edks); err == nil {
			t.Fatal("made-up shares gave a data key")
		}
	})
}
