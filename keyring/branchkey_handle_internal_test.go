package keyring

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/stretchr/testify/require"
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
	s, err := OpenSQLiteStore(ctx, filepath.Join(t.TempDir(), "keys.db"))
	require.NoError(t, err)
	defer s.Close()
	bk, err := NewBranchKeys(BranchKeysConfig{Store: s, Client: client, KMSKeyARN: *out.KeyMetadata.Arn, LogicalStoreName: "handle-test"})
	require.NoError(t, err)
	_, err = bk.CreateBranchKey(ctx, "tenant-a")
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
