package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/stretchr/testify/require"
)

// failingKeyring fails both operations with err, after remembering the data
// key it was shown on encrypt (to check that the multi-keyring wipes it).
type failingKeyring struct {
	err  error
	seen keyring.Secret
}

func (f *failingKeyring) OnEncrypt(_ context.Context, m *keyring.EncryptionMaterials) error {
	f.seen = m.DataKey
	return f.err
}

func (f *failingKeyring) OnDecrypt(context.Context, *keyring.DecryptionMaterials, []keyring.EncryptedDataKey) error {
	return f.err
}

func TestNewMultiRefusesBadConfig(t *testing.T) {
	raw := newRawAES(t, "ns", "k", canaryKey)
	_, err := keyring.NewMulti(nil)
	require.Error(t, err)
	_, err = keyring.NewMulti(raw, nil)
	require.Error(t, err)
	_, err = keyring.NewMulti(nil, raw, nil)
	require.Error(t, err)
	_, err = keyring.NewMulti(raw)
	require.NoError(t, err)
	_, err = keyring.NewMulti(nil, raw)
	require.NoError(t, err)
}

// A KMS generator plus a raw AES child (an escrow key): the message carries
// both EDKs, and each keyring alone, or the multi-keyring, reads it.
func TestMultiKMSGeneratorWithRawAESChild(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	arn := e.key("")
	svc := e.client("svc")
	gen := newKMS(t, keyring.KMSConfig{Client: svc, Generator: arn})
	escrow := newRawAES(t, "phicrypt-escrow", "escrow-1", canaryKey)
	multi, err := keyring.NewMulti(gen, escrow)
	require.NoError(t, err)

	em := encMaterials(phiContext)
	require.NoError(t, multi.OnEncrypt(ctx, em))
	require.EqualValues(t, 1, e.calls("GenerateDataKey"))
	require.Zero(t, e.calls("Encrypt"))
	require.Len(t, em.DataKey, dataKeyLength)
	require.Len(t, em.EncryptedDataKeys, 2)
	require.Equal(t, "aws-kms", em.EncryptedDataKeys[0].ProviderID, "the generator's EDK comes first")
	require.Equal(t, arn, string(em.EncryptedDataKeys[0].ProviderInfo))
	require.Equal(t, "phicrypt-escrow", em.EncryptedDataKeys[1].ProviderID)

	for name, kr := range map[string]keyring.Keyring{
		"multi":     multi,
		"kms":       newKMS(t, keyring.KMSConfig{Client: svc, Generator: arn}),
		"discovery": newDiscovery(t, keyring.KMSDiscoveryConfig{Client: svc}),
		"raw":       newRawAES(t, "phicrypt-escrow", "escrow-1", canaryKey),
	} {
		t.Run(name, func(t *testing.T) {
			dm := decMaterials(phiContext)
			require.NoError(t, kr.OnDecrypt(ctx, dm, em.EncryptedDataKeys))
			require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))
		})
	}

	// With KMS out of reach (key disabled), the escrow copy still reads,
	// through the multi-keyring too.
	_, err = e.admin().DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(arn)})
	require.NoError(t, err)
	dm := decMaterials(phiContext)
	require.NoError(t, multi.OnDecrypt(ctx, dm, em.EncryptedDataKeys))
	require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))

	// The escrow EDK alone: the generator has nothing to try, the child reads it.
	before := e.calls("Decrypt")
	dm = decMaterials(phiContext)
	require.NoError(t, multi.OnDecrypt(ctx, dm, em.EncryptedDataKeys[1:]))
	require.Equal(t, before, e.calls("Decrypt"))
}

// A raw AES generator with a KMS child: the child wraps the generator's key
// with Encrypt.
func TestMultiRawAESGeneratorWithKMSChild(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	arn := e.key("")
	child := newKMS(t, keyring.KMSConfig{Client: e.client("svc"), Keys: []string{arn}})
	multi, err := keyring.NewMulti(newRawAES(t, "ns", "k", canaryKey), child)
	require.NoError(t, err)
	em := encMaterials(phiContext)
	require.NoError(t, multi.OnEncrypt(ctx, em))
	require.Zero(t, e.calls("GenerateDataKey"))
	require.EqualValues(t, 1, e.calls("Encrypt"))
	require.Len(t, em.EncryptedDataKeys, 2)
	require.Equal(t, "ns", em.EncryptedDataKeys[0].ProviderID)
	require.Equal(t, arn, string(em.EncryptedDataKeys[1].ProviderInfo))

	dm := decMaterials(phiContext)
	require.NoError(t, child.OnDecrypt(ctx, dm, em.EncryptedDataKeys))
	require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))
}

// Any failure fails OnEncrypt as a whole and leaves the materials as they
// were: no data key, the caller's EDK slice untouched (even its spare
// capacity), and a data key the generator made is wiped.
func TestMultiEncryptFailureLeavesMaterials(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	arn, disabledARN := e.key(""), e.key("")
	_, err := e.admin().DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(disabledARN)})
	require.NoError(t, err)
	svc := e.client("svc")
	gen := newKMS(t, keyring.KMSConfig{Client: svc, Generator: arn})
	raw := newRawAES(t, "ns", "k", canaryKey)
	boom := errors.New("child failed")

	prior := keyring.EncryptedDataKey{ProviderID: "prior", ProviderInfo: []byte("p"), Ciphertext: []byte("c")}
	fresh := func() *keyring.EncryptionMaterials {
		m := encMaterials(phiContext)
		m.EncryptedDataKeys = make([]keyring.EncryptedDataKey, 1, 8)
		m.EncryptedDataKeys[0] = prior
		return m
	}
	requireUnchanged := func(t *testing.T, m *keyring.EncryptionMaterials) {
		t.Helper()
		require.Nil(t, m.DataKey)
		require.Equal(t, []keyring.EncryptedDataKey{prior}, m.EncryptedDataKeys)
		require.Zero(t, m.EncryptedDataKeys[:2][1], "nothing written into the caller's spare capacity")
	}

	t.Run("failing child after generator", func(t *testing.T) {
		f := &failingKeyring{err: boom}
		multi, err := keyring.NewMulti(gen, raw, f)
		require.NoError(t, err)
		m := fresh()
		require.ErrorIs(t, multi.OnEncrypt(ctx, m), boom)
		requireUnchanged(t, m)
		require.Len(t, f.seen, dataKeyLength)
		require.Equal(t, make([]byte, dataKeyLength), []byte(f.seen), "the generated data key is wiped")
	})
	t.Run("disabled KMS child", func(t *testing.T) {
		multi, err := keyring.NewMulti(raw, newKMS(t, keyring.KMSConfig{Client: svc, Keys: []string{disabledARN}}))
		require.NoError(t, err)
		m := fresh()
		require.ErrorContains(t, multi.OnEncrypt(ctx, m), "DisabledException")
		requireUnchanged(t, m)
	})
	t.Run("strict KMS with a disabled extra key", func(t *testing.T) {
		kr := newKMS(t, keyring.KMSConfig{Client: svc, Generator: arn, Keys: []string{disabledARN}})
		m := fresh()
		require.ErrorContains(t, kr.OnEncrypt(ctx, m), "DisabledException")
		requireUnchanged(t, m)
	})
	t.Run("failing generator", func(t *testing.T) {
		multi, err := keyring.NewMulti(newKMS(t, keyring.KMSConfig{Client: svc, Generator: disabledARN}), raw)
		require.NoError(t, err)
		m := fresh()
		require.ErrorContains(t, multi.OnEncrypt(ctx, m), "DisabledException")
		requireUnchanged(t, m)
	})
	t.Run("no generator and no data key", func(t *testing.T) {
		multi, err := keyring.NewMulti(nil, raw)
		require.NoError(t, err)
		m := fresh()
		require.Error(t, multi.OnEncrypt(ctx, m))
		requireUnchanged(t, m)
	})
	t.Run("data key from the caller is kept, not wiped", func(t *testing.T) {
		multi, err := keyring.NewMulti(nil, raw, &failingKeyring{err: boom})
		require.NoError(t, err)
		m := fresh()
		dk := bytes.Repeat([]byte{0x5a}, dataKeyLength)
		m.DataKey = keyring.Secret(bytes.Clone(dk))
		require.ErrorIs(t, multi.OnEncrypt(ctx, m), boom)
		require.Equal(t, dk, []byte(m.DataKey))
		require.Equal(t, []keyring.EncryptedDataKey{prior}, m.EncryptedDataKeys)
	})
}

// On decrypt a failing keyring does not stop the next one; when all fail,
// the error is ErrUnwrapFailed carrying each failure, and when none had a
// matching EDK, ErrNoMatchingKey.
func TestMultiDecrypt(t *testing.T) {
	ctx := context.Background()
	raw := newRawAES(t, "ns", "k", canaryKey)
	em := encMaterials(phiContext)
	require.NoError(t, raw.OnEncrypt(ctx, em))
	boom := errors.New("generator failed")

	multi, err := keyring.NewMulti(&failingKeyring{err: boom}, raw)
	require.NoError(t, err)
	dm := decMaterials(phiContext)
	require.NoError(t, multi.OnDecrypt(ctx, dm, em.EncryptedDataKeys))
	require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))

	wrongKey := newRawAES(t, "ns", "k", bytes.Repeat([]byte{1}, 32))
	multi, err = keyring.NewMulti(&failingKeyring{err: boom}, wrongKey, newRawAES(t, "other", "k", canaryKey))
	require.NoError(t, err)
	dm = decMaterials(phiContext)
	err = multi.OnDecrypt(ctx, dm, em.EncryptedDataKeys)
	require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
	require.ErrorIs(t, err, boom)
	require.Contains(t, err.Error(), "does not open")
	require.Nil(t, dm.DataKey)
	requireNoCanary(t, err.Error(), em.DataKey)

	multi, err = keyring.NewMulti(newRawAES(t, "other", "k", canaryKey), newRawAES(t, "ns", "other", canaryKey))
	require.NoError(t, err)
	dm = decMaterials(phiContext)
	err = multi.OnDecrypt(ctx, dm, em.EncryptedDataKeys)
	require.ErrorIs(t, err, keyring.ErrNoMatchingKey)
	require.NotErrorIs(t, err, keyring.ErrUnwrapFailed)
	require.Nil(t, dm.DataKey)

	dm = decMaterials(phiContext)
	dm.DataKey = keyring.Secret(bytes.Repeat([]byte{2}, dataKeyLength))
	require.ErrorIs(t, multi.OnDecrypt(ctx, dm, em.EncryptedDataKeys), keyring.ErrDataKeyPresent)
}
