package keyring_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

const (
	hpkeEncSize  = 1120 // MLKEM768-X25519's encapsulated key
	hpkeEDKSize  = hpkeEncSize + dataKeyLength + 16
	escrowName   = "escrow-2026-pq"
	escrowHeader = 7 // provider info: version, KEM, KDF and AEAD ids
)

// escrowPair is a fresh escrow key pair: the custodians' private key and a
// service's encrypt-only keyring over its public key, passed through its
// encoding as a service would receive it.
func escrowPair(t *testing.T, name string) (*keyring.HPKEEscrowPrivateKey, *keyring.HPKEEscrow) {
	t.Helper()
	priv, err := keyring.GenerateHPKEEscrowKey()
	require.NoError(t, err)
	pub, err := keyring.ParseHPKEEscrowPublicKey(priv.PublicKey().Bytes())
	require.NoError(t, err)
	svc, err := keyring.NewHPKEEscrow(name, pub)
	require.NoError(t, err)
	return priv, svc
}

func newEscrowRecovery(t *testing.T, name string, priv *keyring.HPKEEscrowPrivateKey) *keyring.HPKEEscrow {
	t.Helper()
	kr, err := keyring.NewHPKEEscrowRecovery(name, priv)
	require.NoError(t, err)
	return kr
}

// escrowEDK wraps a fresh data key with kr under ec and returns the
// materials and the one encrypted data key.
func escrowEDK(t *testing.T, kr keyring.Keyring, ec map[string]string) (*keyring.EncryptionMaterials, keyring.EncryptedDataKey) {
	t.Helper()
	em := encMaterials(ec)
	require.NoError(t, kr.OnEncrypt(context.Background(), em))
	require.Len(t, em.DataKey, dataKeyLength)
	require.Len(t, em.EncryptedDataKeys, 1)
	return em, em.EncryptedDataKeys[0]
}

// requireNoPHI fails if err's text shows the context's values.
func requireNoPHI(t *testing.T, err error) {
	t.Helper()
	for _, v := range phiContext {
		require.NotContains(t, err.Error(), v)
	}
}

// A service encrypts with a KMS generator and the escrow public key; it
// reads its own messages through KMS. After the KMS key is disabled the
// service cannot read them (its escrow keyring holds only the public key),
// and the custodians' keyring, with the private key reassembled from its
// seed, reads every one of them alone.
func TestHPKEEscrowBesideKMSRecoversAfterKMSKeyDisabled(t *testing.T) {
	ctx := context.Background()
	env := testkeys.New(t, testkeys.Options{})
	gen, err := keyring.NewKMS(keyring.KMSConfig{Client: env.Client, Generator: env.ARN})
	require.NoError(t, err)
	priv, escrow := escrowPair(t, escrowName)
	multi, err := keyring.NewMulti(gen, escrow)
	require.NoError(t, err)
	svc, err := phicrypt.New(phicrypt.Config{Keyring: multi})
	require.NoError(t, err)

	plaintexts := [][]byte{[]byte("discharge summary: CANARY-PHI"), {}, bytes.Repeat([]byte("lab result "), 10000)}
	var msgs [][]byte
	for _, pt := range plaintexts {
		msg, err := svc.Encrypt(ctx, pt, phiContext)
		require.NoError(t, err)
		require.True(t, bytes.Contains(msg, []byte(keyring.HPKEEscrowProviderID)), "the header carries the escrow EDK")
		got, ec, err := svc.Decrypt(ctx, msg, phiContext)
		require.NoError(t, err)
		require.Equal(t, pt, append([]byte{}, got...))
		require.Equal(t, phiContext, ec)
		msgs = append(msgs, msg)
	}

	_, err = env.KMS.Client("admin").DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(env.ARN)})
	require.NoError(t, err)
	_, _, err = svc.Decrypt(ctx, msgs[0], phiContext)
	require.ErrorIs(t, err, phicrypt.ErrNoKey)
	require.ErrorIs(t, err, keyring.ErrHPKEEscrowPublicOnly, "the service's escrow keyring says why it cannot help")
	require.Contains(t, err.Error(), "DisabledException")
	requireNoPHI(t, err)

	// Recovery: the custodians reassemble the private key from its seed.
	seed := priv.RevealSeed()
	rebuilt, err := keyring.ParseHPKEEscrowPrivateKey(seed)
	require.NoError(t, err)
	seed.Wipe()
	require.Equal(t, priv.PublicKey().Bytes(), rebuilt.PublicKey().Bytes())
	custodians, err := phicrypt.New(phicrypt.Config{Keyring: newEscrowRecovery(t, escrowName, rebuilt)})
	require.NoError(t, err)
	for i, msg := range msgs {
		got, ec, err := custodians.Decrypt(ctx, msg, phiContext)
		require.NoError(t, err)
		require.Equal(t, plaintexts[i], append([]byte{}, got...))
		require.Equal(t, phiContext, ec)
	}

	// The escrow key alone cannot read a message whose context was
	// changed: the header's authentication and the EDK's binding agree.
	other, err := keyring.GenerateHPKEEscrowKey()
	require.NoError(t, err)
	stranger, err := phicrypt.New(phicrypt.Config{Keyring: newEscrowRecovery(t, escrowName, other)})
	require.NoError(t, err)
	_, _, err = stranger.Decrypt(ctx, msgs[0], phiContext)
	require.ErrorIs(t, err, phicrypt.ErrNoKey, "another escrow key of the same name does not read it")
	require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
}

func TestHPKEEscrowEDKLayout(t *testing.T) {
	_, svc := escrowPair(t, escrowName)
	em, edk := escrowEDK(t, svc, phiContext)
	require.Equal(t, "phicrypt-hpke", edk.ProviderID)
	want := append([]byte{0x01, 0x64, 0x7A, 0x00, 0x01, 0x00, 0x02}, escrowName...)
	require.Equal(t, want, edk.ProviderInfo)
	require.Len(t, edk.Ciphertext, hpkeEDKSize)

	// A second wrap of a data key the materials already hold appends
	// another EDK with a fresh encapsulation.
	require.NoError(t, svc.OnEncrypt(context.Background(), em))
	require.Len(t, em.EncryptedDataKeys, 2)
	require.NotEqual(t, em.EncryptedDataKeys[0].Ciphertext[:hpkeEncSize], em.EncryptedDataKeys[1].Ciphertext[:hpkeEncSize])
}

func TestHPKEEscrowRoundTripAndBindings(t *testing.T) {
	ctx := context.Background()
	priv, svc := escrowPair(t, escrowName)
	rec := newEscrowRecovery(t, escrowName, priv)
	em, edk := escrowEDK(t, svc, phiContext)

	open := func(kr keyring.Keyring, ec map[string]string, edks ...keyring.EncryptedDataKey) (*keyring.DecryptionMaterials, error) {
		dm := decMaterials(ec)
		err := kr.OnDecrypt(ctx, dm, edks)
		if err != nil {
			require.Nil(t, dm.DataKey, "a failed unwrap leaves the materials as they were")
			requireNoPHI(t, err)
		}
		return dm, err
	}

	dm, err := open(rec, phiContext, edk)
	require.NoError(t, err)
	require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))

	flip := func(at int) keyring.EncryptedDataKey {
		c := edk
		c.Ciphertext = bytes.Clone(edk.Ciphertext)
		c.Ciphertext[at] ^= 0x01
		return c
	}
	cases := map[string]keyring.EncryptedDataKey{
		"bit flip in the ML-KEM ciphertext of the encapsulated key": flip(0),
		"bit flip in the X25519 share of the encapsulated key":      flip(hpkeEncSize - 1),
		"bit flip in the wrapped data key":                          flip(hpkeEncSize + 3),
		"bit flip in the tag":                                       flip(hpkeEDKSize - 1),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := open(rec, phiContext, bad)
			require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
			require.Contains(t, err.Error(), "does not open")
		})
	}

	t.Run("another encryption context", func(t *testing.T) {
		for _, ec := range []map[string]string{
			{"tenant": "general-hospital", "patient": "someone else"},
			{"tenant": "general-hospital"},
			nil,
		} {
			_, err := open(rec, ec, edk)
			require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
		}
	})

	t.Run("wrong private key", func(t *testing.T) {
		other, err := keyring.GenerateHPKEEscrowKey()
		require.NoError(t, err)
		_, err = open(newEscrowRecovery(t, escrowName, other), phiContext, edk)
		require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
	})

	t.Run("key name is bound", func(t *testing.T) {
		// The same key under another name: the EDK relabelled to that
		// name does not open, because the name is in HPKE's info.
		relabelled := edk
		relabelled.ProviderInfo = append(bytes.Clone(edk.ProviderInfo[:escrowHeader]), "escrow-other"...)
		_, err := open(newEscrowRecovery(t, "escrow-other", priv), phiContext, relabelled)
		require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
		// Unrelabelled, the other name's keyring does not try it at all.
		_, err = open(newEscrowRecovery(t, "escrow-other", priv), phiContext, edk)
		require.ErrorIs(t, err, keyring.ErrNoMatchingKey)
	})

	t.Run("a later matching key is found", func(t *testing.T) {
		dm, err := open(rec, phiContext, flip(5), keyring.EncryptedDataKey{ProviderID: "aws-kms", ProviderInfo: []byte("arn"), Ciphertext: []byte{1}}, edk)
		require.NoError(t, err)
		require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))
	})

	t.Run("data key already present", func(t *testing.T) {
		dm := decMaterials(phiContext)
		dm.DataKey = keyring.Secret(bytes.Repeat([]byte{1}, dataKeyLength))
		require.ErrorIs(t, rec.OnDecrypt(ctx, dm, []keyring.EncryptedDataKey{edk}), keyring.ErrDataKeyPresent)
	})
}

func TestHPKEEscrowPublicOnlyRefusesDecrypt(t *testing.T) {
	ctx := context.Background()
	_, svc := escrowPair(t, escrowName)
	_, edk := escrowEDK(t, svc, phiContext)
	dm := decMaterials(phiContext)
	err := svc.OnDecrypt(ctx, dm, []keyring.EncryptedDataKey{edk})
	require.ErrorIs(t, err, keyring.ErrHPKEEscrowPublicOnly)
	require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
	require.Contains(t, err.Error(), "HPKEEscrow("+escrowName+", public key only): the HPKE escrow keyring holds only the public key")
	require.Equal(t, 1, strings.Count(err.Error(), "keyring:"), "the package is named once: %s", err)
	require.Nil(t, dm.DataKey)
	// A message with no key for it: the keyring has nothing to say.
	require.ErrorIs(t, svc.OnDecrypt(ctx, decMaterials(phiContext), nil), keyring.ErrNoMatchingKey)
}

// Attacker-made EDKs under the escrow provider id: every size and every
// unknown version or suite is refused with an error that says which, and
// nothing panics.
func TestHPKEEscrowRefusesMalformedEDKs(t *testing.T) {
	ctx := context.Background()
	priv, svc := escrowPair(t, escrowName)
	rec := newEscrowRecovery(t, escrowName, priv)
	_, edk := escrowEDK(t, svc, phiContext)

	for _, n := range []int{0, 1, hpkeEncSize - 1, hpkeEncSize, hpkeEDKSize - 1, hpkeEDKSize + 1, 1 << 16} {
		t.Run(fmt.Sprintf("ciphertext of %d bytes", n), func(t *testing.T) {
			bad := edk
			bad.Ciphertext = make([]byte, n)
			copy(bad.Ciphertext, edk.Ciphertext)
			for _, kr := range []keyring.Keyring{rec, svc} {
				err := kr.OnDecrypt(ctx, decMaterials(phiContext), []keyring.EncryptedDataKey{bad})
				require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
				if kr == keyring.Keyring(rec) {
					require.Contains(t, err.Error(), fmt.Sprintf("the wrapped key is %d bytes; this suite and data key make %d", n, hpkeEDKSize))
				}
			}
		})
	}

	info := func(b ...byte) []byte { return append(b, escrowName...) }
	for name, tc := range map[string]struct {
		info []byte
		want string
	}{
		"empty provider info":        {nil, "provider info is 0 bytes, shorter than its 7-byte header"},
		"short provider info":        {[]byte{0x01, 0x64, 0x7A}, "provider info is 3 bytes"},
		"unknown version":            {info(0x02, 0x64, 0x7A, 0x00, 0x01, 0x00, 0x02), "provider info version 2; this keyring reads version 1"},
		"version zero":               {info(0x00, 0x64, 0x7A, 0x00, 0x01, 0x00, 0x02), "provider info version 0"},
		"another KEM (DHKEM X25519)": {info(0x01, 0x00, 0x20, 0x00, 0x01, 0x00, 0x02), "KEM 0x0020, KDF 0x0001, AEAD 0x0002; this keyring reads only KEM 0x647A (MLKEM768-X25519)"},
		"another KDF (SHAKE256)":     {info(0x01, 0x64, 0x7A, 0x00, 0x11, 0x00, 0x02), "KDF 0x0011"},
		"another AEAD (ChaCha20)":    {info(0x01, 0x64, 0x7A, 0x00, 0x01, 0x00, 0x03), "AEAD 0x0003"},
	} {
		t.Run(name, func(t *testing.T) {
			bad := edk
			bad.ProviderInfo = tc.info
			err := rec.OnDecrypt(ctx, decMaterials(phiContext), []keyring.EncryptedDataKey{bad})
			require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
			require.Contains(t, err.Error(), tc.want)
		})
	}

	t.Run("another key name or provider id is not this keyring's", func(t *testing.T) {
		other := edk
		other.ProviderInfo = info(0x01, 0x64, 0x7A, 0x00, 0x01, 0x00, 0x03)[:escrowHeader+3]
		foreign := edk
		foreign.ProviderID = "phicrypt-hpke2"
		err := rec.OnDecrypt(ctx, decMaterials(phiContext), []keyring.EncryptedDataKey{other, foreign})
		require.ErrorIs(t, err, keyring.ErrNoMatchingKey)
	})
}

func TestHPKEEscrowKeyEncoding(t *testing.T) {
	priv, err := keyring.GenerateHPKEEscrowKey()
	require.NoError(t, err)
	pub := priv.PublicKey().Bytes()
	require.Len(t, pub, keyring.HPKEEscrowPublicKeySize)
	parsed, err := keyring.ParseHPKEEscrowPublicKey(pub)
	require.NoError(t, err)
	require.Equal(t, pub, parsed.Bytes())

	seed := priv.RevealSeed()
	require.Len(t, seed, keyring.HPKEEscrowSeedSize)
	again, err := keyring.ParseHPKEEscrowPrivateKey(seed)
	require.NoError(t, err)
	require.Equal(t, pub, again.PublicKey().Bytes(), "a seed gives back the same key pair")
	seed.Wipe()
	require.Equal(t, pub, again.PublicKey().Bytes(), "wiping the revealed seed leaves the keys whole")
	require.NotEqual(t, make([]byte, keyring.HPKEEscrowSeedSize), []byte(priv.RevealSeed()), "RevealSeed hands out a copy")

	for _, n := range []int{0, 31, 33, 64} {
		_, err := keyring.ParseHPKEEscrowPrivateKey(make([]byte, n))
		require.ErrorContains(t, err, fmt.Sprintf("seed is 32 bytes, not %d", n))
	}
	for _, n := range []int{0, 32, 1184, 1215, 1217} {
		_, err := keyring.ParseHPKEEscrowPublicKey(make([]byte, n))
		require.ErrorContains(t, err, fmt.Sprintf("public key is 1216 bytes, not %d", n))
	}
	// Right length, but not an ML-KEM-768 encapsulation key: its
	// coefficients must be reduced modulo q (FIPS 203's modulus check).
	_, err = keyring.ParseHPKEEscrowPublicKey(bytes.Repeat([]byte{0xff}, keyring.HPKEEscrowPublicKeySize))
	require.ErrorContains(t, err, "does not parse")
}

func TestNewHPKEEscrowRefusesBadConfig(t *testing.T) {
	priv, err := keyring.GenerateHPKEEscrowKey()
	require.NoError(t, err)
	for _, name := range []string{"", "\xff", strings.Repeat("n", keyring.HPKEEscrowMaxNameLength+1)} {
		_, err := keyring.NewHPKEEscrow(name, priv.PublicKey())
		require.ErrorContains(t, err, "key name must be 1 to 255 bytes of UTF-8")
		_, err = keyring.NewHPKEEscrowRecovery(name, priv)
		require.Error(t, err)
	}
	_, err = keyring.NewHPKEEscrow(strings.Repeat("n", keyring.HPKEEscrowMaxNameLength), priv.PublicKey())
	require.NoError(t, err)
	_, err = keyring.NewHPKEEscrow("x", nil)
	require.ErrorContains(t, err, "needs the escrow public key")
	_, err = keyring.NewHPKEEscrow("x", &keyring.HPKEEscrowPublicKey{})
	require.Error(t, err)
	_, err = keyring.NewHPKEEscrowRecovery("x", nil)
	require.ErrorContains(t, err, "needs the escrow private key")
	_, err = keyring.NewHPKEEscrowRecovery("x", &keyring.HPKEEscrowPrivateKey{})
	require.Error(t, err)
}

// The private key and the keyring holding it print no key bytes, whatever
// the verb (the canary test checks json and slog too).
func TestHPKEEscrowPrintsNoKey(t *testing.T) {
	priv, err := keyring.GenerateHPKEEscrowKey()
	require.NoError(t, err)
	seed := priv.RevealSeed()
	rec := newEscrowRecovery(t, escrowName, priv)
	for _, v := range []any{priv, *priv, rec, *rec} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
			out := fmt.Sprintf(verb, v)
			require.NotContains(t, out, string(seed))
			require.NotContains(t, strings.ToLower(out), fmt.Sprintf("%x", []byte(seed[:8])), "%s of %T", verb, v)
		}
	}
	require.Equal(t, "HPKEEscrow(escrow-2026-pq)", fmt.Sprint(rec))
	require.Equal(t, "HPKEEscrowPrivateKey(MLKEM768-X25519, [REDACTED])", fmt.Sprintf("%x", priv))
	_, svc := escrowPair(t, escrowName)
	require.Equal(t, "HPKEEscrow(escrow-2026-pq, public key only)", fmt.Sprintf("%#v", svc))
}
