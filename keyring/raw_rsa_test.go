package keyring_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

// rsaTestKeys are made once per test binary: 2048-bit generation takes a
// noticeable fraction of a second. Two 2048-bit keys (the second is "a
// wrong key") and one 3072-bit key.
var rsaTestKeys = sync.OnceValues(func() ([]*rsa.PrivateKey, error) {
	var keys []*rsa.PrivateKey
	for _, bits := range []int{2048, 2048, 3072} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
})

func rsaKey(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	keys, err := rsaTestKeys()
	require.NoError(t, err)
	return keys[i]
}

var oaepPaddings = []keyring.RSAPadding{keyring.RSAPaddingOAEPSHA1, keyring.RSAPaddingOAEPSHA256,
	keyring.RSAPaddingOAEPSHA384, keyring.RSAPaddingOAEPSHA512}

// oaepHash is the hash each padding is specified with, chosen here
// independently of the keyring's own table.
func oaepHash(p keyring.RSAPadding) hash.Hash {
	return map[keyring.RSAPadding]func() hash.Hash{
		keyring.RSAPaddingOAEPSHA1: sha1.New, keyring.RSAPaddingOAEPSHA256: sha256.New,
		keyring.RSAPaddingOAEPSHA384: sha512.New384, keyring.RSAPaddingOAEPSHA512: sha512.New,
	}[p]()
}

func newRawRSA(t testing.TB, cfg keyring.RawRSAConfig) *keyring.RawRSA {
	t.Helper()
	kr, err := keyring.NewRawRSA(cfg)
	require.NoError(t, err)
	return kr
}

// rsaPair is a keyring that encrypts (the public key only, as a service
// holds it) and one that decrypts (the private key only, as custodians do).
func rsaPair(t testing.TB, key *rsa.PrivateKey, p keyring.RSAPadding) (enc, dec *keyring.RawRSA) {
	t.Helper()
	enc = newRawRSA(t, keyring.RawRSAConfig{Namespace: "phicrypt-escrow", Name: "escrow-1", PublicKey: &key.PublicKey, Padding: p})
	dec = newRawRSA(t, keyring.RawRSAConfig{Namespace: "phicrypt-escrow", Name: "escrow-1", PrivateKey: key, Padding: p})
	return enc, dec
}

// Each OAEP padding round-trips, writes the spec's EDK (namespace, name,
// an RSA ciphertext as long as the modulus) and the ciphertext is plain
// RSA-OAEP with MGF1 over the same hash and an empty label.
func TestRawRSARoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, keyIndex := range []int{0, 2} {
		key := rsaKey(t, keyIndex)
		for _, p := range oaepPaddings {
			t.Run(fmt.Sprintf("%d/%v", key.N.BitLen(), p), func(t *testing.T) {
				enc, dec := rsaPair(t, key, p)
				em := encMaterials(phiContext)
				require.NoError(t, enc.OnEncrypt(ctx, em))
				require.Len(t, em.DataKey, dataKeyLength)
				require.Len(t, em.EncryptedDataKeys, 1)
				edk := em.EncryptedDataKeys[0]
				require.Equal(t, "phicrypt-escrow", edk.ProviderID)
				require.Equal(t, []byte("escrow-1"), edk.ProviderInfo)
				require.Len(t, edk.Ciphertext, key.Size())

				dk, err := rsa.DecryptOAEP(oaepHash(p), nil, key, edk.Ciphertext, nil)
				require.NoError(t, err, "the EDK is RSA-OAEP with %v", p)
				require.Equal(t, []byte(em.DataKey), dk)

				dm := decMaterials(phiContext)
				require.NoError(t, dec.OnDecrypt(ctx, dm, em.EncryptedDataKeys))
				require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))

				// One keyring with both keys does both.
				both := newRawRSA(t, keyring.RawRSAConfig{Namespace: "phicrypt-escrow", Name: "escrow-1",
					PublicKey: &key.PublicKey, PrivateKey: key, Padding: p})
				em2 := encMaterials(nil)
				require.NoError(t, both.OnEncrypt(ctx, em2))
				dm2 := decMaterials(nil)
				require.NoError(t, both.OnDecrypt(ctx, dm2, em2.EncryptedDataKeys))
				require.Equal(t, []byte(em2.DataKey), []byte(dm2.DataKey))
				require.NotEqual(t, edk.Ciphertext, em2.EncryptedDataKeys[0].Ciphertext, "OAEP is randomized")
			})
		}
	}
}

// The padding is part of the key's configuration: a data key wrapped under
// one OAEP hash does not open under another.
func TestRawRSAPaddingMustMatch(t *testing.T) {
	ctx := context.Background()
	key := rsaKey(t, 0)
	for _, wrote := range oaepPaddings {
		enc, _ := rsaPair(t, key, wrote)
		em := encMaterials(nil)
		require.NoError(t, enc.OnEncrypt(ctx, em))
		for _, reads := range oaepPaddings {
			if reads == wrote {
				continue
			}
			_, dec := rsaPair(t, key, reads)
			dm := decMaterials(nil)
			err := dec.OnDecrypt(ctx, dm, em.EncryptedDataKeys)
			require.ErrorIs(t, err, keyring.ErrUnwrapFailed, "%v read as %v", wrote, reads)
			require.Nil(t, dm.DataKey)
		}
	}
}

// An existing data key (from a generator) is wrapped, not replaced.
func TestRawRSAWrapsExistingDataKey(t *testing.T) {
	ctx := context.Background()
	enc, dec := rsaPair(t, rsaKey(t, 0), keyring.RSAPaddingOAEPSHA256)
	dk := bytes.Repeat([]byte{0xd4}, dataKeyLength)
	em := encMaterials(nil)
	em.DataKey = keyring.Secret(bytes.Clone(dk))
	em.EncryptedDataKeys = []keyring.EncryptedDataKey{{ProviderID: "other", ProviderInfo: []byte("x"), Ciphertext: []byte("y")}}
	require.NoError(t, enc.OnEncrypt(ctx, em))
	require.Equal(t, dk, []byte(em.DataKey))
	require.Len(t, em.EncryptedDataKeys, 2)
	dm := decMaterials(nil)
	require.NoError(t, dec.OnDecrypt(ctx, dm, em.EncryptedDataKeys))
	require.Equal(t, dk, []byte(dm.DataKey))
}

// The service's keyring holds only the public key: it encrypts and refuses
// to decrypt, leaving the materials as they were. The custodians' keyring
// holds only the private key: it decrypts and refuses to encrypt (the spec
// forbids deriving the public key from it).
func TestRawRSAKeyHalves(t *testing.T) {
	ctx := context.Background()
	key := rsaKey(t, 0)
	enc, dec := rsaPair(t, key, keyring.RSAPaddingOAEPSHA256)
	em := encMaterials(phiContext)
	require.NoError(t, enc.OnEncrypt(ctx, em))

	dm := decMaterials(phiContext)
	err := enc.OnDecrypt(ctx, dm, em.EncryptedDataKeys)
	require.ErrorIs(t, err, keyring.ErrNoPrivateKey)
	require.Contains(t, err.Error(), "only a public key")
	require.Nil(t, dm.DataKey)
	// With no EDK of its own it has nothing to refuse.
	require.ErrorIs(t, enc.OnDecrypt(ctx, dm, nil), keyring.ErrNoMatchingKey)

	em2 := encMaterials(nil)
	err = dec.OnEncrypt(ctx, em2)
	require.ErrorContains(t, err, "cannot encrypt")
	require.Nil(t, em2.DataKey)
	require.Empty(t, em2.EncryptedDataKeys)
	// Nor with a data key already present.
	em2.DataKey = keyring.Secret(bytes.Repeat([]byte{1}, dataKeyLength))
	require.Error(t, dec.OnEncrypt(ctx, em2))
	require.Empty(t, em2.EncryptedDataKeys)
}

// PKCS #1 v1.5 is read-only: a keyring with it and a public key is refused;
// with the private key it reads data keys wrapped by other ESDKs (here by
// the standard library, as they do).
func TestRawRSAPKCS1v15ReadOnly(t *testing.T) {
	ctx := context.Background()
	key := rsaKey(t, 0)
	_, err := keyring.NewRawRSA(keyring.RawRSAConfig{Namespace: "ns", Name: "k", PublicKey: &key.PublicKey, Padding: keyring.RSAPaddingPKCS1v15})
	require.ErrorContains(t, err, "PKCS #1 v1.5")
	_, err = keyring.NewRawRSA(keyring.RawRSAConfig{Namespace: "ns", Name: "k", PublicKey: &key.PublicKey, PrivateKey: key, Padding: keyring.RSAPaddingPKCS1v15})
	require.ErrorContains(t, err, "PKCS #1 v1.5")

	dec := newRawRSA(t, keyring.RawRSAConfig{Namespace: "ns", Name: "k", PrivateKey: key, Padding: keyring.RSAPaddingPKCS1v15})
	dk := make([]byte, dataKeyLength)
	rand.Read(dk)
	//lint:ignore SA1019 the test plays a peer that wrote PKCS #1 v1.5, which the keyring must read.
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, &key.PublicKey, dk)
	require.NoError(t, err)
	edks := []keyring.EncryptedDataKey{{ProviderID: "ns", ProviderInfo: []byte("k"), Ciphertext: ct}}
	dm := decMaterials(nil)
	require.NoError(t, dec.OnDecrypt(ctx, dm, edks))
	require.Equal(t, dk, []byte(dm.DataKey))

	// A v1.5 keyring does not read OAEP, and the reverse.
	enc, oaep := rsaPair(t, key, keyring.RSAPaddingOAEPSHA1)
	em := encMaterials(nil)
	require.NoError(t, enc.OnEncrypt(ctx, em))
	require.ErrorIs(t, oaep.OnDecrypt(ctx, decMaterials(nil), []keyring.EncryptedDataKey{{ProviderID: "phicrypt-escrow", ProviderInfo: []byte("escrow-1"), Ciphertext: ct}}), keyring.ErrUnwrapFailed)
}

// Bleichenbacher: whatever is wrong with a PKCS #1 v1.5 wrapped key (bad
// padding, a key of the wrong length, a wrong RSA key), the keyring answers
// the same way as for a good one, with a data key; only the message's own
// authentication then fails, as for any wrong key. The one error it returns
// is for what is public: the ciphertext's length.
func TestRawRSAPKCS1v15RevealsNothing(t *testing.T) {
	ctx := context.Background()
	key := rsaKey(t, 0)
	dec := newRawRSA(t, keyring.RawRSAConfig{Namespace: "ns", Name: "k", PrivateKey: key, Padding: keyring.RSAPaddingPKCS1v15})
	dk := make([]byte, dataKeyLength)
	rand.Read(dk)
	//lint:ignore SA1019 the test plays a peer that wrote PKCS #1 v1.5.
	good, err := rsa.EncryptPKCS1v15(rand.Reader, &key.PublicKey, dk)
	require.NoError(t, err)
	//lint:ignore SA1019 as above: a 16-byte key where the suite needs 32.
	short, err := rsa.EncryptPKCS1v15(rand.Reader, &key.PublicKey, dk[:16])
	require.NoError(t, err)
	//lint:ignore SA1019 as above: the right length under another RSA key.
	other, err := rsa.EncryptPKCS1v15(rand.Reader, &rsaKey(t, 1).PublicKey, dk)
	require.NoError(t, err)
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	noPadding := new(big.Int).Exp(new(big.Int).SetBytes(bytes.Repeat([]byte{0x5a}, key.Size()-1)), big.NewInt(int64(key.E)), key.N).FillBytes(make([]byte, key.Size()))

	for name, ct := range map[string][]byte{"flipped bit": flipped, "wrong length inside": short, "no padding": noPadding} {
		t.Run(name, func(t *testing.T) {
			dm := decMaterials(nil)
			require.NoError(t, dec.OnDecrypt(ctx, dm, []keyring.EncryptedDataKey{{ProviderID: "ns", ProviderInfo: []byte("k"), Ciphertext: ct}}))
			require.Len(t, dm.DataKey, dataKeyLength)
			require.NotEqual(t, dk, []byte(dm.DataKey))
		})
	}
	// A suite's key length is public: v1.5 refuses a key short enough to guess.
	short16 := &keyring.DecryptionMaterials{SuiteID: testSuite, DataKeyLength: 15}
	require.ErrorIs(t, dec.OnDecrypt(ctx, short16, []keyring.EncryptedDataKey{{ProviderID: "ns", ProviderInfo: []byte("k"), Ciphertext: good}}), keyring.ErrUnwrapFailed)
	require.Nil(t, short16.DataKey)

	// The modulus is public; the keyring refuses another length outright.
	dm := decMaterials(nil)
	require.ErrorIs(t, dec.OnDecrypt(ctx, dm, []keyring.EncryptedDataKey{{ProviderID: "ns", ProviderInfo: []byte("k"), Ciphertext: other[:len(other)-1]}}), keyring.ErrUnwrapFailed)
	require.Nil(t, dm.DataKey)
}

// A wrong key of the same namespace and name, a tampered wrapped key, and
// a wrapped key of another length are refused; foreign EDKs are skipped
// and a good EDK after a bad one still wins.
func TestRawRSARefusesWrongAndTampered(t *testing.T) {
	ctx := context.Background()
	enc, dec := rsaPair(t, rsaKey(t, 0), keyring.RSAPaddingOAEPSHA256)
	_, wrong := rsaPair(t, rsaKey(t, 1), keyring.RSAPaddingOAEPSHA256)
	em := encMaterials(nil)
	require.NoError(t, enc.OnEncrypt(ctx, em))
	good := em.EncryptedDataKeys[0]

	dm := decMaterials(nil)
	err := wrong.OnDecrypt(ctx, dm, em.EncryptedDataKeys)
	require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
	require.Nil(t, dm.DataKey)

	with := func(ct []byte) keyring.EncryptedDataKey {
		return keyring.EncryptedDataKey{ProviderID: good.ProviderID, ProviderInfo: good.ProviderInfo, Ciphertext: ct}
	}
	flipped := bytes.Clone(good.Ciphertext)
	flipped[7] ^= 1
	for name, edk := range map[string]keyring.EncryptedDataKey{
		"flipped bit": with(flipped),
		"truncated":   with(good.Ciphertext[:len(good.Ciphertext)-1]),
		"extended":    with(append(bytes.Clone(good.Ciphertext), 0)),
		"empty":       with(nil),
		"huge":        with(make([]byte, 1<<20)),
	} {
		t.Run(name, func(t *testing.T) {
			dm := decMaterials(nil)
			err := dec.OnDecrypt(ctx, dm, []keyring.EncryptedDataKey{edk})
			require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
			require.NotErrorIs(t, err, keyring.ErrNoMatchingKey)
			require.Nil(t, dm.DataKey)
		})
	}

	for name, edk := range map[string]keyring.EncryptedDataKey{
		"other namespace": {ProviderID: "phicrypt-escrow2", ProviderInfo: good.ProviderInfo, Ciphertext: good.Ciphertext},
		"other name":      {ProviderID: good.ProviderID, ProviderInfo: []byte("escrow-2"), Ciphertext: good.Ciphertext},
		"name prefix":     {ProviderID: good.ProviderID, ProviderInfo: []byte("escrow-"), Ciphertext: good.Ciphertext},
	} {
		t.Run(name, func(t *testing.T) {
			require.ErrorIs(t, dec.OnDecrypt(ctx, decMaterials(nil), []keyring.EncryptedDataKey{edk}), keyring.ErrNoMatchingKey)
		})
	}

	dm = decMaterials(nil)
	require.NoError(t, dec.OnDecrypt(ctx, dm, []keyring.EncryptedDataKey{{ProviderID: "x", Ciphertext: []byte{1}}, with(flipped), good}))
	require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))

	// A suite wanting another key length does not accept this one.
	other := &keyring.DecryptionMaterials{SuiteID: testSuite, DataKeyLength: 16}
	require.ErrorIs(t, dec.OnDecrypt(ctx, other, em.EncryptedDataKeys), keyring.ErrUnwrapFailed)
	require.Nil(t, other.DataKey)

	// A data key already present is a chain error.
	present := decMaterials(nil)
	present.DataKey = keyring.Secret(bytes.Repeat([]byte{9}, dataKeyLength))
	require.ErrorIs(t, dec.OnDecrypt(ctx, present, em.EncryptedDataKeys), keyring.ErrDataKeyPresent)
}

// As the spec says, the raw RSA keyring does not bind the encryption
// context: its EDK unwraps under any context. The message header does
// (see TestRawRSAEscrowRecoversWithoutKMS).
func TestRawRSADoesNotBindContext(t *testing.T) {
	ctx := context.Background()
	enc, dec := rsaPair(t, rsaKey(t, 0), keyring.RSAPaddingOAEPSHA256)
	em := encMaterials(phiContext)
	require.NoError(t, enc.OnEncrypt(ctx, em))
	dm := decMaterials(map[string]string{"tenant": "another"})
	require.NoError(t, dec.OnDecrypt(ctx, dm, em.EncryptedDataKeys))
	require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))
}

func TestRawRSARefusesBadConfig(t *testing.T) {
	key := rsaKey(t, 0)
	pub := &key.PublicKey
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	//lint:ignore SA1019 a multi-prime key, to prove the keyring refuses one.
	multiPrime, err := rsa.GenerateMultiPrimeKey(rand.Reader, 3, 2048)
	require.NoError(t, err)
	odd := func(bits int) *big.Int { // an odd number of exactly bits bits
		n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
		return n.Add(n, big.NewInt(1))
	}
	const oaep = keyring.RSAPaddingOAEPSHA256
	for _, tc := range []struct {
		name string
		cfg  keyring.RawRSAConfig
		want string
	}{
		{"1024-bit key", keyring.RawRSAConfig{Namespace: "ns", Name: "k", PublicKey: &small.PublicKey, Padding: oaep}, "not 1024"},
		{"1024-bit private key", keyring.RawRSAConfig{Namespace: "ns", Name: "k", PrivateKey: small, Padding: oaep}, "not 1024"},
		{"2047-bit key", keyring.RawRSAConfig{Namespace: "ns", Name: "k", PublicKey: &rsa.PublicKey{N: odd(2047), E: 65537}, Padding: oaep}, "not 2047"},
		{"16385-bit key", keyring.RawRSAConfig{Namespace: "ns", Name: "k", PublicKey: &rsa.PublicKey{N: odd(16385), E: 65537}, Padding: oaep}, "not 16385"},
		{"no modulus", keyring.RawRSAConfig{Namespace: "ns", Name: "k", PublicKey: &rsa.PublicKey{E: 65537}, Padding: oaep}, "no modulus"},
		{"even exponent", keyring.RawRSAConfig{Namespace: "ns", Name: "k", PublicKey: &rsa.PublicKey{N: key.N, E: 65536}, Padding: oaep}, "exponent"},
		{"exponent 1", keyring.RawRSAConfig{Namespace: "ns", Name: "k", PublicKey: &rsa.PublicKey{N: key.N, E: 1}, Padding: oaep}, "exponent"},
		{"multi-prime", keyring.RawRSAConfig{Namespace: "ns", Name: "k", PrivateKey: multiPrime, Padding: oaep}, "two primes"},
		{"mismatched keys", keyring.RawRSAConfig{Namespace: "ns", Name: "k", PublicKey: &rsaKey(t, 1).PublicKey, PrivateKey: key, Padding: oaep}, "not the private key's"},
		{"no key", keyring.RawRSAConfig{Namespace: "ns", Name: "k", Padding: oaep}, "needs a public key"},
		{"no padding", keyring.RawRSAConfig{Namespace: "ns", Name: "k", PublicKey: pub}, "unknown raw RSA padding"},
		{"unknown padding", keyring.RawRSAConfig{Namespace: "ns", Name: "k", PublicKey: pub, Padding: keyring.RSAPaddingOAEPSHA512 + 1}, "unknown raw RSA padding"},
		{"reserved namespace", keyring.RawRSAConfig{Namespace: "aws-kms", Name: "k", PublicKey: pub, Padding: oaep}, "reserved"},
		{"reserved namespace prefix", keyring.RawRSAConfig{Namespace: "aws-kms-escrow", Name: "k", PublicKey: pub, Padding: oaep}, "reserved"},
		{"empty namespace", keyring.RawRSAConfig{Name: "k", PublicKey: pub, Padding: oaep}, "non-empty"},
		{"empty name", keyring.RawRSAConfig{Namespace: "ns", PublicKey: pub, Padding: oaep}, "non-empty"},
		{"invalid UTF-8", keyring.RawRSAConfig{Namespace: "ns\xff", Name: "k", PublicKey: pub, Padding: oaep}, "UTF-8"},
		{"name too long", keyring.RawRSAConfig{Namespace: "ns", Name: strings.Repeat("n", 0x10000), PublicKey: pub, Padding: oaep}, "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kr, err := keyring.NewRawRSA(tc.cfg)
			require.Error(t, err)
			require.Nil(t, kr)
			require.Contains(t, err.Error(), tc.want)
		})
	}
	// Near the reserved name but not it; the largest name.
	newRawRSA(t, keyring.RawRSAConfig{Namespace: "AWS-KMS", Name: "k", PublicKey: pub, Padding: oaep})
	newRawRSA(t, keyring.RawRSAConfig{Namespace: "my-aws-kms", Name: strings.Repeat("n", 0xffff), PublicKey: pub, Padding: oaep})
}

// The escrow story end to end: a service encrypts through a multi-keyring,
// KMS generating and the RSA public key wrapping a second copy. When the
// KMS key is disabled, or deleted after its waiting period, the service's
// keyring reads nothing, and the custodians' RSA private key alone reads
// every message.
func TestRawRSAEscrowRecoversWithoutKMS(t *testing.T) {
	for _, lose := range []string{"disabled", "deleted"} {
		t.Run(lose, func(t *testing.T) {
			ctx := context.Background()
			env := testkeys.New(t, testkeys.Options{ClientOptions: []func(*kms.Options){func(o *kms.Options) { o.RetryMaxAttempts = 1 }}})
			gen := newKMS(t, keyring.KMSConfig{Client: env.Client, Generator: env.ARN})
			escrowPub, escrowPriv := rsaPair(t, rsaKey(t, 0), keyring.RSAPaddingOAEPSHA256)
			service, err := keyring.NewMulti(gen, escrowPub)
			require.NoError(t, err)
			enc, err := phicrypt.New(phicrypt.Config{Keyring: service})
			require.NoError(t, err)
			recovery, err := phicrypt.New(phicrypt.Config{Keyring: escrowPriv})
			require.NoError(t, err)

			msgs := make([][]byte, 3)
			for i := range msgs {
				msgs[i], err = enc.Encrypt(ctx, []byte(fmt.Sprintf("record %d of %s", i, phiContext["patient"])), phiContext)
				require.NoError(t, err)
			}
			got, _, err := enc.Decrypt(ctx, msgs[0], phiContext)
			require.NoError(t, err, "while KMS works the service reads its own messages")
			require.Equal(t, "record 0 of "+phiContext["patient"], string(got))

			switch lose {
			case "disabled":
				_, err = env.Client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(env.ARN)})
			case "deleted":
				_, err = env.Client.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(env.ARN), PendingWindowInDays: aws.Int32(7)})
				require.NoError(t, err)
				env.KMS.Advance(8 * 24 * time.Hour)
				_, err = env.Client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(env.ARN)})
				require.Error(t, err, "the key is gone")
				err = nil
			}
			require.NoError(t, err)

			for i, msg := range msgs {
				_, _, err := enc.Decrypt(ctx, msg, phiContext)
				require.ErrorIs(t, err, phicrypt.ErrNoKey, "the service's keyring cannot read message %d any more", i)
				got, ec, err := recovery.Decrypt(ctx, msg, phiContext)
				require.NoError(t, err, "the escrow key reads message %d", i)
				require.Equal(t, fmt.Sprintf("record %d of %s", i, phiContext["patient"]), string(got))
				require.Equal(t, phiContext, ec)
			}

			// Another RSA key under the same names reads nothing.
			_, wrong := rsaPair(t, rsaKey(t, 1), keyring.RSAPaddingOAEPSHA256)
			other, err := phicrypt.New(phicrypt.Config{Keyring: wrong})
			require.NoError(t, err)
			_, _, err = other.Decrypt(ctx, msgs[0], phiContext)
			require.ErrorIs(t, err, phicrypt.ErrNoKey)

			// The RSA EDK does not bind the context, but the header does:
			// the escrow key does not read a message under another one.
			_, _, err = recovery.Decrypt(ctx, msgs[0], map[string]string{"tenant": "another-hospital"})
			require.Error(t, err)
		})
	}
}

// A PKCS #1 v1.5 wrapped key that does not open (tampered, or another
// key's) yields a data key the message's authentication refuses: the same
// error as a wrong key, whichever check failed.
func TestRawRSAPKCS1v15TamperFailsAsAuthentication(t *testing.T) {
	ctx := context.Background()
	key := rsaKey(t, 0)
	// The message is written with OAEP under the key and its EDK replaced by
	// a PKCS #1 v1.5 wrapping of the same data key, as a v1.5 writer would.
	writer := newRawRSA(t, keyring.RawRSAConfig{Namespace: "ns", Name: "k", PublicKey: &key.PublicKey, PrivateKey: key, Padding: keyring.RSAPaddingOAEPSHA1})
	// The wrapping is chosen below the wrong key's modulus too, so that
	// key's check is the padding's, not the public range check.
	capture := &v15Rewrapper{inner: writer, pub: &key.PublicKey, below: rsaKey(t, 1).N}
	enc, err := phicrypt.New(phicrypt.Config{Keyring: capture})
	require.NoError(t, err)
	msg, err := enc.Encrypt(ctx, []byte("a v1.5 record"), nil)
	require.NoError(t, err)

	reader := newRawRSA(t, keyring.RawRSAConfig{Namespace: "ns", Name: "k", PrivateKey: key, Padding: keyring.RSAPaddingPKCS1v15})
	dec, err := phicrypt.New(phicrypt.Config{Keyring: reader})
	require.NoError(t, err)
	got, _, err := dec.Decrypt(ctx, msg, nil)
	require.NoError(t, err)
	require.Equal(t, "a v1.5 record", string(got))

	// Flip a bit of the RSA ciphertext in the message (it is the last
	// key.Size() bytes of the one EDK, found by its value).
	i := bytes.Index(msg, capture.last)
	require.Positive(t, i)
	tampered := bytes.Clone(msg)
	tampered[i+17] ^= 0x01
	_, _, errTampered := dec.Decrypt(ctx, tampered, nil)
	require.ErrorIs(t, errTampered, phicrypt.ErrAuthentication)

	wrongReader := newRawRSA(t, keyring.RawRSAConfig{Namespace: "ns", Name: "k", PrivateKey: rsaKey(t, 1), Padding: keyring.RSAPaddingPKCS1v15})
	wrongDec, err := phicrypt.New(phicrypt.Config{Keyring: wrongReader})
	require.NoError(t, err)
	_, _, errWrong := wrongDec.Decrypt(ctx, msg, nil)
	require.ErrorIs(t, errWrong, phicrypt.ErrAuthentication)
	require.Equal(t, errWrong.Error(), errTampered.Error(), "a bad padding and a wrong key read the same")
}

// v15Rewrapper lets inner make the data key, then replaces its EDK's
// ciphertext by a PKCS #1 v1.5 wrapping of the same key whose value is
// below the modulus below.
type v15Rewrapper struct {
	inner keyring.Keyring
	pub   *rsa.PublicKey
	below *big.Int
	last  []byte
}

func (w *v15Rewrapper) OnEncrypt(ctx context.Context, m *keyring.EncryptionMaterials) error {
	if err := w.inner.OnEncrypt(ctx, m); err != nil {
		return err
	}
	var ct []byte
	for range 100 { // each try is below with probability about below/N
		var err error
		//lint:ignore SA1019 the test plays a peer that writes PKCS #1 v1.5.
		ct, err = rsa.EncryptPKCS1v15(rand.Reader, w.pub, m.DataKey)
		if err != nil {
			return err
		}
		if new(big.Int).SetBytes(ct).Cmp(w.below) < 0 {
			break
		}
	}
	m.EncryptedDataKeys[len(m.EncryptedDataKeys)-1].Ciphertext = ct
	w.last = ct
	return nil
}

func (w *v15Rewrapper) OnDecrypt(ctx context.Context, m *keyring.DecryptionMaterials, edks []keyring.EncryptedDataKey) error {
	return errors.New("encrypt only")
}

// Neither the keyring nor its configuration prints the private key, under
// any verb, in JSON or in slog; errors do not either.
func TestRawRSANeverShowsItsKey(t *testing.T) {
	ctx := context.Background()
	key := rsaKey(t, 0)
	cfg := keyring.RawRSAConfig{Namespace: "ns", Name: "k", PublicKey: &key.PublicKey, PrivateKey: key, Padding: keyring.RSAPaddingOAEPSHA256}
	kr := newRawRSA(t, cfg)
	var out []string
	for _, v := range []any{kr, *kr, cfg, &cfg, struct{ C keyring.RawRSAConfig }{cfg}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%x", "%X", "%s", "%d"} {
			out = append(out, fmt.Sprintf(verb, v))
		}
		b, err := json.Marshal(v)
		require.NoError(t, err)
		out = append(out, string(b))
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("kr", "v", v)
		slog.New(slog.NewTextHandler(&buf, nil)).Info("kr", "v", v)
		out = append(out, buf.String())
	}
	em := encMaterials(phiContext)
	require.NoError(t, kr.OnEncrypt(ctx, em))
	flipped := bytes.Clone(em.EncryptedDataKeys[0].Ciphertext)
	flipped[3] ^= 1
	err := kr.OnDecrypt(ctx, decMaterials(phiContext), []keyring.EncryptedDataKey{{ProviderID: "ns", ProviderInfo: []byte("k"), Ciphertext: flipped}})
	require.Error(t, err)
	out = append(out, err.Error(), fmt.Sprintf("%+v", err))

	all := strings.Join(out, "\n")
	for _, secret := range []*big.Int{key.D, key.Primes[0], key.Primes[1], key.Precomputed.Dp, key.Precomputed.Qinv} {
		for _, form := range []string{secret.String(), secret.Text(16), strings.ToUpper(secret.Text(16))} {
			require.NotContains(t, all, form[:40])
		}
		require.NotContains(t, all, string(secret.Bytes()[:20]))
	}
	requireNoCanary(t, all, em.DataKey)
	require.Contains(t, all, "RawRSA(ns/k, OAEP-SHA256-MGF1)")
	require.Contains(t, all, "private key [REDACTED]")
}

func TestRSAPaddingString(t *testing.T) {
	for p, want := range map[keyring.RSAPadding]string{
		keyring.RSAPaddingPKCS1v15: "PKCS1v15", keyring.RSAPaddingOAEPSHA1: "OAEP-SHA1-MGF1",
		keyring.RSAPaddingOAEPSHA256: "OAEP-SHA256-MGF1", keyring.RSAPaddingOAEPSHA384: "OAEP-SHA384-MGF1",
		keyring.RSAPaddingOAEPSHA512: "OAEP-SHA512-MGF1", 0: "RSAPadding(0)", 9: "RSAPadding(9)",
	} {
		require.Equal(t, want, p.String())
	}
}

// One keyring serves concurrent messages (run with -race).
func TestRawRSAConcurrentUse(t *testing.T) {
	ctx := context.Background()
	key := rsaKey(t, 0)
	kr := newRawRSA(t, keyring.RawRSAConfig{Namespace: "ns", Name: "k", PublicKey: &key.PublicKey, PrivateKey: key, Padding: keyring.RSAPaddingOAEPSHA512})
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			em := encMaterials(phiContext)
			if err := kr.OnEncrypt(ctx, em); err != nil {
				errs <- err
				return
			}
			dm := decMaterials(phiContext)
			if err := kr.OnDecrypt(ctx, dm, em.EncryptedDataKeys); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(em.DataKey, dm.DataKey) {
				errs <- errors.New("data keys differ")
				return
			}
			errs <- nil
		}()
	}
	for range 8 {
		require.NoError(t, <-errs)
	}
}
