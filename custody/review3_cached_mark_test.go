package custody_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// The recovery mark reaches a running service through its cache: a
// keyring that cached the active version before the version was marked
// (custody.RecordRecoveredBranchKey, written by the recovering custodian
// in another process) goes on writing under it until its CacheTTL ends,
// then refuses with ErrVersionRecovered (as for a destroy, the cache
// lifetime bounds it; what it wrote meanwhile is under the material it
// unwrapped through KMS). The godoc of keyring.RecoveredVersionRecordKind
// and OPERATIONS.md ("never writes under a recovered version") do not
// state this bound.
func TestReview3RecoveryMarkReachesCachedKeyringAfterTTL(t *testing.T) {
	ctx := t.Context()
	e := newReviewEnv(t, "sqlite", "phicrypt-test")
	_, err := e.admin.CreateBranchKey(ctx, "key-a")
	require.NoError(t, err)
	const ttl = 300 * time.Millisecond
	h, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: e.svcKeys, BranchKeyID: "key-a", CacheTTL: ttl,
		PropagationWindow: 1, Escrow: e.esc})
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	enc, err := phicrypt.New(phicrypt.Config{Keyring: h})
	require.NoError(t, err)
	_, err = enc.Encrypt(ctx, []byte("before"), nil)
	require.NoError(t, err)

	v := e.versions(t, "key-a")[0]
	_, err = e.recs.PutRecord(ctx, custody.RecordRecoveredBranchKey, keyring.BranchKeyEscrowRecordName(v.BranchKeyID, v.Version), []byte{1}, 0)
	require.NoError(t, err)
	_, err = enc.Encrypt(ctx, []byte("within the cache lifetime"), nil)
	require.NoError(t, err, "the cached active version is written under until CacheTTL")
	time.Sleep(ttl + 100*time.Millisecond)
	_, err = enc.Encrypt(ctx, []byte("after"), nil)
	require.ErrorIs(t, err, keyring.ErrVersionRecovered)
}

// A recovery mark met while KMS is failing (a transient outage) is a
// refusal, not a reason to serve stale: with StaleIfError windows of an
// hour on both the hierarchical keyring and a phicrypt.Cache in front of
// it, once their entries expired, writing fails with ErrVersionRecovered
// (no stale active version, no stale data key), while a message written
// before still decrypts from the stale branch key.
func TestReview3RecoveryMarkNotPaperedOverByStaleIfError(t *testing.T) {
	ctx := t.Context()
	e := newReviewEnv(t, "sqlite", "phicrypt-test")
	_, err := e.admin.CreateBranchKey(ctx, "key-a")
	require.NoError(t, err)
	const ttl = 300 * time.Millisecond
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: e.store, Client: e.l.Client("svc", func(o *kms.Options) { o.RetryMaxAttempts = 1 }),
		KMSKeyARN: e.oldARN, LogicalStoreName: "phicrypt-test"})
	require.NoError(t, err)
	h, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "key-a", CacheTTL: ttl,
		StaleIfError: time.Hour, PropagationWindow: 1, Escrow: e.esc})
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	cache, err := phicrypt.NewCache(phicrypt.CacheConfig{MaxAge: ttl, MaxMessages: 1 << 20, StaleIfError: time.Hour})
	require.NoError(t, err)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: h, Cache: cache})
	require.NoError(t, err)
	ec := map[string]string{"ward": "4"}
	before, err := enc.Encrypt(ctx, []byte("before"), ec)
	require.NoError(t, err)

	v := e.versions(t, "key-a")[0]
	_, err = e.recs.PutRecord(ctx, custody.RecordRecoveredBranchKey, keyring.BranchKeyEscrowRecordName(v.BranchKeyID, v.Version), []byte{1}, 0)
	require.NoError(t, err)
	e.l.SetOutage(true)
	time.Sleep(ttl + 100*time.Millisecond)
	_, err = enc.Encrypt(ctx, []byte("after"), ec)
	require.ErrorIs(t, err, keyring.ErrVersionRecovered)
	pt, _, err := enc.Decrypt(ctx, before, ec)
	require.NoError(t, err)
	require.Equal(t, "before", string(pt))
}
