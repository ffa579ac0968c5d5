package keyring_test

import (
	"context"
	"testing"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

func newEncryptor(t *testing.T, kr keyring.Keyring, maxEDKs int) *phicrypt.Encryptor {
	t.Helper()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, MaxEncryptedDataKeys: maxEDKs})
	require.NoError(t, err)
	return enc
}

// The threshold keyring as an Encryptor's only keyring: a message round
// trips, and still opens with one custodian's key disabled.
func TestThresholdEncryptorRoundTrip(t *testing.T) {
	ctx := context.Background()
	e := newThresholdEnv(t, 2, 3)
	enc := newEncryptor(t, e.kr, 0) // 3 EDKs: within the default of 5
	plain := []byte("discharge summary: CANARY-PHI")
	msg, err := enc.Encrypt(ctx, plain, phiContext)
	require.NoError(t, err)
	e.disable(2)
	got, _, err := enc.Decrypt(ctx, msg, phiContext)
	require.NoError(t, err)
	require.Equal(t, plain, got)

	e.disable(0)
	_, _, err = enc.Decrypt(ctx, msg, phiContext)
	require.ErrorIs(t, err, phicrypt.ErrNoKey)
	require.ErrorIs(t, err, keyring.ErrThresholdShares)
	require.NotContains(t, err.Error(), phiContext["patient"])
}

// A multi-keyring carries the threshold keyring beside an ordinary KMS
// generator: the message holds one aws-kms EDK and N threshold EDKs; the
// KMS keyring alone reads it (skipping the threshold EDKs, as any ESDK
// does with a provider id it does not know), so does the threshold keyring
// alone, and so does the multi-keyring once the generator's key is
// disabled.
func TestThresholdBesideKMSGeneratorInMulti(t *testing.T) {
	ctx := context.Background()
	e := newThresholdEnv(t, 2, 3)
	gen := e.key("")
	svc := e.client("svc")
	kmsKR := newKMS(t, keyring.KMSConfig{Client: svc, Generator: gen})
	multi, err := keyring.NewMulti(kmsKR, e.kr)
	require.NoError(t, err)

	em := encMaterials(phiContext)
	require.NoError(t, multi.OnEncrypt(ctx, em))
	require.Len(t, em.EncryptedDataKeys, 4)
	require.Equal(t, "aws-kms", em.EncryptedDataKeys[0].ProviderID)
	require.EqualValues(t, 1, e.calls("GenerateDataKey"), "the KMS generator makes the data key; the threshold keyring splits it")
	for _, edk := range em.EncryptedDataKeys[1:] {
		require.Equal(t, keyring.ThresholdProviderID, edk.ProviderID)
	}

	enc := newEncryptor(t, multi, 0)
	plain := []byte("lab result: CANARY-PHI")
	msg, err := enc.Encrypt(ctx, plain, phiContext)
	require.NoError(t, err)
	for name, kr := range map[string]keyring.Keyring{"multi": multi, "kms alone": kmsKR, "threshold alone": e.kr} {
		t.Run(name, func(t *testing.T) {
			got, _, err := newEncryptor(t, kr, 0).Decrypt(ctx, msg, phiContext)
			require.NoError(t, err)
			require.Equal(t, plain, got)
		})
	}

	// KMS key lost: the custodians' shares still open the message.
	_, err = e.admin().DisableKey(ctx, disableInput(gen))
	require.NoError(t, err)
	got, _, err := enc.Decrypt(ctx, msg, phiContext)
	require.NoError(t, err)
	require.Equal(t, plain, got)
	_, _, err = newEncryptor(t, kmsKR, 0).Decrypt(ctx, msg, phiContext)
	require.ErrorIs(t, err, phicrypt.ErrNoKey)
}

// N shares are N encrypted data keys, and an Encryptor caps them on both
// sides (MaxEncryptedDataKeys, default 5): a 3-of-5 threshold keyring
// beside a KMS generator writes 6, so the writer and every reader need
// MaxEncryptedDataKeys of at least 6.
func TestThresholdNeedsMaxEncryptedDataKeys(t *testing.T) {
	ctx := context.Background()
	e := newThresholdEnv(t, 3, 5)
	gen := newKMS(t, keyring.KMSConfig{Client: e.client("svc"), Generator: e.key("")})
	multi, err := keyring.NewMulti(gen, e.kr)
	require.NoError(t, err)

	_, err = newEncryptor(t, multi, 0).Encrypt(ctx, []byte("x"), phiContext)
	require.ErrorIs(t, err, phicrypt.ErrLimit)
	require.ErrorContains(t, err, "made 6 encrypted data keys; the maximum is 5")

	msg, err := newEncryptor(t, multi, 6).Encrypt(ctx, []byte("x"), phiContext)
	require.NoError(t, err)
	_, _, err = newEncryptor(t, e.kr, 0).Decrypt(ctx, msg, phiContext)
	require.ErrorIs(t, err, phicrypt.ErrLimit, "a reader with the default cap refuses the message before any KMS call")
	got, _, err := newEncryptor(t, e.kr, 6).Decrypt(ctx, msg, phiContext)
	require.NoError(t, err)
	require.Equal(t, []byte("x"), got)
}
