package keyring_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/stretchr/testify/require"
)

// dataKeyLength is what the committing suites need (the KDF input length).
const (
	dataKeyLength = 32
	testSuite     = 0x0478
)

// canaryKey is a wrapping key whose hex and raw forms are easy to search
// for in any output.
var canaryKey = []byte("CANARY-wrapping-key-0123456789AB")

// phiContext holds values that must never appear in an error.
var phiContext = map[string]string{"tenant": "general-hospital", "patient": "CANARY-PHI-Jane-Doe-1970-01-01"}

func newRawAES(t *testing.T, namespace, name string, key []byte) *keyring.RawAES {
	t.Helper()
	kr, err := keyring.NewRawAES(namespace, name, key)
	require.NoError(t, err)
	return kr
}

func encMaterials(ec map[string]string) *keyring.EncryptionMaterials {
	return &keyring.EncryptionMaterials{SuiteID: testSuite, DataKeyLength: dataKeyLength, EncryptionContext: ec}
}

func decMaterials(ec map[string]string) *keyring.DecryptionMaterials {
	return &keyring.DecryptionMaterials{SuiteID: testSuite, DataKeyLength: dataKeyLength, EncryptionContext: ec}
}

// serializeContext is the ESDK's encryption-context serialization
// (framework/structures.md), written independently of internal/wire:
// count || sorted (len key || key || len value || value), empty for an
// empty context.
func serializeContext(ec map[string]string) []byte {
	if len(ec) == 0 {
		return nil
	}
	keys := make([]string, 0, len(ec))
	for k := range ec {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := binary.BigEndian.AppendUint16(nil, uint16(len(keys)))
	for _, k := range keys {
		out = binary.BigEndian.AppendUint16(out, uint16(len(k)))
		out = append(out, k...)
		out = binary.BigEndian.AppendUint16(out, uint16(len(ec[k])))
		out = append(out, ec[k]...)
	}
	return out
}

func TestRawAESRefusesBadConfig(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	for _, tc := range []struct {
		name, namespace, keyName string
		key                      []byte
		want                     string
	}{
		{"empty key", "ns", "k", nil, "16, 24 or 32 bytes"},
		{"15-byte key", "ns", "k", key[:15], "not 15"},
		{"17-byte key", "ns", "k", key[:17], "not 17"},
		{"31-byte key", "ns", "k", key[:31], "not 31"},
		{"33-byte key", "ns", "k", append(bytes.Clone(key), 0), "not 33"},
		{"64-byte key", "ns", "k", bytes.Repeat(key, 2), "not 64"},
		{"reserved namespace", "aws-kms", "k", key, "reserved"},
		{"reserved namespace prefix", "aws-kms-escrow", "k", key, "reserved"},
		{"empty namespace", "", "k", key, "non-empty"},
		{"empty name", "ns", "", key, "non-empty"},
		{"invalid UTF-8 namespace", "ns\xff", "k", key, "UTF-8"},
		{"invalid UTF-8 name", "ns", "k\xfe", key, "UTF-8"},
		{"name too long", "ns", strings.Repeat("n", 0xffff), key, "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kr, err := keyring.NewRawAES(tc.namespace, tc.keyName, tc.key)
			require.Error(t, err)
			require.Nil(t, kr)
			require.Contains(t, err.Error(), tc.want)
		})
	}
	for _, n := range []int{16, 24, 32} {
		_, err := keyring.NewRawAES("ns", "k", key[:n])
		require.NoError(t, err, "a %d-byte key is valid", n)
	}
	// Near the reserved name but not it.
	_, err := keyring.NewRawAES("AWS-KMS", "k", key)
	require.NoError(t, err)
	_, err = keyring.NewRawAES("my-aws-kms", "k", key)
	require.NoError(t, err)
}

func TestRawAESRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{16, 24, 32} {
		for _, ec := range []map[string]string{nil, {}, phiContext, {"ключ": "значение", "🩺": ""}} {
			t.Run(fmt.Sprintf("key%d/ctx%d", n, len(ec)), func(t *testing.T) {
				key := bytes.Repeat([]byte{byte(n)}, n)
				kr := newRawAES(t, "phicrypt-test", "key-1", key)
				em := encMaterials(ec)
				require.NoError(t, kr.OnEncrypt(ctx, em))
				require.Len(t, em.DataKey, dataKeyLength)
				require.Len(t, em.EncryptedDataKeys, 1)
				edk := em.EncryptedDataKeys[0]
				require.Equal(t, "phicrypt-test", edk.ProviderID)
				require.Len(t, edk.Ciphertext, dataKeyLength+16, "wrapped key || 16-byte tag")

				// A second keyring object over the same key reads it.
				dm := decMaterials(ec)
				require.NoError(t, newRawAES(t, "phicrypt-test", "key-1", key).OnDecrypt(ctx, dm, em.EncryptedDataKeys))
				require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))
			})
		}
	}
}

// A data key already in the materials (made by another keyring) is wrapped,
// not replaced.
func TestRawAESWrapsExistingDataKey(t *testing.T) {
	ctx := context.Background()
	kr := newRawAES(t, "ns", "k", canaryKey)
	dk := bytes.Repeat([]byte{0xd4}, dataKeyLength)
	em := encMaterials(nil)
	em.DataKey = keyring.Secret(bytes.Clone(dk))
	em.EncryptedDataKeys = []keyring.EncryptedDataKey{{ProviderID: "other", ProviderInfo: []byte("x"), Ciphertext: []byte("y")}}
	require.NoError(t, kr.OnEncrypt(ctx, em))
	require.Equal(t, dk, []byte(em.DataKey))
	require.Len(t, em.EncryptedDataKeys, 2)
	require.Equal(t, "other", em.EncryptedDataKeys[0].ProviderID)

	dm := decMaterials(nil)
	require.NoError(t, kr.OnDecrypt(ctx, dm, em.EncryptedDataKeys))
	require.Equal(t, dk, []byte(dm.DataKey))
}

// The provider info is exactly key name || uint32 128 (tag bits) ||
// uint32 12 (IV bytes) || IV, and the ciphertext is AES-GCM under the
// wrapping key with that IV and the serialized context as AAD
// (framework/raw-aes-keyring.md).
func TestRawAESProviderInfoLayout(t *testing.T) {
	ctx := context.Background()
	const name = "wrapping-key-ü"
	kr := newRawAES(t, "phicrypt-test", name, canaryKey)
	em := encMaterials(phiContext)
	require.NoError(t, kr.OnEncrypt(ctx, em))
	info := em.EncryptedDataKeys[0].ProviderInfo

	require.Len(t, info, len(name)+20)
	require.Equal(t, []byte(name), info[:len(name)])
	require.Equal(t, []byte{0x00, 0x00, 0x00, 0x80}, info[len(name):len(name)+4], "tag length in bits")
	require.Equal(t, []byte{0x00, 0x00, 0x00, 0x0c}, info[len(name)+4:len(name)+8], "IV length in bytes")
	iv := info[len(name)+8:]
	require.Len(t, iv, 12)

	block, err := aes.NewCipher(canaryKey)
	require.NoError(t, err)
	gcm, err := cipher.NewGCM(block)
	require.NoError(t, err)
	dk, err := gcm.Open(nil, iv, em.EncryptedDataKeys[0].Ciphertext, serializeContext(phiContext))
	require.NoError(t, err, "the EDK opens with the IV from the provider info and the serialized context as AAD")
	require.Equal(t, []byte(em.DataKey), dk)

	// A fresh IV per wrap.
	em2 := encMaterials(phiContext)
	require.NoError(t, kr.OnEncrypt(ctx, em2))
	require.NotEqual(t, iv, em2.EncryptedDataKeys[0].ProviderInfo[len(name)+8:])
	require.NotEqual(t, []byte(em.DataKey), []byte(em2.DataKey))
}

func TestRawAESContextIsBound(t *testing.T) {
	ctx := context.Background()
	kr := newRawAES(t, "ns", "k", canaryKey)
	em := encMaterials(phiContext)
	require.NoError(t, kr.OnEncrypt(ctx, em))

	wrong := map[string]string{"tenant": "general-hospital", "patient": "someone-else"}
	for _, tc := range []struct {
		name string
		ec   map[string]string
	}{
		{"other value", wrong},
		{"missing pair", map[string]string{"tenant": "general-hospital"}},
		{"extra pair", map[string]string{"tenant": "general-hospital", "patient": phiContext["patient"], "x": "y"}},
		{"empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dm := decMaterials(tc.ec)
			err := kr.OnDecrypt(ctx, dm, em.EncryptedDataKeys)
			require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
			require.NotErrorIs(t, err, keyring.ErrNoMatchingKey)
			require.Nil(t, dm.DataKey, "materials unchanged on failure")
			requireNoCanary(t, err.Error())
		})
	}
	// A wrong wrapping key of the same namespace and name fails the same way.
	other := newRawAES(t, "ns", "k", bytes.Repeat([]byte{1}, 32))
	dm := decMaterials(phiContext)
	require.ErrorIs(t, other.OnDecrypt(ctx, dm, em.EncryptedDataKeys), keyring.ErrUnwrapFailed)
	require.Nil(t, dm.DataKey)
}

func TestRawAESSkipsOtherKeys(t *testing.T) {
	ctx := context.Background()
	kr := newRawAES(t, "ns", "k", canaryKey)
	em := encMaterials(nil)
	require.NoError(t, kr.OnEncrypt(ctx, em))
	good := em.EncryptedDataKeys[0]

	withInfo := func(info []byte) keyring.EncryptedDataKey {
		return keyring.EncryptedDataKey{ProviderID: good.ProviderID, ProviderInfo: info, Ciphertext: good.Ciphertext}
	}
	info := good.ProviderInfo
	badTag := bytes.Clone(info)
	badTag[len("k")+3] = 0x60 // 96-bit tag
	badIVLen := bytes.Clone(info)
	badIVLen[len("k")+7] = 0x10
	for _, tc := range []struct {
		name string
		edks []keyring.EncryptedDataKey
	}{
		{"no EDKs", nil},
		{"other namespace", []keyring.EncryptedDataKey{{ProviderID: "ns2", ProviderInfo: info, Ciphertext: good.Ciphertext}}},
		{"aws-kms", []keyring.EncryptedDataKey{{ProviderID: "aws-kms", ProviderInfo: []byte("arn:aws:kms:us-east-1:111122223333:key/x"), Ciphertext: []byte{1}}}},
		{"other name", []keyring.EncryptedDataKey{withInfo(append([]byte("j"), info[1:]...))}},
		{"name is a prefix", []keyring.EncryptedDataKey{withInfo(append([]byte("kk"), info[1:]...))}},
		{"truncated info", []keyring.EncryptedDataKey{withInfo(info[:len(info)-1])}},
		{"other tag length", []keyring.EncryptedDataKey{withInfo(badTag)}},
		{"other IV length", []keyring.EncryptedDataKey{withInfo(badIVLen)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dm := decMaterials(nil)
			err := kr.OnDecrypt(ctx, dm, tc.edks)
			require.ErrorIs(t, err, keyring.ErrNoMatchingKey)
			require.NotErrorIs(t, err, keyring.ErrUnwrapFailed)
			require.Nil(t, dm.DataKey)
		})
	}

	// Foreign EDKs before ours are skipped; a bad one of ours is tried and
	// the next one still wins.
	tampered := good
	tampered.Ciphertext = bytes.Clone(good.Ciphertext)
	tampered.Ciphertext[0] ^= 1
	edks := []keyring.EncryptedDataKey{
		{ProviderID: "ns2", ProviderInfo: info, Ciphertext: good.Ciphertext},
		tampered,
		good,
	}
	dm := decMaterials(nil)
	require.NoError(t, kr.OnDecrypt(ctx, dm, edks))
	require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))
}

func TestRawAESLeavesMaterialsOnFailure(t *testing.T) {
	ctx := context.Background()
	kr := newRawAES(t, "ns", "k", canaryKey)

	// Encrypt: a data key of the wrong length, and a context that cannot be
	// serialized.
	short := encMaterials(nil)
	short.DataKey = keyring.Secret{1, 2, 3}
	require.Error(t, kr.OnEncrypt(ctx, short))
	require.Equal(t, keyring.Secret{1, 2, 3}, short.DataKey)
	require.Empty(t, short.EncryptedDataKeys)

	badCtx := encMaterials(map[string]string{"": "empty keys are not allowed"})
	require.Error(t, kr.OnEncrypt(ctx, badCtx))
	require.Nil(t, badCtx.DataKey)
	require.Empty(t, badCtx.EncryptedDataKeys)

	// Decrypt: a data key already present is a chain error.
	em := encMaterials(nil)
	require.NoError(t, kr.OnEncrypt(ctx, em))
	present := decMaterials(nil)
	present.DataKey = keyring.Secret(bytes.Repeat([]byte{9}, dataKeyLength))
	require.ErrorIs(t, kr.OnDecrypt(ctx, present, em.EncryptedDataKeys), keyring.ErrDataKeyPresent)
	require.Equal(t, bytes.Repeat([]byte{9}, dataKeyLength), []byte(present.DataKey))

	// Decrypt: a suite wanting another key length does not accept this one.
	other := &keyring.DecryptionMaterials{SuiteID: testSuite, DataKeyLength: 16}
	require.ErrorIs(t, kr.OnDecrypt(ctx, other, em.EncryptedDataKeys), keyring.ErrUnwrapFailed)
	require.Nil(t, other.DataKey)
}

// requireNoCanary fails if s shows the wrapping key, a data key or a PHI
// context value in any common encoding.
func requireNoCanary(t *testing.T, s string, secrets ...[]byte) {
	t.Helper()
	for _, secret := range append(secrets, canaryKey) {
		for _, form := range []string{string(secret), fmt.Sprintf("%x", secret), fmt.Sprintf("%X", secret), fmt.Sprint([]byte(secret)), fmt.Sprintf("%#v", []byte(secret))} {
			require.NotContains(t, s, form)
		}
	}
	require.NotContains(t, s, "CANARY")
	require.NotContains(t, s, phiContext["patient"])
}

// Secret never shows its bytes: not through fmt verbs, JSON, or slog's text
// and JSON handlers, alone or inside the materials.
func TestSecretRedaction(t *testing.T) {
	secret := keyring.Secret("CANARY-data-key-0123456789abcdef")
	em := encMaterials(nil)
	em.DataKey = secret
	dm := decMaterials(nil)
	dm.DataKey = secret
	values := map[string]any{"secret": secret, "pointer": &secret, "enc": em, "dec": *dm, "slice": []keyring.Secret{secret}}

	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			var out []string
			for _, verb := range []string{"%v", "%+v", "%#v", "%x", "%X", "%s", "%q", "%d"} {
				out = append(out, fmt.Sprintf(verb, v))
			}
			out = append(out, fmt.Sprint(v), fmt.Sprintln(v))
			b, err := json.Marshal(v)
			require.NoError(t, err)
			out = append(out, string(b))
			for _, h := range []func(*bytes.Buffer) slog.Handler{
				func(w *bytes.Buffer) slog.Handler { return slog.NewTextHandler(w, nil) },
				func(w *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(w, nil) },
			} {
				var buf bytes.Buffer
				log := slog.New(h(&buf))
				log.Info("materials", "v", v)
				log.Info("group", slog.Group("g", slog.Any("v", v)))
				log.With("v", v).Info("with")
				out = append(out, buf.String())
			}
			all := strings.Join(out, "\n")
			requireNoCanary(t, all, secret)
			require.Contains(t, all, "[REDACTED]")
		})
	}
	require.Equal(t, "[REDACTED]", secret.String())
	require.Equal(t, "[REDACTED]", secret.GoString())

	s2 := keyring.Secret(bytes.Clone(secret))
	s2.Wipe()
	require.Equal(t, make([]byte, len(secret)), []byte(s2))
}

// The keyring's own String and every error it returns hide the key.
func TestRawAESNeverShowsItsKey(t *testing.T) {
	ctx := context.Background()
	kr := newRawAES(t, "ns", "k", canaryKey)
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%x", "%s"} {
		out = append(out, fmt.Sprintf(verb, kr), fmt.Sprintf(verb, *kr))
	}
	_, err := keyring.NewRawAES("ns", "k", canaryKey[:31])
	out = append(out, err.Error())
	_, err = keyring.NewRawAES("aws-kms", "k", canaryKey)
	out = append(out, err.Error())

	em := encMaterials(phiContext)
	require.NoError(t, kr.OnEncrypt(ctx, em))
	dm := decMaterials(map[string]string{"patient": "CANARY-other-patient"})
	err = kr.OnDecrypt(ctx, dm, em.EncryptedDataKeys)
	require.Error(t, err)
	out = append(out, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	requireNoCanary(t, strings.Join(out, "\n"), em.DataKey)
	require.Contains(t, kr.String(), "ns/k")
}

// One keyring serves concurrent messages (run with -race).
func TestRawAESConcurrentUse(t *testing.T) {
	ctx := context.Background()
	kr := newRawAES(t, "ns", "k", canaryKey)
	errs := make(chan error, 16)
	for range 16 {
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
	for range 16 {
		require.NoError(t, <-errs)
	}
}
