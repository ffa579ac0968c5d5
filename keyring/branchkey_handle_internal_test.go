package keyring

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/sqlite"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"
)

// TestBranchKeyReleaseThenWipe: material the cache lets go of while a
// BranchKey holds it stays intact until the hold ends, and is wiped then;
// a new acquire gets fresh material.
func TestBranchKeyReleaseThenWipe(t *testing.T) {
	ctx := context.Background()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	client := l.Client("svc")
	out, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keys.db"))
	require.NoError(t, err)
	defer s.Close()
	bk, err := NewBranchKeys(BranchKeysConfig{Store: s, Client: client, KMSKeyARN: *out.KeyMetadata.Arn, LogicalStoreName: "handle-test"})
	require.NoError(t, err)
	_, err = createBranchKey(ctx, bk, "tenant-a")
	require.NoError(t, err)
	h, err := NewHierarchical(HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a", CacheTTL: time.Minute})
	require.NoError(t, err)

	k, err := h.AcquireActive(ctx, "tenant-a", 1)
	require.NoError(t, err)
	ent := k.ent
	zero := make([]byte, branchKeyLength)
	require.False(t, bytes.Equal(ent.key, zero))

	h.cache.expire(ent) // as an eviction or expiry would
	require.False(t, bytes.Equal(ent.key, zero), "not wiped under a hold")
	require.NoError(t, k.DeriveKey(make([]byte, 32), []byte("x")))
	k2, err := h.AcquireActive(ctx, "tenant-a", 1)
	require.NoError(t, err)
	require.NotSame(t, ent, k2.ent, "a dropped entry is not handed out again")

	k.Release()
	require.True(t, bytes.Equal(ent.key, zero), "wiped when the last hold ends")
	k.Release()
	require.False(t, bytes.Equal(k2.ent.key, zero))
	k2.Release()
	require.False(t, bytes.Equal(k2.ent.key, zero), "a cached entry is not wiped on release")
}

// Item 5 of the hot-path issue: an unwrapped branch key past CacheTTL is
// wiped within a bounded time (a timer at expiry, or at the end of the
// stale window) though nothing asks for it again; Close wipes the rest.
func TestExpiredBranchKeyIsWipedWithoutFurtherUse(t *testing.T) {
	ctx := context.Background()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	client := l.Client("svc")
	out, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	s, err := keystore.OpenFileStore(t.TempDir())
	require.NoError(t, err)
	defer s.Close()
	bk, err := NewBranchKeys(BranchKeysConfig{Store: s, Client: client, KMSKeyARN: *out.KeyMetadata.Arn, LogicalStoreName: "wipe-test"})
	require.NoError(t, err)
	_, err = createBranchKey(ctx, bk, "tenant-a")
	require.NoError(t, err)
	_, err = createBranchKey(ctx, bk, "tenant-b")
	require.NoError(t, err)
	zero := make([]byte, branchKeyLength)

	const ttl = 600 * time.Millisecond
	for _, stale := range []time.Duration{0, 600 * time.Millisecond} {
		h, err := NewHierarchical(HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a", CacheTTL: ttl, StaleIfError: stale})
		require.NoError(t, err)
		start := time.Now()
		k, err := h.AcquireActive(ctx, "tenant-a", 1)
		require.NoError(t, err)
		key := k.ent.key
		k.Release()
		time.Sleep(ttl + stale - 400*time.Millisecond)
		require.False(t, bytes.Equal(key, zero) && time.Since(start) < ttl+stale, "stale %v: wiped before its time", stale)
		time.Sleep(time.Until(start.Add(ttl + stale + 500*time.Millisecond)))
		require.True(t, bytes.Equal(key, zero), "stale %v: an expired branch key is still in memory", stale)
		require.Zero(t, h.cache.size(), "stale %v: expired entries left in the cache", stale)
		require.NoError(t, h.Close())
	}

	h, err := NewHierarchical(HierarchicalConfig{BranchKeys: bk, BranchKeyIDSupplier: func(ec map[string]string) (string, error) { return ec["t"], nil }, CacheTTL: time.Hour})
	require.NoError(t, err)
	var keys []Secret
	for _, id := range []string{"tenant-a", "tenant-b"} {
		k, err := h.AcquireActive(ctx, id, 1)
		require.NoError(t, err)
		keys = append(keys, k.ent.key)
		k.Release()
	}
	require.NoError(t, h.Close())
	for _, key := range keys {
		require.True(t, bytes.Equal(key, zero), "Close left a branch key in memory")
	}
	_, err = h.AcquireActive(ctx, "tenant-a", 1)
	require.ErrorIs(t, err, ErrClosed)
}

// createBranchKey makes branch key id as a custodian would (custody cannot
// be imported by keyring's own tests).
func createBranchKey(ctx context.Context, bk *BranchKeys, id string) (keystore.BranchKeyVersion, error) {
	v, err := bk.maker().NewVersion(ctx, id)
	if err != nil {
		return v, err
	}
	return v, bk.cfg.Store.Create(ctx, v)
}
