package phicrypt_test

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// requireStepsNamedOnce checks that err starts "phicrypt: ", says
// "phicrypt:" nowhere else, says "keyring:" at most maxKeyring times and
// never twice in a row, and does not say both that no keyring could unwrap
// the data key and that no encrypted data key could be unwrapped.
func requireStepsNamedOnce(t *testing.T, err error, maxKeyring int) {
	t.Helper()
	require.Error(t, err)
	msg := err.Error()
	require.True(t, strings.HasPrefix(msg, "phicrypt: "), "does not start with phicrypt: %q", msg)
	require.Equal(t, 1, strings.Count(msg, "phicrypt:"), "repeats phicrypt: %q", msg)
	require.NotContains(t, msg, "keyring: keyring:")
	require.LessOrEqual(t, strings.Count(msg, "keyring:"), maxKeyring, "repeats keyring: %q", msg)
	require.LessOrEqual(t, strings.Count(msg, "unwrap"), 1, "names the unwrap step more than once: %q", msg)
}

func prefixTestRawAES(t *testing.T) keyring.Keyring {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	kr, err := keyring.NewRawAES("phicrypt-test", "key-1", key)
	require.NoError(t, err)
	return kr
}

func prefixTestEncryptor(t *testing.T, kr keyring.Keyring) *phicrypt.Encryptor {
	t.Helper()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr})
	require.NoError(t, err)
	return enc
}

// Real failures (a disabled KMS key in kmsmock, a wrong raw AES key, both
// at once through a multi-keyring) name each step once.
func TestKeyringErrorsNameEachStepOnce(t *testing.T) {
	ctx := context.Background()
	ec := map[string]string{"tenant": "general"}
	l := kmsmock.StartTest(t, kmsmock.Config{})
	client := l.Client("svc")
	key, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	arn := aws.ToString(key.KeyMetadata.Arn)
	kmsKR, err := keyring.NewKMS(keyring.KMSConfig{Client: client, Generator: arn})
	require.NoError(t, err)
	raw, wrongRaw := prefixTestRawAES(t), prefixTestRawAES(t)

	both, err := keyring.NewMulti(kmsKR, raw)
	require.NoError(t, err)
	msg, err := prefixTestEncryptor(t, both).Encrypt(ctx, []byte("record"), ec)
	require.NoError(t, err)
	_, err = client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &arn})
	require.NoError(t, err)

	kmsEnc := prefixTestEncryptor(t, kmsKR)
	_, err = kmsEnc.Encrypt(ctx, []byte("record"), ec)
	require.ErrorContains(t, err, "DisabledException")
	requireStepsNamedOnce(t, err, 1)

	_, _, err = kmsEnc.Decrypt(ctx, msg, nil)
	require.ErrorIs(t, err, phicrypt.ErrNoKey)
	require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
	require.ErrorContains(t, err, "DisabledException")
	requireStepsNamedOnce(t, err, 0)

	_, _, err = prefixTestEncryptor(t, wrongRaw).Decrypt(ctx, msg, nil)
	require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
	require.ErrorContains(t, err, "does not open")
	requireStepsNamedOnce(t, err, 0)

	// Both keyrings fail: each says why, under one "could not unwrap".
	wrongBoth, err := keyring.NewMulti(nil, wrongRaw, kmsKR)
	require.NoError(t, err)
	_, _, err = prefixTestEncryptor(t, wrongBoth).Decrypt(ctx, msg, nil)
	require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
	require.ErrorContains(t, err, "does not open")
	require.ErrorContains(t, err, "DisabledException")
	requireStepsNamedOnce(t, err, 0)

	// A keyring of the caller's own, whose errors say nothing of keyrings,
	// gets the step named for it.
	_, err = prefixTestEncryptor(t, failingKeyring{}).Encrypt(ctx, []byte("record"), ec)
	require.ErrorContains(t, err, "phicrypt: keyring: HSM offline")
	requireStepsNamedOnce(t, err, 1)
}

type failingKeyring struct{}

func (failingKeyring) OnEncrypt(context.Context, *keyring.EncryptionMaterials) error {
	return errHSM
}

func (failingKeyring) OnDecrypt(context.Context, *keyring.DecryptionMaterials, []keyring.EncryptedDataKey) error {
	return errHSM
}

var errHSM = errors.New("HSM offline")

// A store that lacks the branch key fails encrypt and decrypt with
// "phicrypt:" once and no "keyring: keyring:". keyring/hierarchical.go
// still adds a second "keyring:" further in ("keyring: reading the active
// version of ...: keyring: no such branch key or version"), hence 2.
func TestHierarchicalErrorsNameEachStepOnce(t *testing.T) {
	ctx := context.Background()
	ec := map[string]string{"tenant": "general"}
	l := kmsmock.StartTest(t, kmsmock.Config{})
	client := l.Client("svc")
	key, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	arn := aws.ToString(key.KeyMetadata.Arn)
	hierarchical := func(t *testing.T, store keystore.Store) (*keyring.BranchKeys, *phicrypt.Encryptor) {
		bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: client, KMSKeyARN: arn, LogicalStoreName: "phicrypt-test"})
		require.NoError(t, err)
		kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, CacheTTL: time.Hour,
			BranchKeyIDSupplier: func(map[string]string) (string, error) { return "tenant-general", nil }})
		require.NoError(t, err)
		return bk, prefixTestEncryptor(t, kr)
	}
	openStore := func(t *testing.T) keystore.Store {
		s, err := keystore.OpenFileStore(t.TempDir())
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}

	bk, enc := hierarchical(t, openStore(t))
	_, err = enc.Encrypt(ctx, []byte("record"), ec)
	require.ErrorIs(t, err, keystore.ErrNotFound)
	requireStepsNamedOnce(t, err, 1)

	_, err = testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-general")
	require.NoError(t, err)
	msg, err := enc.Encrypt(ctx, []byte("record"), ec)
	require.NoError(t, err)
	_, other := hierarchical(t, openStore(t))
	_, _, err = other.Decrypt(ctx, msg, nil)
	require.ErrorIs(t, err, keystore.ErrNotFound)
	requireStepsNamedOnce(t, err, 1)
}
