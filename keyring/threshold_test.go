package keyring_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/stretchr/testify/require"
)

// thresholdEnv is kmsmock with one KMS key per custodian and a threshold
// keyring whose children are strict KMS keyrings over those keys.
type thresholdEnv struct {
	*kmsEnv
	arns     []string
	children []keyring.Keyring
	kr       *keyring.Threshold
}

func newThresholdEnv(t *testing.T, m, n int) *thresholdEnv {
	t.Helper()
	e := &thresholdEnv{kmsEnv: newKMSEnv(t, kmsmock.Config{})}
	svc := e.client("svc")
	for range n {
		arn := e.key("")
		e.arns = append(e.arns, arn)
		e.children = append(e.children, newKMS(t, keyring.KMSConfig{Client: svc, Generator: arn}))
	}
	e.kr = newThreshold(t, m, e.children...)
	return e
}

func newThreshold(t *testing.T, m int, children ...keyring.Keyring) *keyring.Threshold {
	t.Helper()
	kr, err := keyring.NewThreshold(keyring.ThresholdConfig{Threshold: m, Children: children})
	require.NoError(t, err)
	return kr
}

func (e *thresholdEnv) disable(i int) {
	e.t.Helper()
	_, err := e.admin().DisableKey(context.Background(), disableInput(e.arns[i]))
	require.NoError(e.t, err)
}

// encrypt runs the threshold keyring's OnEncrypt under phiContext.
func (e *thresholdEnv) encrypt() *keyring.EncryptionMaterials {
	e.t.Helper()
	em := encMaterials(phiContext)
	require.NoError(e.t, e.kr.OnEncrypt(context.Background(), em))
	return em
}

// decrypt runs OnDecrypt over edks and returns the data key or the error.
func decryptWith(kr keyring.Keyring, edks []keyring.EncryptedDataKey) (keyring.Secret, error) {
	dm := decMaterials(phiContext)
	err := kr.OnDecrypt(context.Background(), dm, edks)
	return dm.DataKey, err
}

// requireClean fails if err's text shows an encryption-context value, a
// key of ours, or the data key in any usual encoding.
func requireClean(t *testing.T, err error, dataKey []byte) {
	t.Helper()
	msg := err.Error()
	for _, v := range phiContext {
		require.NotContains(t, msg, v)
	}
	require.NotContains(t, msg, string(canaryKey))
	if dataKey != nil {
		require.NotContains(t, msg, fmt.Sprintf("%x", dataKey))
		require.NotContains(t, msg, fmt.Sprint(dataKey))
		require.NotContains(t, msg, string(dataKey))
	}
}

// 2-of-3 with KMS children: one Encrypt per share, three EDKs of our
// provider id, and decryption that stops after two shares; with one child
// key disabled it still decrypts, with two it fails with
// ErrThresholdShares naming each share's failure.
func TestThreshold2Of3KMS(t *testing.T) {
	e := newThresholdEnv(t, 2, 3)
	em := e.encrypt()
	require.Len(t, em.DataKey, dataKeyLength)
	require.Zero(t, e.calls("GenerateDataKey"), "the threshold keyring makes the data key; children only wrap shares")
	require.EqualValues(t, 3, e.calls("Encrypt"))
	require.Len(t, em.EncryptedDataKeys, 3)
	for i, edk := range em.EncryptedDataKeys {
		require.Equal(t, keyring.ThresholdProviderID, edk.ProviderID)
		require.Len(t, edk.ProviderInfo, 20)
		require.Equal(t, []byte{2, 3, byte(i + 1)}, edk.ProviderInfo[17:])
		require.Equal(t, em.EncryptedDataKeys[0].ProviderInfo[:17], edk.ProviderInfo[:17], "one group id for the message")
		require.NotContains(t, string(edk.Ciphertext), string(em.DataKey))
	}

	before := e.calls("Decrypt")
	dk, err := decryptWith(e.kr, em.EncryptedDataKeys)
	require.NoError(t, err)
	require.Equal(t, []byte(em.DataKey), []byte(dk))
	require.EqualValues(t, 2, e.calls("Decrypt")-before, "two shares suffice; the third is not unwrapped")

	// A keyring built anew over the same keys reads it: nothing lives in
	// the keyring between calls.
	dk, err = decryptWith(newThreshold(t, 2, e.children...), em.EncryptedDataKeys)
	require.NoError(t, err)
	require.Equal(t, []byte(em.DataKey), []byte(dk))

	// Custodian 1's key disabled: shares 2 and 3 still open it.
	e.disable(0)
	dk, err = decryptWith(e.kr, em.EncryptedDataKeys)
	require.NoError(t, err)
	require.Equal(t, []byte(em.DataKey), []byte(dk))

	// A second key disabled: one share is not enough.
	e.disable(1)
	dk, err = decryptWith(e.kr, em.EncryptedDataKeys)
	require.ErrorIs(t, err, keyring.ErrThresholdShares)
	require.NotErrorIs(t, err, keyring.ErrThresholdTampered)
	require.NotErrorIs(t, err, keyring.ErrThresholdMixed)
	require.Nil(t, dk)
	require.Contains(t, err.Error(), "share 1: ")
	require.Contains(t, err.Error(), "share 2: ")
	require.Contains(t, err.Error(), "1 of the 2 shares needed were unwrapped")
	require.Equal(t, "DisabledException", apiErrorCode(err), "the children's KMS errors stay reachable")
	requireClean(t, err, em.DataKey)
	t.Log(err)
}

// 3-of-5: any two keys disabled still decrypts, three do not.
func TestThreshold3Of5KMS(t *testing.T) {
	e := newThresholdEnv(t, 3, 5)
	em := e.encrypt()
	require.EqualValues(t, 5, e.calls("Encrypt"))
	require.Len(t, em.EncryptedDataKeys, 5)

	// Every subset of three shares, alone in the message, opens it.
	for a := 0; a < 5; a++ {
		for b := a + 1; b < 5; b++ {
			for c := b + 1; c < 5; c++ {
				edks := []keyring.EncryptedDataKey{em.EncryptedDataKeys[c], em.EncryptedDataKeys[a], em.EncryptedDataKeys[b]}
				dk, err := decryptWith(e.kr, edks)
				require.NoError(t, err, "shares %d %d %d", a+1, b+1, c+1)
				require.Equal(t, []byte(em.DataKey), []byte(dk))
			}
		}
	}
	// Two shares alone do not.
	_, err := decryptWith(e.kr, em.EncryptedDataKeys[1:3])
	require.ErrorIs(t, err, keyring.ErrThresholdShares)
	require.Contains(t, err.Error(), "holds 2 of the 3 shares")

	e.disable(1)
	e.disable(3)
	before := e.calls("Decrypt")
	dk, err := decryptWith(e.kr, em.EncryptedDataKeys)
	require.NoError(t, err)
	require.Equal(t, []byte(em.DataKey), []byte(dk))
	require.EqualValues(t, 5, e.calls("Decrypt")-before, "shares 1, 3, 5 open; 2 and 4 are tried and refused")

	e.disable(4)
	_, err = decryptWith(e.kr, em.EncryptedDataKeys)
	require.ErrorIs(t, err, keyring.ErrThresholdShares)
	requireClean(t, err, em.DataKey)
}

func TestNewThresholdRefuses(t *testing.T) {
	raw := func(name string) keyring.Keyring { return newRawAES(t, "custodians", name, canaryKey) }
	a, b, c := raw("a"), raw("b"), raw("c")
	many := make([]keyring.Keyring, 256)
	for i := range many {
		many[i] = raw(fmt.Sprint(i))
	}
	for name, cfg := range map[string]keyring.ThresholdConfig{
		"1-of-3":            {Threshold: 1, Children: []keyring.Keyring{a, b, c}},
		"0-of-3":            {Threshold: 0, Children: []keyring.Keyring{a, b, c}},
		"4-of-3":            {Threshold: 4, Children: []keyring.Keyring{a, b, c}},
		"no children":       {Threshold: 2},
		"nil child":         {Threshold: 2, Children: []keyring.Keyring{a, nil, c}},
		"a child twice":     {Threshold: 2, Children: []keyring.Keyring{a, b, a}},
		"256 children":      {Threshold: 2, Children: many},
		"negative":          {Threshold: -2, Children: []keyring.Keyring{a, b, c}},
		"1-of-1":            {Threshold: 1, Children: []keyring.Keyring{a}},
		"2-of-1 (too few)":  {Threshold: 2, Children: []keyring.Keyring{a}},
		"a multi child nil": {Threshold: 2, Children: []keyring.Keyring{nil, nil}},
	} {
		t.Run(name, func(t *testing.T) {
			kr, err := keyring.NewThreshold(cfg)
			require.Error(t, err)
			require.Nil(t, kr)
			require.True(t, strings.HasPrefix(err.Error(), "keyring: "), err.Error())
		})
	}
	_, err := keyring.NewThreshold(keyring.ThresholdConfig{Threshold: 1, Children: []keyring.Keyring{a, b, c}})
	require.ErrorContains(t, err, "at least 2")
	kr, err := keyring.NewThreshold(keyring.ThresholdConfig{Threshold: 255, Children: many[:255]})
	require.NoError(t, err)
	require.Equal(t, "Threshold(255 of 255)", kr.String())
}

// tamper returns a copy of edks with f applied to a copy of edk i.
func tamper(edks []keyring.EncryptedDataKey, i int, f func(*keyring.EncryptedDataKey)) []keyring.EncryptedDataKey {
	out := make([]keyring.EncryptedDataKey, len(edks))
	for j, e := range edks {
		out[j] = keyring.EncryptedDataKey{ProviderID: e.ProviderID, ProviderInfo: bytes.Clone(e.ProviderInfo), Ciphertext: bytes.Clone(e.Ciphertext)}
	}
	f(&out[i])
	return out
}

// An altered share is refused with ErrThresholdTampered wherever the
// alteration is: in the key check, the threshold, an index, the format
// version or the length fields. An alteration inside the child's own
// wrapped key makes that child refuse it: the share is then unavailable,
// and the others still open the message.
func TestThresholdTamperedShare(t *testing.T) {
	e := newThresholdEnv(t, 2, 3)
	em := e.encrypt()
	edks := em.EncryptedDataKeys

	for name, c := range map[string]struct {
		edks []keyring.EncryptedDataKey
		what string
	}{
		"key check":              {tamper(edks, 0, func(k *keyring.EncryptedDataKey) { k.Ciphertext[5] ^= 1 }), "disagree"},
		"threshold of one share": {tamper(edks, 1, func(k *keyring.EncryptedDataKey) { k.ProviderInfo[17] = 3 }), "disagree"},
		"index made a duplicate": {tamper(edks, 0, func(k *keyring.EncryptedDataKey) { k.ProviderInfo[19] = 2 }), "same index"},
		"index out of range":     {tamper(edks, 0, func(k *keyring.EncryptedDataKey) { k.ProviderInfo[19] = 4 }), "share 4 of 3"},
		"index zero":             {tamper(edks, 0, func(k *keyring.EncryptedDataKey) { k.ProviderInfo[19] = 0 }), "share 0 of 3"},
		"version":                {tamper(edks, 2, func(k *keyring.EncryptedDataKey) { k.ProviderInfo[0] = 2 }), "version is 2"},
		"provider info cut":      {tamper(edks, 2, func(k *keyring.EncryptedDataKey) { k.ProviderInfo = k.ProviderInfo[:19] }), "19 bytes"},
		"child count":            {tamper(edks, 1, func(k *keyring.EncryptedDataKey) { k.Ciphertext[32] = 9 }), "9 child keys"},
		"ciphertext cut":         {tamper(edks, 1, func(k *keyring.EncryptedDataKey) { k.Ciphertext = k.Ciphertext[:len(k.Ciphertext)-1] }), "cut short"},
		"trailing byte":          {tamper(edks, 1, func(k *keyring.EncryptedDataKey) { k.Ciphertext = append(k.Ciphertext, 0) }), "1 bytes follow"},
	} {
		t.Run(name, func(t *testing.T) {
			dk, err := decryptWith(e.kr, c.edks)
			require.ErrorIs(t, err, keyring.ErrThresholdTampered)
			require.NotErrorIs(t, err, keyring.ErrThresholdMixed)
			require.ErrorContains(t, err, c.what)
			require.Nil(t, dk)
			requireClean(t, err, em.DataKey)
		})
	}

	// The threshold altered in every share (2 to 3): the three shares
	// agree, unwrap and combine (a line through three of its points is
	// still the line), but the key check binds the threshold.
	all := edks
	for i := range all {
		all = tamper(all, i, func(k *keyring.EncryptedDataKey) { k.ProviderInfo[17] = 3 })
	}
	_, err := decryptWith(e.kr, all)
	require.ErrorIs(t, err, keyring.ErrThresholdTampered)
	require.ErrorContains(t, err, "fails the message's key check")

	// A bit flipped inside share 1's KMS ciphertext: KMS refuses it, and
	// shares 2 and 3 open the message.
	flipped := tamper(edks, 0, func(k *keyring.EncryptedDataKey) { k.Ciphertext[len(k.Ciphertext)-3] ^= 1 })
	dk, err := decryptWith(e.kr, flipped)
	require.NoError(t, err)
	require.Equal(t, []byte(em.DataKey), []byte(dk))
	// With share 3 gone, it is one share short, and the error says why
	// share 1 failed.
	_, err = decryptWith(e.kr, flipped[:2])
	require.ErrorIs(t, err, keyring.ErrThresholdShares)
	require.ErrorContains(t, err, "share 1: ")
}

// When every child can unwrap every share (all three on one KMS key), an
// index swapped between two shares reaches the combination, which the key
// check refuses.
func TestThresholdSwappedIndexesFailTheKeyCheck(t *testing.T) {
	e := newKMSEnv(t, kmsmock.Config{})
	arn := e.key("")
	svc := e.client("svc")
	var children []keyring.Keyring
	for range 3 {
		children = append(children, newKMS(t, keyring.KMSConfig{Client: svc, Generator: arn}))
	}
	kr := newThreshold(t, 2, children...)
	em := encMaterials(phiContext)
	require.NoError(t, kr.OnEncrypt(context.Background(), em))
	swapped := tamper(em.EncryptedDataKeys, 0, func(k *keyring.EncryptedDataKey) { k.ProviderInfo[19] = 2 })
	swapped = tamper(swapped, 1, func(k *keyring.EncryptedDataKey) { k.ProviderInfo[19] = 1 })
	dk, err := decryptWith(kr, swapped)
	require.ErrorIs(t, err, keyring.ErrThresholdTampered)
	require.ErrorContains(t, err, "shares 1, 2 combine to a key that fails the message's key check")
	require.Nil(t, dk)
	requireClean(t, err, em.DataKey)
}

// Shares of two messages under the same keys and context: a share of one
// put in the other is never combined with it. The message still opens
// when its own shares suffice; when they do not, it fails with
// ErrThresholdMixed.
func TestThresholdSharesSwappedBetweenMessages(t *testing.T) {
	e := newThresholdEnv(t, 2, 3)
	a, b := e.encrypt(), e.encrypt()
	require.NotEqual(t, []byte(a.DataKey), []byte(b.DataKey))
	require.NotEqual(t, a.EncryptedDataKeys[0].ProviderInfo[1:17], b.EncryptedDataKeys[0].ProviderInfo[1:17], "a group id per message")
	A, B := a.EncryptedDataKeys, b.EncryptedDataKeys

	// A's shares 1 and 3 with B's share 2: A's two shares open A.
	dk, err := decryptWith(e.kr, []keyring.EncryptedDataKey{A[0], B[1], A[2]})
	require.NoError(t, err)
	require.Equal(t, []byte(a.DataKey), []byte(dk))

	// A's share 1 with B's share 2: two shares, but of two messages.
	before := e.calls("Decrypt")
	dk, err = decryptWith(e.kr, []keyring.EncryptedDataKey{A[0], B[1]})
	require.ErrorIs(t, err, keyring.ErrThresholdMixed)
	require.NotErrorIs(t, err, keyring.ErrThresholdShares)
	require.Nil(t, dk)
	require.Equal(t, before, e.calls("Decrypt"), "no group can reach its threshold: nothing is unwrapped")
	requireClean(t, err, a.DataKey)

	// A's shares 1 and 3 with B's 2 while key 3 is disabled: A has one
	// usable share, B one: mixed again.
	e.disable(2)
	_, err = decryptWith(e.kr, []keyring.EncryptedDataKey{A[0], B[1], A[2]})
	require.ErrorIs(t, err, keyring.ErrThresholdMixed)
	require.ErrorContains(t, err, "share 3: ")

	// B's share 2 relabelled with A's group id is an altered share: its
	// key check is B's, so A's group disagrees with itself.
	relabelled := tamper(B, 1, func(k *keyring.EncryptedDataKey) { copy(k.ProviderInfo[1:17], A[0].ProviderInfo[1:17]) })
	_, err = decryptWith(e.kr, []keyring.EncryptedDataKey{A[0], relabelled[1]})
	require.ErrorIs(t, err, keyring.ErrThresholdTampered)
	// ... and with A's key check copied in too, the shares combine to a
	// key that fails it.
	relabelled = tamper(relabelled, 1, func(k *keyring.EncryptedDataKey) { copy(k.Ciphertext[:32], A[0].Ciphertext[:32]) })
	_, err = decryptWith(e.kr, []keyring.EncryptedDataKey{A[0], relabelled[1]})
	require.ErrorIs(t, err, keyring.ErrThresholdTampered)
	require.ErrorContains(t, err, "fails the message's key check")
}

// Under another encryption context no share unwraps: the children bind
// each share to the context as they would a data key.
func TestThresholdContextBound(t *testing.T) {
	e := newThresholdEnv(t, 2, 3)
	em := e.encrypt()
	dm := decMaterials(map[string]string{"tenant": "general-hospital", "patient": "someone-else"})
	err := e.kr.OnDecrypt(context.Background(), dm, em.EncryptedDataKeys)
	require.ErrorIs(t, err, keyring.ErrThresholdShares)
	require.Equal(t, "InvalidCiphertextException", apiErrorCode(err))
	require.Nil(t, dm.DataKey)
	requireClean(t, err, em.DataKey)
}

// Messages without threshold shares, or with shares of a threshold keyring
// of another size, are not this keyring's: ErrNoMatchingKey, so a
// multi-keyring goes on to its next child.
func TestThresholdNoMatchingKey(t *testing.T) {
	e := newThresholdEnv(t, 2, 3)
	raw := newRawAES(t, "ns", "k", canaryKey)
	em := encMaterials(phiContext)
	require.NoError(t, raw.OnEncrypt(context.Background(), em))
	_, err := decryptWith(e.kr, em.EncryptedDataKeys)
	require.ErrorIs(t, err, keyring.ErrNoMatchingKey)
	_, err = decryptWith(e.kr, nil)
	require.ErrorIs(t, err, keyring.ErrNoMatchingKey)

	four := newThreshold(t, 2, append(e.children, raw)...)
	em = encMaterials(phiContext)
	require.NoError(t, four.OnEncrypt(context.Background(), em))
	require.Len(t, em.EncryptedDataKeys, 4)
	_, err = decryptWith(e.kr, em.EncryptedDataKeys)
	require.ErrorIs(t, err, keyring.ErrNoMatchingKey)
	dk, err := decryptWith(four, em.EncryptedDataKeys)
	require.NoError(t, err)
	require.Equal(t, []byte(em.DataKey), []byte(dk))

	// Materials that already hold a key are a programming error.
	dm := decMaterials(phiContext)
	dm.DataKey = keyring.Secret(bytes.Repeat([]byte{1}, dataKeyLength))
	require.ErrorIs(t, e.kr.OnDecrypt(context.Background(), dm, em.EncryptedDataKeys), keyring.ErrDataKeyPresent)
}

// A data key the materials already hold (the threshold keyring as a child
// of a multi-keyring) is split, not replaced; a child's failure fails the
// call, leaves the materials as they were and names the child.
func TestThresholdEncryptWithGivenKeyAndFailingChild(t *testing.T) {
	e := newThresholdEnv(t, 2, 3)
	em := encMaterials(phiContext)
	given := bytes.Repeat([]byte{0x5a}, dataKeyLength)
	em.DataKey = keyring.Secret(bytes.Clone(given))
	require.NoError(t, e.kr.OnEncrypt(context.Background(), em))
	require.Equal(t, given, []byte(em.DataKey))
	dk, err := decryptWith(e.kr, em.EncryptedDataKeys)
	require.NoError(t, err)
	require.Equal(t, given, []byte(dk))

	e.disable(1)
	em = encMaterials(phiContext)
	prior := keyring.EncryptedDataKey{ProviderID: "other", ProviderInfo: []byte("i"), Ciphertext: []byte("c")}
	em.EncryptedDataKeys = make([]keyring.EncryptedDataKey, 1, 8)
	em.EncryptedDataKeys[0] = prior
	err = e.kr.OnEncrypt(context.Background(), em)
	require.Error(t, err)
	require.ErrorContains(t, err, "threshold child keyring 2 of 3 wrapping its share")
	require.Equal(t, "DisabledException", apiErrorCode(err))
	require.Nil(t, em.DataKey)
	require.Equal(t, []keyring.EncryptedDataKey{prior}, em.EncryptedDataKeys)
	require.Equal(t, keyring.EncryptedDataKey{}, em.EncryptedDataKeys[:2][1], "the spare capacity is untouched")
	requireClean(t, err, nil)

	// The wrong data key length for the materials is refused.
	em = encMaterials(phiContext)
	em.DataKey = keyring.Secret(make([]byte, 16))
	require.Error(t, e.kr.OnEncrypt(context.Background(), em))
}

func TestThresholdPrintsNoChildren(t *testing.T) {
	e := newThresholdEnv(t, 2, 3)
	cfg := keyring.ThresholdConfig{Threshold: 2, Children: e.children}
	for _, v := range []any{e.kr, cfg, &cfg} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
			out := fmt.Sprintf(verb, v)
			require.NotContains(t, out, "arn:", verb)
			require.Contains(t, out, "2 of 3", verb)
		}
	}
}

func disableInput(arn string) *kms.DisableKeyInput {
	return &kms.DisableKeyInput{KeyId: aws.String(arn)}
}
