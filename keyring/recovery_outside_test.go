package keyring_test

// An outside review of the recovery keyrings (threshold, raw RSA, HPKE
// escrow), through exported names only, with KMS children on kmsmock over
// HTTP.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
)

const outsideCanary = "CANARY-PHI-outside-4417"

var outsideContext = map[string]string{"tenant": "general-hospital", "patient": outsideCanary}

// outsideKMS is kmsmock with a service client.
type outsideKMS struct {
	t   *testing.T
	l   *kmsmock.Local
	svc *kms.Client
}

func newOutsideKMS(t *testing.T) *outsideKMS {
	l := kmsmock.StartTest(t, kmsmock.Config{})
	return &outsideKMS{t: t, l: l, svc: l.Client("svc", func(o *kms.Options) { o.RetryMaxAttempts = 1 })}
}

func (o *outsideKMS) key() string {
	o.t.Helper()
	out, err := o.svc.CreateKey(context.Background(), &kms.CreateKeyInput{Description: aws.String("outside review")})
	require.NoError(o.t, err)
	return aws.ToString(out.KeyMetadata.Arn)
}

func (o *outsideKMS) keyring(arn string) keyring.Keyring {
	o.t.Helper()
	k, err := keyring.NewKMS(keyring.KMSConfig{Client: o.svc, Generator: arn})
	require.NoError(o.t, err)
	return k
}

func (o *outsideKMS) disable(arn string) {
	o.t.Helper()
	_, err := o.svc.DisableKey(context.Background(), &kms.DisableKeyInput{KeyId: aws.String(arn)})
	require.NoError(o.t, err)
}

func outsideAES(t *testing.T, name string) *keyring.RawAES {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	k, err := keyring.NewRawAES("phicrypt-custodians", name, key)
	require.NoError(t, err)
	return k
}

func outsideThreshold(t *testing.T, m int, children ...keyring.Keyring) *keyring.Threshold {
	t.Helper()
	k, err := keyring.NewThreshold(keyring.ThresholdConfig{Threshold: m, Children: children})
	require.NoError(t, err)
	return k
}

func outsideMulti(t *testing.T, gen keyring.Keyring, children ...keyring.Keyring) *keyring.Multi {
	t.Helper()
	k, err := keyring.NewMulti(gen, children...)
	require.NoError(t, err)
	return k
}

func outsideEncrypt(t *testing.T, k keyring.Keyring) *keyring.EncryptionMaterials {
	t.Helper()
	em := &keyring.EncryptionMaterials{SuiteID: 0x0478, DataKeyLength: 32, EncryptionContext: outsideContext}
	require.NoError(t, k.OnEncrypt(context.Background(), em))
	return em
}

func outsideDecrypt(k keyring.Keyring, edks []keyring.EncryptedDataKey) (keyring.Secret, error) {
	dm := &keyring.DecryptionMaterials{SuiteID: 0x0478, DataKeyLength: 32, EncryptionContext: outsideContext}
	err := k.OnDecrypt(context.Background(), dm, edks)
	return dm.DataKey, err
}

func requireNoOutsideCanary(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		require.NotContains(t, s, outsideCanary, "an error shows an encryption-context value")
	}
}

// A threshold keyring nested in a multi-keyring nested in a threshold
// keyring, with a child that makes several EDKs for its share, through
// the Encryptor, concurrently; children failing one by one.
func TestOutsideThresholdNested(t *testing.T) {
	o := newOutsideKMS(t)
	a, b, c := o.key(), o.key(), o.key()
	inner := outsideThreshold(t, 2, outsideAES(t, "x"), outsideAES(t, "y"), outsideAES(t, "z"))
	outer := outsideThreshold(t, 2,
		outsideMulti(t, o.keyring(a), o.keyring(b), inner), // three EDKs for share 1
		o.keyring(c),
		outsideAES(t, "w"))
	enc, err := phicrypt.New(phicrypt.Config{Keyring: outer, MaxEncryptedDataKeys: 3})
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			pt := []byte(fmt.Sprintf("record %d", i))
			ct, err := enc.Encrypt(context.Background(), pt, outsideContext)
			if err != nil {
				errs <- err
				return
			}
			got, _, err := enc.Decrypt(context.Background(), ct, nil)
			if err == nil && !bytes.Equal(got, pt) {
				err = errors.New("a wrong plaintext")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	ct, err := enc.Encrypt(context.Background(), []byte("PHI"), outsideContext)
	require.NoError(t, err)
	o.disable(a) // share 1 still opens through b (or the inner threshold)
	o.disable(c) // share 3 (raw AES w) and share 1 remain
	pt, _, err := enc.Decrypt(context.Background(), ct, nil)
	require.NoError(t, err)
	require.Equal(t, "PHI", string(pt))
	o.disable(b) // share 1 only through the inner threshold keyring now
	pt, _, err = enc.Decrypt(context.Background(), ct, nil)
	require.NoError(t, err)
	require.Equal(t, "PHI", string(pt))

	// One share left: refused with ErrThresholdShares, no context value.
	only := outsideThreshold(t, 2, outsideMulti(t, nil, outsideAES(t, "q")), o.keyring(c), outsideAES(t, "r"))
	reader, err := phicrypt.New(phicrypt.Config{Keyring: only, MaxEncryptedDataKeys: 3})
	require.NoError(t, err)
	_, _, err = reader.Decrypt(context.Background(), ct, nil)
	require.ErrorIs(t, err, keyring.ErrThresholdShares)
	requireNoOutsideCanary(t, err)
}

// Shares of two messages are never combined into a key, whatever the
// bucket writer relabels.
func TestOutsideThresholdSharesOfAnotherMessage(t *testing.T) {
	kids := []keyring.Keyring{outsideAES(t, "c1"), outsideAES(t, "c2"), outsideAES(t, "c3")}
	k := outsideThreshold(t, 2, kids...)
	a, b := outsideEncrypt(t, k), outsideEncrypt(t, k)
	clone := func(e keyring.EncryptedDataKey) keyring.EncryptedDataKey {
		return keyring.EncryptedDataKey{ProviderID: e.ProviderID, ProviderInfo: bytes.Clone(e.ProviderInfo), Ciphertext: bytes.Clone(e.Ciphertext)}
	}
	check := func(name string, edks []keyring.EncryptedDataKey, want error) {
		t.Helper()
		dk, err := outsideDecrypt(k, edks)
		require.ErrorIs(t, err, want, name)
		require.Nil(t, dk, name)
		requireNoOutsideCanary(t, err)
	}
	check("A1 B2", []keyring.EncryptedDataKey{a.EncryptedDataKeys[0], b.EncryptedDataKeys[1]}, keyring.ErrThresholdMixed)

	// B2 relabelled with A's group id: its key check differs from A1's.
	b2 := clone(b.EncryptedDataKeys[1])
	copy(b2.ProviderInfo[1:17], a.EncryptedDataKeys[0].ProviderInfo[1:17])
	check("A1 B2 in A's group", []keyring.EncryptedDataKey{a.EncryptedDataKeys[0], b2}, keyring.ErrThresholdTampered)

	// And with A's key check copied in too: the combination fails the check.
	copy(b2.Ciphertext[:32], a.EncryptedDataKeys[0].Ciphertext[:32])
	check("A1 B2 forged into A", []keyring.EncryptedDataKey{a.EncryptedDataKeys[0], b2}, keyring.ErrThresholdTampered)

	// Indexes swapped: each share goes to the wrong child, which cannot open it.
	a1, a2 := clone(a.EncryptedDataKeys[0]), clone(a.EncryptedDataKeys[1])
	a1.ProviderInfo[19], a2.ProviderInfo[19] = 2, 1
	check("A1 and A2 swapped", []keyring.EncryptedDataKey{a1, a2}, keyring.ErrThresholdShares)

	// M lowered in every share: the key check covers M.
	var low []keyring.EncryptedDataKey
	k35 := outsideThreshold(t, 3, outsideAES(t, "d1"), outsideAES(t, "d2"), outsideAES(t, "d3"))
	m := outsideEncrypt(t, k35)
	for _, e := range m.EncryptedDataKeys[:2] {
		e = clone(e)
		e.ProviderInfo[17] = 2
		low = append(low, e)
	}
	dk, err := outsideDecrypt(k35, low)
	require.ErrorIs(t, err, keyring.ErrThresholdTampered)
	require.Nil(t, dk)

	// The children in another order read nothing, and never a wrong key.
	rev := outsideThreshold(t, 2, kids[2], kids[1], kids[0])
	dk, err = outsideDecrypt(rev, a.EncryptedDataKeys)
	require.Error(t, err)
	require.Nil(t, dk)
	// Children that fail still leave M.
	dk, err = outsideDecrypt(outsideThreshold(t, 2, outsideAES(t, "gone"), kids[1], kids[2]), a.EncryptedDataKeys)
	require.NoError(t, err)
	require.Equal(t, a.DataKey, dk)
}

// gfMul multiplies in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1.
func gfMul(a, b byte) byte {
	var p byte
	for range 8 {
		if b&1 != 0 {
			p ^= a
		}
		hi := a & 0x80
		a <<= 1
		if hi != 0 {
			a ^= 0x1b
		}
		b >>= 1
	}
	return p
}

func gfInv(a byte) byte {
	r := byte(1)
	for range 254 {
		r = gfMul(r, a)
	}
	return r
}

// docs/FORMAT.md section 9, byte by byte, from the outside: the EDK
// layout, the key check, each child EDK an ordinary raw AES EDK of share
// x's Y, and the data key the Lagrange interpolation at 0 of any two Ys.
func TestOutsideThresholdFormatSection9(t *testing.T) {
	kids := []*keyring.RawAES{outsideAES(t, "c1"), outsideAES(t, "c2"), outsideAES(t, "c3")}
	k := outsideThreshold(t, 2, kids[0], kids[1], kids[2])
	em := outsideEncrypt(t, k)
	require.Len(t, em.EncryptedDataKeys, 3)
	ys := map[byte][]byte{}
	for i, e := range em.EncryptedDataKeys {
		require.Equal(t, "phicrypt-threshold", e.ProviderID)
		require.Equal(t, keyring.ThresholdProviderID, e.ProviderID)
		require.Len(t, e.ProviderInfo, 20)
		require.Equal(t, byte(1), e.ProviderInfo[0])
		require.Equal(t, em.EncryptedDataKeys[0].ProviderInfo[1:17], e.ProviderInfo[1:17], "one group id")
		require.Equal(t, []byte{2, 3, byte(i + 1)}, e.ProviderInfo[17:20])
		mac := hmac.New(sha256.New, em.DataKey)
		mac.Write([]byte("phicrypt-threshold key check v1"))
		mac.Write(e.ProviderInfo[:19])
		require.Equal(t, mac.Sum(nil), e.Ciphertext[:32], "the key check")
		require.Equal(t, byte(1), e.Ciphertext[32], "one child EDK")
		rest := e.Ciphertext[33:]
		var fields [3][]byte
		for f := range fields {
			n := int(rest[0])<<8 | int(rest[1])
			fields[f], rest = rest[2:2+n], rest[2+n:]
		}
		require.Empty(t, rest)
		child := keyring.EncryptedDataKey{ProviderID: string(fields[0]), ProviderInfo: fields[1], Ciphertext: fields[2]}
		require.Equal(t, "phicrypt-custodians", child.ProviderID)
		y, err := outsideDecrypt(kids[i], []keyring.EncryptedDataKey{child})
		require.NoError(t, err, "share %d is an ordinary raw AES EDK under the message's context", i+1)
		ys[byte(i+1)] = y
	}
	for _, pair := range [][2]byte{{1, 2}, {1, 3}, {2, 3}} {
		x1, x2 := pair[0], pair[1]
		l1 := gfMul(x2, gfInv(x1^x2))
		l2 := gfMul(x1, gfInv(x1^x2))
		dk := make([]byte, 32)
		for i := range dk {
			dk[i] = gfMul(ys[x1][i], l1) ^ gfMul(ys[x2][i], l2)
		}
		require.Equal(t, []byte(em.DataKey), dk, "shares %d and %d", x1, x2)
	}
}

// Attacker-sized EDKs fail cleanly, never panic.
func TestOutsideEDKCaps(t *testing.T) {
	k := outsideThreshold(t, 2, outsideAES(t, "c1"), outsideAES(t, "c2"), outsideAES(t, "c3"))
	good := outsideEncrypt(t, k).EncryptedDataKeys
	big := make([]byte, 1<<20)
	info := func(mm, n, x byte) []byte { return append(append([]byte{1}, make([]byte, 16)...), mm, n, x) }
	cases := map[string][]keyring.EncryptedDataKey{
		"huge ciphertext":   {{ProviderID: keyring.ThresholdProviderID, ProviderInfo: info(2, 3, 1), Ciphertext: big}},
		"huge info":         {{ProviderID: keyring.ThresholdProviderID, ProviderInfo: append([]byte{1}, big...), Ciphertext: good[0].Ciphertext}},
		"M zero":            {{ProviderID: keyring.ThresholdProviderID, ProviderInfo: info(0, 3, 1), Ciphertext: good[0].Ciphertext}},
		"x zero":            {{ProviderID: keyring.ThresholdProviderID, ProviderInfo: info(2, 3, 0), Ciphertext: good[0].Ciphertext}},
		"x past N":          {{ProviderID: keyring.ThresholdProviderID, ProviderInfo: info(2, 3, 4), Ciphertext: good[0].Ciphertext}},
		"child count 255":   {{ProviderID: keyring.ThresholdProviderID, ProviderInfo: info(2, 3, 1), Ciphertext: append(bytes.Clone(good[0].Ciphertext[:32]), 255)}},
		"empty ciphertext":  {{ProviderID: keyring.ThresholdProviderID, ProviderInfo: info(2, 3, 1)}},
		"nil info":          {{ProviderID: keyring.ThresholdProviderID, Ciphertext: good[0].Ciphertext}},
		"trailing bytes":    {{ProviderID: keyring.ThresholdProviderID, ProviderInfo: good[0].ProviderInfo, Ciphertext: append(bytes.Clone(good[0].Ciphertext), 0)}},
		"cut short":         {{ProviderID: keyring.ThresholdProviderID, ProviderInfo: good[0].ProviderInfo, Ciphertext: good[0].Ciphertext[:40]}},
		"duplicated shares": {good[0], good[0]},
	}
	for name, edks := range cases {
		dk, err := outsideDecrypt(k, edks)
		require.ErrorIs(t, err, keyring.ErrThresholdTampered, name)
		require.Nil(t, dk, name)
		requireNoOutsideCanary(t, err)
	}
	many := make([]keyring.EncryptedDataKey, 300)
	for i := range many {
		many[i] = good[i%3]
	}
	_, err := outsideDecrypt(k, many)
	require.ErrorIs(t, err, keyring.ErrThresholdTampered)
	_, err = outsideDecrypt(k, nil)
	require.ErrorIs(t, err, keyring.ErrNoMatchingKey)

	priv, err := keyring.GenerateHPKEEscrowKey()
	require.NoError(t, err)
	h, err := keyring.NewHPKEEscrowRecovery("escrow", priv)
	require.NoError(t, err)
	hinfo := append([]byte{1, 0x64, 0x7a, 0, 1, 0, 2}, "escrow"...)
	for name, e := range map[string]keyring.EncryptedDataKey{
		"huge ciphertext": {ProviderID: keyring.HPKEEscrowProviderID, ProviderInfo: hinfo, Ciphertext: big},
		"huge info":       {ProviderID: keyring.HPKEEscrowProviderID, ProviderInfo: append(bytes.Clone(hinfo), big...), Ciphertext: big[:1168]},
		"short info":      {ProviderID: keyring.HPKEEscrowProviderID, ProviderInfo: hinfo[:6], Ciphertext: big[:1168]},
		"zero ciphertext": {ProviderID: keyring.HPKEEscrowProviderID, ProviderInfo: hinfo, Ciphertext: big[:1168]},
	} {
		dk, err := outsideDecrypt(h, []keyring.EncryptedDataKey{e})
		require.Error(t, err, name)
		require.Nil(t, dk, name)
		requireNoOutsideCanary(t, err)
	}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	for _, p := range []keyring.RSAPadding{keyring.RSAPaddingOAEPSHA256, keyring.RSAPaddingPKCS1v15} {
		r, err := keyring.NewRawRSA(keyring.RawRSAConfig{Namespace: "escrow", Name: "rsa", PrivateKey: rsaKey, Padding: p})
		require.NoError(t, err)
		for _, ct := range [][]byte{nil, big, big[:255], big[:257]} {
			dk, err := outsideDecrypt(r, []keyring.EncryptedDataKey{{ProviderID: "escrow", ProviderInfo: []byte("rsa"), Ciphertext: ct}})
			require.Error(t, err, "%v, %d bytes", p, len(ct))
			require.Nil(t, dk)
		}
	}
}

// docs/FORMAT.md section 8 against the bytes, and the public-only
// keyring's refusal.
func TestOutsideRawRSA(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	pubOnly, err := keyring.NewRawRSA(keyring.RawRSAConfig{Namespace: "hospital-escrow", Name: "rsa-2026", PublicKey: &priv.PublicKey, Padding: keyring.RSAPaddingOAEPSHA256})
	require.NoError(t, err)
	em := outsideEncrypt(t, pubOnly)
	require.Len(t, em.EncryptedDataKeys, 1)
	e := em.EncryptedDataKeys[0]
	require.Equal(t, "hospital-escrow", e.ProviderID)
	require.Equal(t, []byte("rsa-2026"), e.ProviderInfo)
	require.Len(t, e.Ciphertext, 256)
	dk, err := rsa.DecryptOAEP(sha256.New(), nil, priv, e.Ciphertext, nil)
	require.NoError(t, err, "OAEP SHA-256, MGF1 SHA-256, empty label")
	require.Equal(t, []byte(em.DataKey), dk)

	_, err = outsideDecrypt(pubOnly, em.EncryptedDataKeys)
	require.ErrorIs(t, err, keyring.ErrNoPrivateKey)

	// PKCS #1 v1.5 reads a key written by another ESDK.
	pk, err := keyring.NewRawRSA(keyring.RawRSAConfig{Namespace: "hospital-escrow", Name: "rsa-2026", PrivateKey: priv, Padding: keyring.RSAPaddingPKCS1v15})
	require.NoError(t, err)
	//lint:ignore SA1019 the test plays a peer that wrote PKCS #1 v1.5, which the keyring must read.
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, &priv.PublicKey, em.DataKey)
	require.NoError(t, err)
	got, err := outsideDecrypt(pk, []keyring.EncryptedDataKey{{ProviderID: "hospital-escrow", ProviderInfo: []byte("rsa-2026"), Ciphertext: ct}})
	require.NoError(t, err)
	require.Equal(t, em.DataKey, got)
	_, err = keyring.NewRawRSA(keyring.RawRSAConfig{Namespace: "hospital-escrow", Name: "rsa-2026", PublicKey: &priv.PublicKey, Padding: keyring.RSAPaddingPKCS1v15})
	require.Error(t, err, "PKCS #1 v1.5 is never written")
	// A bad padding and a wrong key look alike: a random key, no error
	// (section 8); the message then fails its header authentication.
	// (A ciphertext of the modulus or more is refused openly: that much
	// is public.)
	bad := bytes.Clone(ct)
	bad[100] ^= 0x55
	k1, err1 := outsideDecrypt(pk, []keyring.EncryptedDataKey{{ProviderID: "hospital-escrow", ProviderInfo: []byte("rsa-2026"), Ciphertext: bad}})
	var ct2 []byte
	for ct2 == nil || new(big.Int).SetBytes(ct2).Cmp(priv.N) >= 0 {
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
		//lint:ignore SA1019 a peer's PKCS #1 v1.5 key under another RSA key.
		ct2, err = rsa.EncryptPKCS1v15(rand.Reader, &other.PublicKey, em.DataKey)
		require.NoError(t, err)
	}
	k2, err2 := outsideDecrypt(pk, []keyring.EncryptedDataKey{{ProviderID: "hospital-escrow", ProviderInfo: []byte("rsa-2026"), Ciphertext: ct2}})
	require.Equal(t, err1 == nil, err2 == nil, "a bad padding and a wrong key must look alike")
	if err1 == nil {
		require.NotEqual(t, em.DataKey, k1)
		require.NotEqual(t, em.DataKey, k2)
	}
}

// HPKE escrow EDKs relabelled or moved do not open; errors carry no
// context value.
func TestOutsideHPKEEscrowAlterations(t *testing.T) {
	priv, err := keyring.GenerateHPKEEscrowKey()
	require.NoError(t, err)
	pub, err := keyring.NewHPKEEscrow("escrow-2026", priv.PublicKey())
	require.NoError(t, err)
	rec, err := keyring.NewHPKEEscrowRecovery("escrow-2026", priv)
	require.NoError(t, err)
	em := outsideEncrypt(t, pub)
	e := em.EncryptedDataKeys[0]
	require.Len(t, e.Ciphertext, 1168)
	require.Equal(t, append([]byte{1, 0x64, 0x7a, 0, 1, 0, 2}, "escrow-2026"...), e.ProviderInfo)

	_, err = outsideDecrypt(pub, em.EncryptedDataKeys)
	require.ErrorIs(t, err, keyring.ErrHPKEEscrowPublicOnly)
	dk, err := outsideDecrypt(rec, em.EncryptedDataKeys)
	require.NoError(t, err)
	require.Equal(t, em.DataKey, dk)

	renamed := keyring.EncryptedDataKey{ProviderID: e.ProviderID, ProviderInfo: append([]byte{1, 0x64, 0x7a, 0, 1, 0, 2}, "escrow-2027"...), Ciphertext: e.Ciphertext}
	_, err = outsideDecrypt(rec, []keyring.EncryptedDataKey{renamed})
	require.ErrorIs(t, err, keyring.ErrNoMatchingKey)
	rec27, err := keyring.NewHPKEEscrowRecovery("escrow-2027", priv)
	require.NoError(t, err)
	_, err = outsideDecrypt(rec27, []keyring.EncryptedDataKey{renamed})
	require.ErrorIs(t, err, keyring.ErrUnwrapFailed, "the key name is bound into HPKE's info")
	requireNoOutsideCanary(t, err)

	suite := keyring.EncryptedDataKey{ProviderID: e.ProviderID, ProviderInfo: bytes.Clone(e.ProviderInfo), Ciphertext: e.Ciphertext}
	suite.ProviderInfo[6] = 3
	_, err = outsideDecrypt(rec, []keyring.EncryptedDataKey{suite})
	require.Error(t, err)
	require.Contains(t, err.Error(), "AEAD 0x0003")

	flipped := keyring.EncryptedDataKey{ProviderID: e.ProviderID, ProviderInfo: e.ProviderInfo, Ciphertext: bytes.Clone(e.Ciphertext)}
	flipped.Ciphertext[1100] ^= 1
	_, err = outsideDecrypt(rec, []keyring.EncryptedDataKey{flipped})
	require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
	requireNoOutsideCanary(t, err)

	dm := &keyring.DecryptionMaterials{SuiteID: 0x0478, DataKeyLength: 32, EncryptionContext: map[string]string{"tenant": "general-hospital", "patient": outsideCanary + "x"}}
	err = rec.OnDecrypt(context.Background(), dm, em.EncryptedDataKeys)
	require.ErrorIs(t, err, keyring.ErrUnwrapFailed, "another context")
	require.NotContains(t, err.Error(), outsideCanary)
	require.Nil(t, dm.DataKey)
}

// A threshold writer beside a KMS generator needs MaxEncryptedDataKeys of
// N + 1 on both sides (docs/FORMAT.md section 9); a writer under the
// default refuses, rather than writing what its readers refuse.
func TestOutsideThresholdMaxEncryptedDataKeys(t *testing.T) {
	o := newOutsideKMS(t)
	var kids []keyring.Keyring
	for range 5 {
		kids = append(kids, o.keyring(o.key()))
	}
	both := outsideMulti(t, o.keyring(o.key()), outsideThreshold(t, 3, kids...))
	tight, err := phicrypt.New(phicrypt.Config{Keyring: both})
	require.NoError(t, err)
	_, err = tight.Encrypt(context.Background(), []byte("PHI"), outsideContext)
	require.Error(t, err, "six EDKs under the default cap of five")
	requireNoOutsideCanary(t, err)
	wide, err := phicrypt.New(phicrypt.Config{Keyring: both, MaxEncryptedDataKeys: 6})
	require.NoError(t, err)
	ct, err := wide.Encrypt(context.Background(), []byte("PHI"), outsideContext)
	require.NoError(t, err)
	pt, _, err := wide.Decrypt(context.Background(), ct, nil)
	require.NoError(t, err)
	require.Equal(t, "PHI", string(pt))
	_, _, err = tight.Decrypt(context.Background(), ct, nil)
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "encrypted data keys"), err.Error())
}

// NewThreshold's refusals, and an OnEncrypt that fails leaves the
// materials as they were.
func TestOutsideThresholdConfigAndFailedEncrypt(t *testing.T) {
	a, b := outsideAES(t, "a"), outsideAES(t, "b")
	for name, cfg := range map[string]keyring.ThresholdConfig{
		"threshold 1":        {Threshold: 1, Children: []keyring.Keyring{a, b}},
		"threshold 0":        {Children: []keyring.Keyring{a, b}},
		"threshold above N":  {Threshold: 3, Children: []keyring.Keyring{a, b}},
		"a child twice":      {Threshold: 2, Children: []keyring.Keyring{a, a}},
		"a nil child":        {Threshold: 2, Children: []keyring.Keyring{a, nil}},
		"no children":        {Threshold: 2},
		"256 children":       {Threshold: 2, Children: make([]keyring.Keyring, 256)},
		"negative threshold": {Threshold: -2, Children: []keyring.Keyring{a, b}},
	} {
		k, err := keyring.NewThreshold(cfg)
		require.Error(t, err, name)
		require.Nil(t, k, name)
	}

	o := newOutsideKMS(t)
	arn := o.key()
	k := outsideThreshold(t, 2, a, b, o.keyring(arn))
	o.disable(arn)
	em := &keyring.EncryptionMaterials{SuiteID: 0x0478, DataKeyLength: 32, EncryptionContext: outsideContext}
	err := k.OnEncrypt(context.Background(), em)
	require.Error(t, err)
	requireNoOutsideCanary(t, err)
	require.Nil(t, em.DataKey)
	require.Empty(t, em.EncryptedDataKeys)

	preset := keyring.Secret(bytes.Repeat([]byte{7}, 32))
	prior := keyring.EncryptedDataKey{ProviderID: "other", ProviderInfo: []byte("x"), Ciphertext: []byte("y")}
	em = &keyring.EncryptionMaterials{SuiteID: 0x0478, DataKeyLength: 32, EncryptionContext: outsideContext,
		DataKey: preset, EncryptedDataKeys: []keyring.EncryptedDataKey{prior}}
	require.Error(t, k.OnEncrypt(context.Background(), em))
	require.Equal(t, bytes.Repeat([]byte{7}, 32), []byte(em.DataKey))
	require.Equal(t, []keyring.EncryptedDataKey{prior}, em.EncryptedDataKeys)

	// A child making more EDKs for its share than a share holds (8).
	var nine []keyring.Keyring
	for i := range 9 {
		nine = append(nine, outsideAES(t, fmt.Sprintf("n%d", i)))
	}
	wide := outsideThreshold(t, 2, outsideMulti(t, nil, nine...), a, b)
	em = &keyring.EncryptionMaterials{SuiteID: 0x0478, DataKeyLength: 32, EncryptionContext: outsideContext}
	require.ErrorContains(t, wide.OnEncrypt(context.Background(), em), "1 to 8")
	require.Nil(t, em.DataKey)
}
