package custody_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/sqlite"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"
)

// rotationSetup is branch keys in a SQLite store, wrapped by kmsmock, on a
// clock the test moves (now, in Unix nanoseconds).
func rotationSetup(t *testing.T) (keystore.Store, *atomic.Int64, *keyring.BranchKeys) {
	t.Helper()
	ctx := context.Background()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	client := l.Client("custodian")
	key, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	store, err := sqlite.Open(ctx, t.TempDir()+"/keys.db")
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	now := new(atomic.Int64)
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: client,
		KMSKeyARN: aws.ToString(key.KeyMetadata.Arn), LogicalStoreName: "rotation-test", Now: clock})
	require.NoError(t, err)
	return store, now, bk
}

// RotateDue rotates exactly the keys whose active version is too old, once
// each, even with several processes running it at the same time.
func TestRotateDue(t *testing.T) {
	ctx := context.Background()
	store, now, bk := rotationSetup(t)
	for _, id := range []string{"tenant-a", "tenant-b", "tenant-c"} {
		_, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, id)
		require.NoError(t, err)
	}
	policy := custody.RotationPolicy{MaxAge: 7 * 24 * time.Hour}

	rep, err := testkeys.Custodian(t, bk).RotateDue(ctx, policy)
	require.NoError(t, err)
	require.Equal(t, custody.RotationReport{Checked: 3}, rep, "nothing is due yet")

	now.Add(int64(10 * 24 * time.Hour))
	_, err = testkeys.Custodian(t, bk).Rotate(ctx, "tenant-b") // rotated on demand: fresh again
	require.NoError(t, err)

	// Four processes' worth of custodian jobs at once.
	var wg sync.WaitGroup
	var rotated, byOther atomic.Int64
	for range 4 {
		wg.Go(func() {
			rep, err := testkeys.Custodian(t, bk).RotateDue(ctx, policy)
			require.NoError(t, err)
			rotated.Add(int64(rep.Rotated))
			byOther.Add(int64(rep.RotatedByOther))
		})
	}
	wg.Wait()
	require.Equal(t, int64(2), rotated.Load(), "tenant-a and tenant-c are rotated exactly once")
	for id, want := range map[string]int{"tenant-a": 2, "tenant-b": 2, "tenant-c": 2} {
		versions, err := store.List(ctx, id)
		require.NoError(t, err)
		require.Len(t, versions, want, id)
		active := 0
		for _, v := range versions {
			if v.State == keystore.StateActive {
				active++
			}
		}
		require.Equal(t, 1, active, id)
	}
	rep, err = testkeys.Custodian(t, bk).RotateDue(ctx, policy)
	require.NoError(t, err)
	require.Equal(t, 0, rep.Rotated, "a second run finds nothing due")

	_, err = testkeys.Custodian(t, bk).RotateDue(ctx, custody.RotationPolicy{})
	require.Error(t, err)
}

// RotateDue with MaxMessages rotates the keys whose active version has been
// used that many times, alone or with MaxAge (whichever comes first).
func TestRotateDueByMessages(t *testing.T) {
	ctx := context.Background()
	store, now, bk := rotationSetup(t)
	actives := map[string]string{}
	for id, uses := range map[string]uint64{"tenant-a": 99, "tenant-b": 100, "tenant-c": 250, "tenant-d": 0} {
		v, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, id)
		require.NoError(t, err)
		actives[id] = v.Version
		if uses > 0 {
			_, err = store.AddUsage(ctx, id, v.Version, uses)
			require.NoError(t, err)
		}
	}
	rotated := func(id string) bool {
		v, err := store.Active(ctx, id)
		require.NoError(t, err)
		return v.Version != actives[id]
	}

	rep, err := testkeys.Custodian(t, bk).RotateDue(ctx, custody.RotationPolicy{MaxMessages: 100})
	require.NoError(t, err)
	require.Equal(t, custody.RotationReport{Checked: 4, Rotated: 2}, rep)
	require.False(t, rotated("tenant-a"))
	require.True(t, rotated("tenant-b"), "Usage == MaxMessages is due")
	require.True(t, rotated("tenant-c"))
	require.False(t, rotated("tenant-d"))
	// The new versions start at 0: nothing more is due.
	rep, err = testkeys.Custodian(t, bk).RotateDue(ctx, custody.RotationPolicy{MaxMessages: 100})
	require.NoError(t, err)
	require.Zero(t, rep.Rotated)

	// Both limits, two days on: age catches tenant-b, tenant-c (their
	// versions from the first run are two days old) and tenant-d; tenant-a,
	// rotated just now, is too young and too little used.
	now.Add(int64(48 * time.Hour))
	_, err = testkeys.Custodian(t, bk).Rotate(ctx, "tenant-a")
	require.NoError(t, err)
	v, err := store.Active(ctx, "tenant-a")
	require.NoError(t, err)
	actives["tenant-a"] = v.Version
	rep, err = testkeys.Custodian(t, bk).RotateDue(ctx, custody.RotationPolicy{MaxAge: 24 * time.Hour, MaxMessages: 1000})
	require.NoError(t, err)
	require.Equal(t, custody.RotationReport{Checked: 4, Rotated: 3}, rep)
	require.False(t, rotated("tenant-a"))
	require.True(t, rotated("tenant-d"))

	for _, bad := range []custody.RotationPolicy{{}, {MaxAge: -time.Hour}, {MaxAge: -time.Hour, MaxMessages: 5}} {
		_, err = testkeys.Custodian(t, bk).RotateDue(ctx, bad)
		require.Error(t, err)
	}
}

// The minimum decryption version retires every older decrypt-only
// version, once, and leaves it and newer ones alone.
func TestSetMinDecryptionVersion(t *testing.T) {
	ctx := context.Background()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	client := l.Client("custodian")
	key, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	store, err := keystore.OpenFileStore(t.TempDir())
	require.NoError(t, err)
	defer store.Close()
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: client,
		KMSKeyARN: aws.ToString(key.KeyMetadata.Arn), LogicalStoreName: "min-version-test"})
	require.NoError(t, err)
	v1, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant")
	require.NoError(t, err)
	v2, err := testkeys.Custodian(t, bk).Rotate(ctx, "tenant")
	require.NoError(t, err)
	v3, err := testkeys.Custodian(t, bk).Rotate(ctx, "tenant")
	require.NoError(t, err)
	v4, err := testkeys.Custodian(t, bk).Rotate(ctx, "tenant")
	require.NoError(t, err)

	n, err := testkeys.Custodian(t, bk).SetMinDecryptionVersion(ctx, "tenant", v3.Version)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	want := map[string]keystore.State{v1.Version: keystore.StateRetired, v2.Version: keystore.StateRetired,
		v3.Version: keystore.StateDecryptOnly, v4.Version: keystore.StateActive}
	all, err := store.List(ctx, "tenant")
	require.NoError(t, err)
	for _, v := range all {
		require.Equal(t, want[v.Version], v.State, v.Version)
	}
	n, err = testkeys.Custodian(t, bk).SetMinDecryptionVersion(ctx, "tenant", v3.Version)
	require.NoError(t, err)
	require.Zero(t, n, "a second run retires nothing")
	_, err = testkeys.Custodian(t, bk).SetMinDecryptionVersion(ctx, "tenant", v1.Version)
	require.ErrorIs(t, err, keyring.ErrInvalid, "a retired version cannot be the minimum")
	_, err = testkeys.Custodian(t, bk).SetMinDecryptionVersion(ctx, "tenant", keystore.NewBranchKeyVersion())
	require.ErrorIs(t, err, keystore.ErrNotFound)
	n, err = testkeys.Custodian(t, bk).SetMinDecryptionVersion(ctx, "tenant", v4.Version)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the active version as minimum retires every decrypt-only one")
}

// unreadableKey is a store in which one branch key cannot be read (a key of
// a layout this phicrypt does not read, in a table shared with AWS, say).
type unreadableKey struct {
	keystore.Store
	id string
}

func (s unreadableKey) Active(ctx context.Context, id string) (keystore.BranchKeyVersion, error) {
	if id == s.id {
		return keystore.BranchKeyVersion{}, keystore.ErrUnsupportedSchema
	}
	return s.Store.Active(ctx, id)
}

// RotateDue carries on past a key it cannot read: the others rotate, the
// failure is counted and returned.
func TestRotateDueCarriesOnPastAnUnreadableKey(t *testing.T) {
	ctx := context.Background()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	client := l.Client("custodian")
	key, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	store, err := keystore.OpenFileStore(t.TempDir())
	require.NoError(t, err)
	defer store.Close()
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	cfg := keyring.BranchKeysConfig{Store: unreadableKey{store, "tenant-b"}, Client: client,
		KMSKeyARN: aws.ToString(key.KeyMetadata.Arn), LogicalStoreName: "rotation-test", Now: clock}
	c, err := custody.NewBranchKeys(cfg)
	require.NoError(t, err)
	for _, id := range []string{"tenant-a", "tenant-b", "tenant-c"} {
		_, err := c.CreateBranchKey(ctx, id)
		require.NoError(t, err)
	}
	now.Add(int64(10 * 24 * time.Hour))
	rep, err := c.RotateDue(ctx, custody.RotationPolicy{MaxAge: 7 * 24 * time.Hour})
	require.ErrorIs(t, err, keystore.ErrUnsupportedSchema)
	require.Equal(t, custody.RotationReport{Checked: 3, Rotated: 2, Failed: 1}, rep)
}
