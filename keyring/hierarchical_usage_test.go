package keyring_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/storetest"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// addCountingStore counts AddUsage calls.
type addCountingStore struct {
	keystore.Store
	adds atomic.Int64
}

func (s *addCountingStore) AddUsage(ctx context.Context, id, version string, n uint64) (uint64, error) {
	s.adds.Add(1)
	return s.Store.AddUsage(ctx, id, version, n)
}

// edkVersion reads the branch key version out of an aws-kms-hierarchy EDK
// (bytes 28..44 of its ciphertext), as a canonical UUID.
func edkVersion(edk keyring.EncryptedDataKey) string {
	h := hex.EncodeToString(edk.Ciphertext[28:44])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// encryptMany runs goroutines × each OnEncrypt calls on each keyring and
// returns how many EDKs name each version, with one message per version.
func encryptMany(t *testing.T, krs []*keyring.Hierarchical, goroutines, each int) (map[string]int, map[string]*keyring.EncryptionMaterials) {
	t.Helper()
	var mu sync.Mutex
	counts := map[string]int{}
	samples := map[string]*keyring.EncryptionMaterials{}
	var wg sync.WaitGroup
	for _, kr := range krs {
		for range goroutines {
			wg.Go(func() {
				local := map[string]int{}
				localSamples := map[string]*keyring.EncryptionMaterials{}
				for range each {
					em := encMaterials(phiContext)
					if !assert.NoError(t, kr.OnEncrypt(context.Background(), em)) {
						return
					}
					v := edkVersion(em.EncryptedDataKeys[0])
					local[v]++
					localSamples[v] = em
				}
				mu.Lock()
				defer mu.Unlock()
				for v, n := range local {
					counts[v] += n
					samples[v] = localSamples[v]
				}
			})
		}
	}
	wg.Wait()
	return counts, samples
}

// TestHierarchicalUsageCap: 8 goroutines × 1000 messages under a cap of 100
// uses per version, reserved 10 at a time: no version is used more than 100
// times (counting the EDKs that name it), the store's counts are upper
// bounds and never past the cap (one process knows every reservation), and
// every message still decrypts.
func TestHierarchicalUsageCap(t *testing.T) {
	forEachHierStore(t, func(t *testing.T, e *kmsEnv, s keystore.Store) {
		ctx := context.Background()
		bk := newBranchKeys(t, e, s, e.key(""))
		_, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-a")
		require.NoError(t, err)
		kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a", MaxUsesPerVersion: 100, UsageBlock: 10})

		counts, samples := encryptMany(t, []*keyring.Hierarchical{kr}, 8, 1000)
		total := 0
		for v, n := range counts {
			require.LessOrEqual(t, n, 100, "version %s", v)
			total += n
		}
		require.Equal(t, 8000, total)
		require.GreaterOrEqual(t, len(counts), 80)

		vs := storetest.RequireOneActive(t, s, "tenant-a")
		stored := map[string]uint64{}
		for _, v := range vs {
			require.LessOrEqual(t, v.Usage, uint64(100), "version %s", v.Version)
			stored[v.Version] = v.Usage
		}
		for v, n := range counts {
			require.GreaterOrEqual(t, stored[v], uint64(n), "the stored count bounds real use of %s", v)
		}

		fresh := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a"})
		for _, em := range samples {
			dm := decMaterials(phiContext)
			require.NoError(t, fresh.OnDecrypt(ctx, dm, em.EncryptedDataKeys))
			require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))
		}
	})
}

// TestHierarchicalUsageCapTwoKeyrings: two keyrings (two processes' worth)
// over one store reserve independently; stored counts may overshoot the
// cap, but the uses handed out never do.
func TestHierarchicalUsageCapTwoKeyrings(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	s := hierStores[1].open(t)
	bk := newBranchKeys(t, e, s, e.key(""))
	_, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-a")
	require.NoError(t, err)
	// A cap of 100 in blocks of 8 leaves each keyring a fair chance at
	// every new version: with fewer uses per version, a keyring starved of
	// CPU on a loaded machine saw eight versions in a row used up by the
	// other, the bound after which it gives up (ErrVersionExhausted).
	cfg := keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a", MaxUsesPerVersion: 100, UsageBlock: 8}
	krs := []*keyring.Hierarchical{newHierarchical(t, cfg), newHierarchical(t, cfg)}
	counts, _ := encryptMany(t, krs, 4, 300)
	total := 0
	for v, n := range counts {
		require.LessOrEqual(t, n, 100, "version %s", v)
		total += n
	}
	require.Equal(t, 2400, total)
	storetest.RequireOneActive(t, s, "tenant-a")
}

// TestHierarchicalUsageBlocks: uses are reserved a block per store write,
// concurrent exhausters make one write, and no counting means no writes.
func TestHierarchicalUsageBlocks(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	s := &addCountingStore{Store: hierStores[1].open(t)}
	bk := newBranchKeys(t, e, s, e.key(""))
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		_, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, id)
		require.NoError(t, err)
	}
	active := func(id string) keystore.BranchKeyVersion {
		v, err := s.Active(ctx, id)
		require.NoError(t, err)
		return v
	}

	kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "a", MaxUsesPerVersion: 1000, UsageBlock: 100})
	for range 250 {
		require.NoError(t, kr.OnEncrypt(ctx, encMaterials(phiContext)))
	}
	require.EqualValues(t, 3, s.adds.Load())
	require.EqualValues(t, 300, active("a").Usage)

	s.adds.Store(0)
	kr = newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "b", MaxUsesPerVersion: 1000, UsageBlock: 100})
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			<-start
			assert.NoError(t, kr.OnEncrypt(ctx, encMaterials(phiContext)))
		})
	}
	close(start)
	wg.Wait()
	require.EqualValues(t, 1, s.adds.Load(), "single-flight reservation")
	require.EqualValues(t, 100, active("b").Usage)

	s.adds.Store(0)
	kr = newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "c"})
	for range 10 {
		require.NoError(t, kr.OnEncrypt(ctx, encMaterials(phiContext)))
	}
	require.Zero(t, s.adds.Load(), "MaxUsesPerVersion 0 writes nothing")
	require.Zero(t, active("c").Usage)

	// The default block is 1024, or the cap if smaller.
	kr = newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "d", MaxUsesPerVersion: 50})
	require.NoError(t, kr.OnEncrypt(ctx, encMaterials(phiContext)))
	require.EqualValues(t, 50, active("d").Usage)
	kr = newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "e", MaxUsesPerVersion: keyring.MaxUsesPerVersionLimit})
	require.NoError(t, kr.OnEncrypt(ctx, encMaterials(phiContext)))
	require.EqualValues(t, keyring.DefaultUsageBlock, active("e").Usage)
}

// TestHierarchicalUsageStaleActive: a process still encrypting under a
// version another rotated keeps counting it (decrypt-only versions are
// counted); once that version is retired, the next reservation moves it to
// the active version without an error.
func TestHierarchicalUsageStaleActive(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	s := hierStores[0].open(t)
	bk := newBranchKeys(t, e, s, e.key(""))
	v1, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-a")
	require.NoError(t, err)
	kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a", MaxUsesPerVersion: 100, UsageBlock: 10})
	encrypt := func() string {
		em := encMaterials(phiContext)
		require.NoError(t, kr.OnEncrypt(ctx, em))
		return edkVersion(em.EncryptedDataKeys[0])
	}
	require.Equal(t, v1.Version, encrypt())
	v2, err := testkeys.Custodian(t, bk).Rotate(ctx, "tenant-a")
	require.NoError(t, err)
	for range 15 { // past the first block: a reservation on the decrypt-only v1
		require.Equal(t, v1.Version, encrypt())
	}
	require.EqualValues(t, 20, usageOf(t, s, "tenant-a", v1.Version))
	require.NoError(t, s.SetState(ctx, "tenant-a", v1.Version, keystore.StateDecryptOnly, keystore.StateRetired))
	got := map[string]int{}
	for range 10 {
		got[encrypt()]++
	}
	require.Equal(t, map[string]int{v1.Version: 4, v2.Version: 6}, got, "the rest of the block, then the active version")
	require.EqualValues(t, 20, usageOf(t, s, "tenant-a", v1.Version))
	require.EqualValues(t, 10, usageOf(t, s, "tenant-a", v2.Version))
	require.Len(t, storetest.RequireOneActive(t, s, "tenant-a"), 2, "no rotation: the branch key had moved on")
}

// decryptOnlyKMS hides GenerateDataKeyWithoutPlaintext: it cannot make
// branch key versions.
type decryptOnlyKMS struct{ keyring.KMSClient }

// TestHierarchicalUsageExhausted: a keyring that cannot make versions
// refuses to encrypt past the cap, with ErrVersionExhausted, and says so
// without the branch key id.
func TestHierarchicalUsageExhausted(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	s := hierStores[1].open(t)
	arn := e.key("")
	const id = "patient-CANARY-MRN-000777"
	v1, err := testkeys.Custodian(t, newBranchKeys(t, e, s, arn)).CreateBranchKey(ctx, id)
	require.NoError(t, err)
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: s, Client: decryptOnlyKMS{e.client("svc")}, KMSKeyARN: arn, LogicalStoreName: hierStoreName})
	require.NoError(t, err)
	kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: id, MaxUsesPerVersion: 5, UsageBlock: 2})
	for range 5 {
		require.NoError(t, kr.OnEncrypt(ctx, encMaterials(phiContext)))
	}
	for range 2 {
		em := encMaterials(phiContext)
		err = kr.OnEncrypt(ctx, em)
		require.ErrorIs(t, err, keyring.ErrVersionExhausted)
		require.Nil(t, em.DataKey)
		require.Empty(t, em.EncryptedDataKeys)
		msg := fmt.Sprintf("%v %+v %#v", err, err, err)
		require.NotContains(t, msg, "CANARY")
		require.Contains(t, msg, "GenerateDataKeyWithoutPlaintext")
	}
	_, err = kr.AcquireActive(ctx, id, 1)
	require.ErrorIs(t, err, keyring.ErrVersionExhausted)
	vs := storetest.RequireOneActive(t, s, id)
	require.Len(t, vs, 1)
	require.Equal(t, v1.Version, vs[0].Version)
	require.EqualValues(t, 5, vs[0].Usage)
}

func TestNewHierarchicalRefusesBadUsageConfig(t *testing.T) {
	e := newKMSEnv(t, kmsmock.Config{})
	bk := newBranchKeys(t, e, hierStores[0].open(t), e.key(""))
	base := keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "a", CacheTTL: time.Minute}
	for name, edit := range map[string]func(*keyring.HierarchicalConfig){
		"cap past 2^32":       func(c *keyring.HierarchicalConfig) { c.MaxUsesPerVersion = keyring.MaxUsesPerVersionLimit + 1 },
		"block past the cap":  func(c *keyring.HierarchicalConfig) { c.MaxUsesPerVersion, c.UsageBlock = 10, 11 },
		"block without a cap": func(c *keyring.HierarchicalConfig) { c.UsageBlock = 10 },
	} {
		cfg := base
		edit(&cfg)
		_, err := keyring.NewHierarchical(cfg)
		require.Error(t, err, name)
	}
	cfg := base
	cfg.MaxUsesPerVersion, cfg.UsageBlock = keyring.MaxUsesPerVersionLimit, keyring.MaxUsesPerVersionLimit
	_, err := keyring.NewHierarchical(cfg)
	require.NoError(t, err)
}

// Uses reserved for a version survive the active-version entry being
// evicted or expiring: 30 messages under a cap of 1000 make one
// reservation and no rotation (found in review: every reload used to
// reserve a new block and throw the old one away).
func TestReservedUsesSurviveReloads(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range map[string]keyring.HierarchicalConfig{
		"evicted": {CacheCapacity: 1},
		"expired": {CacheTTL: time.Minute},
	} {
		t.Run(name, func(t *testing.T) {
			e := newKMSEnv(t, kmsmock.Config{})
			s := &addCountingStore{Store: hierStores[1].open(t)}
			bk := newBranchKeys(t, e, s, e.key(""))
			_, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "a")
			require.NoError(t, err)
			var now atomic.Int64
			now.Store(time.Now().UnixNano())
			cfg.BranchKeys, cfg.BranchKeyID, cfg.MaxUsesPerVersion, cfg.UsageBlock = bk, "a", 1000, 100
			cfg.Now = func() time.Time { return time.Unix(0, now.Load()) }
			kr := newHierarchical(t, cfg)
			for range 30 {
				require.NoError(t, kr.OnEncrypt(ctx, encMaterials(phiContext)))
				now.Add(int64(61 * time.Second)) // past the one-minute TTL
			}
			vs, err := s.List(ctx, "a")
			require.NoError(t, err)
			require.Len(t, vs, 1, "no rotation")
			require.Equal(t, int64(1), s.adds.Load(), "one reservation")
			require.Equal(t, uint64(100), vs[0].Usage)
		})
	}
}
