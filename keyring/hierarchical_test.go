package keyring_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/stretchr/testify/require"
)

// fakeClock is a settable clock for cache expiry.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

const hierTTL = time.Minute

func newHierarchical(t *testing.T, cfg keyring.HierarchicalConfig) *keyring.Hierarchical {
	t.Helper()
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = hierTTL
	}
	kr, err := keyring.NewHierarchical(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { kr.Close() })
	return kr
}

// kbkdfCtrHMACSHA256 is NIST SP 800-108r1 KDF in counter mode with
// HMAC-SHA-256 for one 32-byte block, written independently of the keyring:
// PRF(key, [1]_32 || label || 0x00 || context || [256]_32).
func kbkdfCtrHMACSHA256(key, label, context []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte{0, 0, 0, 1})
	mac.Write(label)
	mac.Write([]byte{0})
	mac.Write(context)
	mac.Write([]byte{0, 0, 1, 0})
	return mac.Sum(nil)
}

// TestHierarchicalKDFKnownAnswer pins the wrapping-key derivation of
// aws-kms-hierarchical-keyring.md "Branch Key Wrapping" step 3. The expected
// value was computed with pyca/cryptography's KBKDFHMAC (SHA256, counter
// mode, rlen=4, llen=4, counter before fixed input, label
// "aws-kms-hierarchy", context = salt), an implementation independent of
// this one.
func TestHierarchicalKDFKnownAnswer(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	salt := make([]byte, 16)
	for i := range salt {
		salt[i] = 0xa0 + byte(i)
	}
	want := "e5bb8edd42332babcda1e0bea19df88f3d9baa54461f50df2cc426a942b5e4e6"
	require.Equal(t, want, hex.EncodeToString(kbkdfCtrHMACSHA256(key, []byte("aws-kms-hierarchy"), salt)))

	// The spec names this KDF, not HKDF: crypto/hkdf with the same inputs
	// (salt as salt, label as info) derives another key, so a keyring using
	// it could not read what AWS's hierarchical keyrings write.
	h, err := hkdf.Key(sha256.New, key, salt, "aws-kms-hierarchy", 32)
	require.NoError(t, err)
	require.NotEqual(t, want, hex.EncodeToString(h))
}

// openHierEDK opens an aws-kms-hierarchy EDK following the spec's layout
// byte by byte, independently of the keyring, and returns the data key and
// the version bytes it names.
func openHierEDK(t *testing.T, branchKey []byte, id string, edk keyring.EncryptedDataKey, ec map[string]string) (dk, version []byte) {
	t.Helper()
	require.Equal(t, "aws-kms-hierarchy", edk.ProviderID)
	require.Equal(t, id, string(edk.ProviderInfo))
	ct := edk.Ciphertext
	// salt 16 || IV 12 || version 16 || encrypted key 32 || tag 16
	require.Len(t, ct, 16+12+16+32+16)
	salt, iv, version := ct[:16], ct[16:28], ct[28:44]
	block, err := aes.NewCipher(kbkdfCtrHMACSHA256(branchKey, []byte("aws-kms-hierarchy"), salt))
	require.NoError(t, err)
	gcm, err := cipher.NewGCM(block)
	require.NoError(t, err)
	aad := append([]byte("aws-kms-hierarchy"+id), version...)
	aad = append(aad, serializeContext(ec)...)
	dk, err = gcm.Open(nil, iv, ct[44:], aad)
	require.NoError(t, err)
	return dk, version
}

func uuidRaw(t *testing.T, v string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(v, "-", ""))
	require.NoError(t, err)
	require.Len(t, b, 16)
	return b
}

func TestHierarchicalRoundTripAndLayout(t *testing.T) {
	forEachHierStore(t, func(t *testing.T, e *kmsEnv, s keystore.Store) {
		ctx := context.Background()
		bk := newBranchKeys(t, e, s, e.key(""))
		v1, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-a")
		require.NoError(t, err)
		kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a"})

		for _, ec := range []map[string]string{phiContext, nil} {
			em := encMaterials(ec)
			require.NoError(t, kr.OnEncrypt(ctx, em))
			require.Len(t, em.DataKey, dataKeyLength)
			require.Len(t, em.EncryptedDataKeys, 1)
			edk := em.EncryptedDataKeys[0]

			branchKey, err := bk.Unwrap(ctx, v1)
			require.NoError(t, err)
			dk, version := openHierEDK(t, branchKey, "tenant-a", edk, ec)
			require.Equal(t, []byte(em.DataKey), dk)
			require.Equal(t, uuidRaw(t, v1.Version), version)

			dm := decMaterials(ec)
			require.NoError(t, kr.OnDecrypt(ctx, dm, em.EncryptedDataKeys))
			require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))
		}

		// A caller-supplied data key is wrapped, not replaced.
		em := encMaterials(phiContext)
		em.DataKey = bytes.Repeat([]byte{9}, dataKeyLength)
		require.NoError(t, kr.OnEncrypt(ctx, em))
		require.Equal(t, bytes.Repeat([]byte{9}, dataKeyLength), []byte(em.DataKey))

		// Two messages never share salt or IV.
		em2 := encMaterials(phiContext)
		require.NoError(t, kr.OnEncrypt(ctx, em2))
		require.NotEqual(t, em.EncryptedDataKeys[0].Ciphertext[:28], em2.EncryptedDataKeys[0].Ciphertext[:28])

		// Encrypting and decrypting on one keyring unwrapped the branch key
		// once (plus the test's own Unwrap calls, two).
		require.EqualValues(t, 1+2, e.calls("Decrypt"))
	})
}

func TestHierarchicalFailures(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	bk := newBranchKeys(t, e, hierStores[0].open(t), e.key(""))
	_, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-a")
	require.NoError(t, err)
	_, err = testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-b")
	require.NoError(t, err)
	kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a"})
	em := encMaterials(phiContext)
	require.NoError(t, kr.OnEncrypt(ctx, em))
	edks := em.EncryptedDataKeys

	t.Run("wrong context", func(t *testing.T) {
		for _, ec := range []map[string]string{
			{"tenant": "general-hospital", "patient": "someone-else"},
			{"tenant": "general-hospital"},
			nil,
		} {
			dm := decMaterials(ec)
			err := kr.OnDecrypt(ctx, dm, edks)
			require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
			require.Nil(t, dm.DataKey)
		}
	})
	t.Run("tampered", func(t *testing.T) {
		for i := range edks[0].Ciphertext {
			bad := bytes.Clone(edks[0].Ciphertext)
			bad[i] ^= 0x01
			dm := decMaterials(phiContext)
			err := kr.OnDecrypt(ctx, dm, []keyring.EncryptedDataKey{{ProviderID: edks[0].ProviderID, ProviderInfo: edks[0].ProviderInfo, Ciphertext: bad}})
			require.Error(t, err, "byte %d", i)
			require.Nil(t, dm.DataKey)
		}
		dm := decMaterials(phiContext)
		short := edks[0].Ciphertext[:len(edks[0].Ciphertext)-1]
		require.ErrorIs(t, kr.OnDecrypt(ctx, dm, []keyring.EncryptedDataKey{{ProviderID: "aws-kms-hierarchy", ProviderInfo: []byte("tenant-a"), Ciphertext: short}}), keyring.ErrUnwrapFailed)
	})
	t.Run("other branch key", func(t *testing.T) {
		other := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-b"})
		require.ErrorIs(t, other.OnDecrypt(ctx, decMaterials(phiContext), edks), keyring.ErrNoMatchingKey)
		// Renaming the EDK's branch key id does not help: the id is in the AAD.
		renamed := []keyring.EncryptedDataKey{{ProviderID: "aws-kms-hierarchy", ProviderInfo: []byte("tenant-b"), Ciphertext: edks[0].Ciphertext}}
		require.Error(t, other.OnDecrypt(ctx, decMaterials(phiContext), renamed))
	})
	t.Run("not utf-8 provider info", func(t *testing.T) {
		bad := []keyring.EncryptedDataKey{{ProviderID: "aws-kms-hierarchy", ProviderInfo: []byte{0xff}, Ciphertext: edks[0].Ciphertext}}
		require.ErrorIs(t, kr.OnDecrypt(ctx, decMaterials(phiContext), bad), keyring.ErrUnwrapFailed)
	})
	t.Run("data key present", func(t *testing.T) {
		dm := decMaterials(phiContext)
		dm.DataKey = make(keyring.Secret, dataKeyLength)
		require.ErrorIs(t, kr.OnDecrypt(ctx, dm, edks), keyring.ErrDataKeyPresent)
	})
	t.Run("unknown branch key", func(t *testing.T) {
		none := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-z"})
		em := encMaterials(phiContext)
		require.ErrorIs(t, none.OnEncrypt(ctx, em), keystore.ErrNotFound)
		require.Nil(t, em.DataKey)
		require.Empty(t, em.EncryptedDataKeys)
	})
}

func TestNewHierarchicalRefusesBadConfig(t *testing.T) {
	e := newKMSEnv(t, kmsmock.Config{})
	bk := newBranchKeys(t, e, hierStores[0].open(t), e.key(""))
	sup := func(map[string]string) (string, error) { return "x", nil }
	for name, cfg := range map[string]keyring.HierarchicalConfig{
		"no branch keys": {BranchKeyID: "a", CacheTTL: time.Minute},
		"no id":          {BranchKeys: bk, CacheTTL: time.Minute},
		"both ids":       {BranchKeys: bk, BranchKeyID: "a", BranchKeyIDSupplier: sup, CacheTTL: time.Minute},
		"no ttl":         {BranchKeys: bk, BranchKeyID: "a"},
		"negative cap":   {BranchKeys: bk, BranchKeyID: "a", CacheTTL: time.Minute, CacheCapacity: -1},
		"bad id":         {BranchKeys: bk, BranchKeyID: "a\x00b", CacheTTL: time.Minute},
	} {
		_, err := keyring.NewHierarchical(cfg)
		require.Error(t, err, name)
	}
}

func TestHierarchicalRotationAndRetirement(t *testing.T) {
	forEachHierStore(t, func(t *testing.T, e *kmsEnv, s keystore.Store) {
		ctx := context.Background()
		bk := newBranchKeys(t, e, s, e.key(""))
		v1, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-a")
		require.NoError(t, err)
		clock := &fakeClock{t: time.Now()}
		kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a", Now: clock.Now})

		em1 := encMaterials(phiContext)
		require.NoError(t, kr.OnEncrypt(ctx, em1))
		v2, err := testkeys.Custodian(t, bk).Rotate(ctx, "tenant-a")
		require.NoError(t, err)

		// Within the TTL this process still encrypts under version 1, and so
		// does a fresh one (the propagation window) ...
		em := encMaterials(phiContext)
		require.NoError(t, kr.OnEncrypt(ctx, em))
		require.Equal(t, uuidRaw(t, v1.Version), em.EncryptedDataKeys[0].Ciphertext[28:44])
		early := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a"})
		emEarly := encMaterials(phiContext)
		require.NoError(t, early.OnEncrypt(ctx, emEarly))
		require.Equal(t, uuidRaw(t, v1.Version), emEarly.EncryptedDataKeys[0].Ciphertext[28:44])
		require.Equal(t, v2.CreatedAt.Add(hierTTL), early.WritesFrom(v2))
		// ... and once one TTL has passed since the rotation, under version 2.
		clock.Advance(v2.CreatedAt.Add(hierTTL).Sub(clock.Now()))
		em2 := encMaterials(phiContext)
		require.NoError(t, kr.OnEncrypt(ctx, em2))
		require.Equal(t, uuidRaw(t, v2.Version), em2.EncryptedDataKeys[0].Ciphertext[28:44])

		// Messages under both versions decrypt, here and in a fresh process.
		fresh := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a"})
		for _, k := range []*keyring.Hierarchical{kr, fresh} {
			for _, m := range []*keyring.EncryptionMaterials{em1, em2} {
				dm := decMaterials(phiContext)
				require.NoError(t, k.OnDecrypt(ctx, dm, m.EncryptedDataKeys))
				require.Equal(t, []byte(m.DataKey), []byte(dm.DataKey))
			}
		}

		// Retire version 1: a cold cache refuses it at once, a warm one once
		// the TTL has passed; version 2 is unaffected.
		require.NoError(t, s.SetState(ctx, "tenant-a", v1.Version, keystore.StateDecryptOnly, keystore.StateRetired))
		cold := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a"})
		dm := decMaterials(phiContext)
		err = cold.OnDecrypt(ctx, dm, em1.EncryptedDataKeys)
		require.ErrorIs(t, err, keyring.ErrVersionRetired)
		require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
		require.Nil(t, dm.DataKey)
		require.NoError(t, kr.OnDecrypt(ctx, decMaterials(phiContext), em1.EncryptedDataKeys))
		clock.Advance(hierTTL)
		require.ErrorIs(t, kr.OnDecrypt(ctx, decMaterials(phiContext), em1.EncryptedDataKeys), keyring.ErrVersionRetired)
		require.NoError(t, cold.OnDecrypt(ctx, decMaterials(phiContext), em2.EncryptedDataKeys))
		// Retirement is not a wrong key: the error says which.
		require.False(t, errors.Is(cold.OnDecrypt(ctx, decMaterials(phiContext), em2.EncryptedDataKeys), keyring.ErrVersionRetired))
	})
}

// TestHierarchicalSingleFlight: 64 goroutines decrypting with a cold cache
// make exactly one KMS Decrypt.
func TestHierarchicalSingleFlight(t *testing.T) {
	forEachHierStore(t, func(t *testing.T, e *kmsEnv, s keystore.Store) {
		ctx := context.Background()
		bk := newBranchKeys(t, e, s, e.key(""))
		_, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-a")
		require.NoError(t, err)
		em := encMaterials(phiContext)
		require.NoError(t, newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a"}).OnEncrypt(ctx, em))

		cold := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a"})
		before := e.calls("Decrypt")
		start := make(chan struct{})
		errs := make(chan error, 64)
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				dm := decMaterials(phiContext)
				err := cold.OnDecrypt(ctx, dm, em.EncryptedDataKeys)
				if err == nil && !bytes.Equal(dm.DataKey, em.DataKey) {
					err = errors.New("wrong data key")
				}
				errs <- err
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.EqualValues(t, 1, e.calls("Decrypt")-before)

		// Encrypting concurrently reads the active version once and finds
		// that version's key already cached: no further Decrypt.
		errs = make(chan error, 64)
		wg = sync.WaitGroup{}
		for range 64 {
			wg.Go(func() { errs <- cold.OnEncrypt(ctx, encMaterials(phiContext)) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.EqualValues(t, 1, e.calls("Decrypt")-before)
	})
}

func TestHierarchicalCacheCapacity(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	bk := newBranchKeys(t, e, hierStores[0].open(t), e.key(""))
	for _, id := range []string{"a", "b"} {
		_, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, id)
		require.NoError(t, err)
	}
	sup := func(ec map[string]string) (string, error) { return ec["tenant"], nil }
	// Capacity 2 holds one branch key's active record and material at a
	// time, so alternating tenants unwraps again each time.
	kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyIDSupplier: sup, CacheCapacity: 2})
	before := e.calls("Decrypt")
	for range 3 {
		for _, id := range []string{"a", "b"} {
			require.NoError(t, kr.OnEncrypt(ctx, encMaterials(map[string]string{"tenant": id})))
		}
	}
	require.EqualValues(t, 6, e.calls("Decrypt")-before)
	// With room for both, the same work unwraps each once.
	roomy := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyIDSupplier: sup})
	before = e.calls("Decrypt")
	for range 3 {
		for _, id := range []string{"a", "b"} {
			require.NoError(t, roomy.OnEncrypt(ctx, encMaterials(map[string]string{"tenant": id})))
		}
	}
	require.EqualValues(t, 2, e.calls("Decrypt")-before)
}

func TestHierarchicalSupplierPerTenant(t *testing.T) {
	forEachHierStore(t, func(t *testing.T, e *kmsEnv, s keystore.Store) {
		ctx := context.Background()
		bk := newBranchKeys(t, e, s, e.key(""))
		keys := map[string]keystore.BranchKeyVersion{}
		for _, tenant := range []string{"tenant-a", "tenant-b"} {
			v, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "bk-"+tenant)
			require.NoError(t, err)
			keys[tenant] = v
		}
		sup := func(ec map[string]string) (string, error) {
			tenant, ok := ec["tenant"]
			if !ok {
				return "", errors.New("no tenant in the encryption context")
			}
			return "bk-" + tenant, nil
		}
		kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyIDSupplier: sup})

		msgs := map[string]*keyring.EncryptionMaterials{}
		for tenant, v := range keys {
			ec := map[string]string{"tenant": tenant, "patient": "p-1"}
			em := encMaterials(ec)
			require.NoError(t, kr.OnEncrypt(ctx, em))
			require.Equal(t, "bk-"+tenant, string(em.EncryptedDataKeys[0].ProviderInfo))
			branchKey, err := bk.Unwrap(ctx, v)
			require.NoError(t, err)
			dk, _ := openHierEDK(t, branchKey, "bk-"+tenant, em.EncryptedDataKeys[0], ec)
			require.Equal(t, []byte(em.DataKey), dk)
			msgs[tenant] = em

			dm := decMaterials(ec)
			require.NoError(t, kr.OnDecrypt(ctx, dm, em.EncryptedDataKeys))
			require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))
		}
		ka, err := bk.Unwrap(ctx, keys["tenant-a"])
		require.NoError(t, err)
		kb, err := bk.Unwrap(ctx, keys["tenant-b"])
		require.NoError(t, err)
		require.NotEqual(t, []byte(ka), []byte(kb))

		// Tenant a's message read with tenant b's context picks b's branch
		// key, which a's message does not name.
		err = kr.OnDecrypt(ctx, decMaterials(map[string]string{"tenant": "tenant-b", "patient": "p-1"}), msgs["tenant-a"].EncryptedDataKeys)
		require.ErrorIs(t, err, keyring.ErrNoMatchingKey)
		// A supplier failure stops both directions.
		require.ErrorContains(t, kr.OnEncrypt(ctx, encMaterials(map[string]string{"x": "y"})), "supplier")
		require.ErrorContains(t, kr.OnDecrypt(ctx, decMaterials(map[string]string{"x": "y"}), msgs["tenant-a"].EncryptedDataKeys), "supplier")
	})
}

// TestHierarchicalCanary pushes known branch key material, a PHI-like branch
// key id and PHI context values through every error path and every fmt verb:
// none may show up.
func TestHierarchicalCanary(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	s := hierStores[1].open(t)
	bk := newBranchKeys(t, e, s, e.key(""))
	const id = "patient-CANARY-MRN-000123"
	v1, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, id)
	require.NoError(t, err)
	clock := &fakeClock{t: time.Now()}
	kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: id, Now: clock.Now})
	em := encMaterials(phiContext)
	require.NoError(t, kr.OnEncrypt(ctx, em))
	branchKey, err := bk.Unwrap(ctx, v1)
	require.NoError(t, err)

	var outputs []string
	collect := func(err error) {
		require.Error(t, err)
		outputs = append(outputs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	}
	wrongEC := map[string]string{"tenant": "general-hospital", "patient": "CANARY-PHI-other"}
	collect(kr.OnDecrypt(ctx, decMaterials(wrongEC), em.EncryptedDataKeys))
	bad := bytes.Clone(em.EncryptedDataKeys[0].Ciphertext)
	bad[len(bad)-1] ^= 1
	collect(kr.OnDecrypt(ctx, decMaterials(phiContext), []keyring.EncryptedDataKey{{ProviderID: "aws-kms-hierarchy", ProviderInfo: []byte(id), Ciphertext: bad}}))
	collect(kr.OnDecrypt(ctx, decMaterials(phiContext), []keyring.EncryptedDataKey{{ProviderID: "aws-kms-hierarchy", ProviderInfo: []byte(id), Ciphertext: bad[:10]}}))
	moved := v1
	moved.CreatedAt = moved.CreatedAt.Add(time.Second)
	_, err = bk.Unwrap(ctx, moved)
	collect(err)
	_, err = testkeys.Custodian(t, bk).CreateBranchKey(ctx, id)
	collect(err)
	_, err = s.Active(ctx, id+"-missing")
	collect(err)
	missing := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: id + "-missing"})
	collect(missing.OnEncrypt(ctx, encMaterials(phiContext)))
	_, err = testkeys.Custodian(t, bk).Rotate(ctx, id)
	require.NoError(t, err)
	require.NoError(t, s.SetState(ctx, id, v1.Version, keystore.StateDecryptOnly, keystore.StateRetired))
	clock.Advance(hierTTL)
	collect(kr.OnDecrypt(ctx, decMaterials(phiContext), em.EncryptedDataKeys))

	for _, v := range []any{kr, bk, branchKey, *kr, *bk} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
			outputs = append(outputs, fmt.Sprintf(verb, v))
		}
	}
	j, err := json.Marshal(branchKey)
	require.NoError(t, err)
	outputs = append(outputs, string(j))

	forbidden := []string{
		string(branchKey), hex.EncodeToString(branchKey), strings.ToUpper(hex.EncodeToString(branchKey)),
		base64.StdEncoding.EncodeToString(branchKey), fmt.Sprint([]byte(branchKey)),
		id, "CANARY-PHI",
	}
	for _, out := range outputs {
		for _, f := range forbidden {
			require.NotContains(t, out, f)
		}
	}
}

// TestHierarchicalWrapsWithGivenVersion checks the derived key differs per
// salt: two EDKs of one data key under one branch key share no ciphertext.
func TestHierarchicalWrapsWithGivenVersion(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	bk := newBranchKeys(t, e, hierStores[0].open(t), e.key(""))
	v, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "k")
	require.NoError(t, err)
	kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "k"})
	dk := bytes.Repeat([]byte{1}, dataKeyLength)
	var cts [][]byte
	for range 2 {
		em := encMaterials(nil)
		em.DataKey = bytes.Clone(dk)
		require.NoError(t, kr.OnEncrypt(ctx, em))
		cts = append(cts, em.EncryptedDataKeys[0].Ciphertext)
	}
	require.Equal(t, cts[0][28:44], cts[1][28:44])
	require.Equal(t, uuidRaw(t, v.Version), cts[0][28:44])
	require.NotEqual(t, cts[0][44:76], cts[1][44:76])
}

// Retiring the replaced version during a rotation's propagation window (a
// compromise) moves writers to the new version: a process that reads the
// store now at once, one that had cached the old version within CacheTTL.
func TestRetiringDuringTheWindowMovesWriters(t *testing.T) {
	forEachHierStore(t, func(t *testing.T, e *kmsEnv, s keystore.Store) {
		ctx := context.Background()
		bk := newBranchKeys(t, e, s, e.key(""))
		v1, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-a")
		require.NoError(t, err)
		clock := &fakeClock{t: time.Now()}
		warm := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a", Now: clock.Now})
		require.NoError(t, warm.OnEncrypt(ctx, encMaterials(phiContext)))
		v2, err := testkeys.Custodian(t, bk).Rotate(ctx, "tenant-a")
		require.NoError(t, err)
		_, err = testkeys.Custodian(t, bk).SetMinDecryptionVersion(ctx, "tenant-a", v2.Version)
		require.NoError(t, err)

		fresh := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a"})
		em := encMaterials(phiContext)
		require.NoError(t, fresh.OnEncrypt(ctx, em))
		require.Equal(t, uuidRaw(t, v2.Version), em.EncryptedDataKeys[0].Ciphertext[28:44], "a fresh process writes under the new version at once")

		em = encMaterials(phiContext)
		require.NoError(t, warm.OnEncrypt(ctx, em))
		require.Equal(t, uuidRaw(t, v1.Version), em.EncryptedDataKeys[0].Ciphertext[28:44], "within its CacheTTL a warm process still has the old version")
		clock.Advance(hierTTL)
		em = encMaterials(phiContext)
		require.NoError(t, warm.OnEncrypt(ctx, em))
		require.Equal(t, uuidRaw(t, v2.Version), em.EncryptedDataKeys[0].Ciphertext[28:44], "after its CacheTTL it writes under the new version")
	})
}

// Two rotations inside one propagation window: writers stay on the version
// every process knows until the first new one's window has passed, then
// move to it until the second's has; WritesFrom says when each takes over.
func TestTwoRotationsInOneWindow(t *testing.T) {
	forEachHierStore(t, func(t *testing.T, e *kmsEnv, s keystore.Store) {
		ctx := context.Background()
		bk := newBranchKeys(t, e, s, e.key(""))
		v1, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-a")
		require.NoError(t, err)
		v2, err := testkeys.Custodian(t, bk).Rotate(ctx, "tenant-a")
		require.NoError(t, err)
		time.Sleep(5 * time.Millisecond) // distinct creation times
		v3, err := testkeys.Custodian(t, bk).Rotate(ctx, "tenant-a")
		require.NoError(t, err)
		writes := func(at time.Time) string {
			t.Helper()
			clock := &fakeClock{t: at}
			kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a", Now: clock.Now})
			em := encMaterials(phiContext)
			require.NoError(t, kr.OnEncrypt(ctx, em))
			return edkVersion(em.EncryptedDataKeys[0])
		}
		probe := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a"})
		require.Equal(t, v1.Version, writes(v3.CreatedAt), "straight after both rotations")
		require.Equal(t, v2.Version, writes(probe.WritesFrom(v2)), "once the first rotation's window has passed")
		require.Equal(t, v3.Version, writes(probe.WritesFrom(v3)), "once the second's has")
	})
}
