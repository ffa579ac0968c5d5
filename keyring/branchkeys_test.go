package keyring_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/sqlite"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"
)

// hierStore opens one of the embedded stores in a fresh temporary directory.
type hierStore struct {
	name string
	open func(t *testing.T) keystore.Store
}

var hierStores = []hierStore{
	{"file", func(t *testing.T) keystore.Store {
		s, err := keystore.OpenFileStore(t.TempDir())
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"sqlite", func(t *testing.T) keystore.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "branch-keys.db"))
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// forEachHierStore runs f once per store kind, each against its own kmsmock.
func forEachHierStore(t *testing.T, f func(t *testing.T, e *kmsEnv, s keystore.Store)) {
	for _, hs := range hierStores {
		t.Run(hs.name, func(t *testing.T) {
			f(t, newKMSEnv(t, kmsmock.Config{}), hs.open(t))
		})
	}
}

const hierStoreName = "phicrypt-test-store"

func newBranchKeys(t *testing.T, e *kmsEnv, s keystore.Store, arn string) *keyring.BranchKeys {
	t.Helper()
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: s, Client: e.client("svc"), KMSKeyARN: arn, LogicalStoreName: hierStoreName})
	require.NoError(t, err)
	return bk
}

func TestNewBranchKeysRefusesBadConfig(t *testing.T) {
	e := newKMSEnv(t, kmsmock.Config{})
	s := hierStores[0].open(t)
	arn := "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	for name, cfg := range map[string]keyring.BranchKeysConfig{
		"no store":      {Client: e.client("svc"), KMSKeyARN: arn, LogicalStoreName: "x"},
		"no client":     {Store: s, KMSKeyARN: arn, LogicalStoreName: "x"},
		"alias":         {Store: s, Client: e.client("svc"), KMSKeyARN: "arn:aws:kms:us-east-1:111122223333:alias/a", LogicalStoreName: "x"},
		"bare key id":   {Store: s, Client: e.client("svc"), KMSKeyARN: "1234abcd-12ab-34cd-56ef-1234567890ab", LogicalStoreName: "x"},
		"no store name": {Store: s, Client: e.client("svc"), KMSKeyARN: arn},
	} {
		_, err := keyring.NewBranchKeys(cfg)
		require.Error(t, err, name)
	}
}

func TestBranchKeysCreateRotateUnwrap(t *testing.T) {
	forEachHierStore(t, func(t *testing.T, e *kmsEnv, s keystore.Store) {
		ctx := context.Background()
		arn := e.key("")
		bk := newBranchKeys(t, e, s, arn)

		v1, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-a")
		require.NoError(t, err)
		require.Equal(t, keystore.StateActive, v1.State)
		require.Equal(t, arn, v1.KMSKeyARN)
		require.EqualValues(t, 1, e.calls("GenerateDataKeyWithoutPlaintext"))
		active, err := s.Active(ctx, "tenant-a")
		require.NoError(t, err)
		require.Equal(t, v1.Version, active.Version)

		_, err = testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-a")
		require.ErrorIs(t, err, keystore.ErrExists)

		k1, err := bk.Unwrap(ctx, active)
		require.NoError(t, err)
		require.Len(t, k1, 32)

		v2, err := testkeys.Custodian(t, bk).Rotate(ctx, "tenant-a")
		require.NoError(t, err)
		require.NotEqual(t, v1.Version, v2.Version)
		vs, err := s.List(ctx, "tenant-a")
		require.NoError(t, err)
		require.Len(t, vs, 2)
		require.Equal(t, keystore.StateDecryptOnly, vs[0].State)
		require.Equal(t, keystore.StateActive, vs[1].State)

		k2, err := bk.Unwrap(ctx, vs[1])
		require.NoError(t, err)
		require.NotEqual(t, []byte(k1), []byte(k2))
		again, err := bk.Unwrap(ctx, vs[0])
		require.NoError(t, err)
		require.Equal(t, []byte(k1), []byte(again))

		_, err = testkeys.Custodian(t, bk).Rotate(ctx, "no-such-key")
		require.ErrorIs(t, err, keystore.ErrNotFound)
	})
}

// TestBranchKeysEncryptionContext checks the context KMS saw when the version
// was made (branch-key-store.md "Encryption Context", DECRYPT_ONLY form).
func TestBranchKeysEncryptionContext(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	s := hierStores[0].open(t)
	arn := e.key("")
	created := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("x", 3600))
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: s, Client: e.client("svc"), KMSKeyARN: arn,
		LogicalStoreName: hierStoreName, Now: func() time.Time { return created }})
	require.NoError(t, err)
	v, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-a")
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"branch-key-id":     "tenant-a",
		"type":              "branch:version:" + v.Version,
		"create-time":       "2026-03-04T04:06:07.123456Z",
		"tablename":         hierStoreName,
		"kms-arn":           arn,
		"hierarchy-version": "1",
	}, bk.EncryptionContext(v))

	var gen []kmsmock.TrailEvent
	for _, ev := range e.l.Trail() {
		if ev.Operation == "GenerateDataKeyWithoutPlaintext" {
			gen = append(gen, ev)
		}
	}
	require.Len(t, gen, 1)
	require.Equal(t, arn, gen[0].KeyARN)
	var keys []string
	for k := range gen[0].EncryptionContext {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	require.Equal(t, []string{"branch-key-id", "create-time", "hierarchy-version", "kms-arn", "tablename", "type"}, keys)

	// The context binds the store name and the record: a version read under
	// another logical store name, or with its id changed, does not unwrap.
	other, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: s, Client: e.client("svc"), KMSKeyARN: arn, LogicalStoreName: "another-store"})
	require.NoError(t, err)
	_, err = other.Unwrap(ctx, v)
	require.Error(t, err)
	moved := v
	moved.BranchKeyID = "tenant-b"
	_, err = bk.Unwrap(ctx, moved)
	require.Error(t, err)
	stale := v
	stale.CreatedAt = stale.CreatedAt.Add(time.Microsecond)
	_, err = bk.Unwrap(ctx, stale)
	require.Error(t, err)
	_, err = bk.Unwrap(ctx, v)
	require.NoError(t, err)
}

// decryptOnlyClient hides GenerateDataKeyWithoutPlaintext, as a service
// principal's narrowed client might.
type decryptOnlyClient struct{ c *kms.Client }

func (d decryptOnlyClient) GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, o ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	return d.c.GenerateDataKey(ctx, in, o...)
}
func (d decryptOnlyClient) Encrypt(ctx context.Context, in *kms.EncryptInput, o ...func(*kms.Options)) (*kms.EncryptOutput, error) {
	return d.c.Encrypt(ctx, in, o...)
}
func (d decryptOnlyClient) Decrypt(ctx context.Context, in *kms.DecryptInput, o ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	return d.c.Decrypt(ctx, in, o...)
}

func TestBranchKeysDecryptOnlyClient(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	s := hierStores[0].open(t)
	arn := e.key("")
	v, err := testkeys.Custodian(t, newBranchKeys(t, e, s, arn)).CreateBranchKey(ctx, "tenant-a")
	require.NoError(t, err)
	ro, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: s, Client: decryptOnlyClient{e.client("svc")}, KMSKeyARN: arn, LogicalStoreName: hierStoreName})
	require.NoError(t, err)
	_, err = testkeys.Custodian(t, ro).CreateBranchKey(ctx, "tenant-b")
	require.ErrorContains(t, err, "GenerateDataKeyWithoutPlaintext")
	_, err = ro.Unwrap(ctx, v)
	require.NoError(t, err)
}

// racingStore lets another rotation win between Rotate's read and its write.
type racingStore struct {
	keystore.Store
	once   sync.Once
	before func()
}

func (r *racingStore) Rotate(ctx context.Context, id, expected string, next keystore.BranchKeyVersion) error {
	r.once.Do(r.before)
	return r.Store.Rotate(ctx, id, expected, next)
}

func TestBranchKeysRotateConflict(t *testing.T) {
	forEachHierStore(t, func(t *testing.T, e *kmsEnv, s keystore.Store) {
		ctx := context.Background()
		arn := e.key("")
		other := newBranchKeys(t, e, s, arn)
		_, err := testkeys.Custodian(t, other).CreateBranchKey(ctx, "tenant-a")
		require.NoError(t, err)

		var winner keystore.BranchKeyVersion
		rs := &racingStore{Store: s, before: func() {
			var err error
			winner, err = testkeys.Custodian(t, other).Rotate(ctx, "tenant-a")
			require.NoError(t, err)
		}}
		loser := newBranchKeys(t, e, rs, arn)
		got, err := testkeys.Custodian(t, loser).Rotate(ctx, "tenant-a")
		require.ErrorIs(t, err, keystore.ErrConflict)
		require.ErrorContains(t, err, "another process rotated")
		require.Equal(t, winner.Version, got.Version)

		vs, err := s.List(ctx, "tenant-a")
		require.NoError(t, err)
		require.Len(t, vs, 2, "the losing version is not stored")
		n := 0
		for _, v := range vs {
			if v.State == keystore.StateActive {
				n++
				require.Equal(t, winner.Version, v.Version)
			}
		}
		require.Equal(t, 1, n)
		require.False(t, errors.Is(err, keystore.ErrNotFound))
	})
}
