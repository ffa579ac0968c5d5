package keyring_test

import (
	"context"
	"testing"

	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/stretchr/testify/require"
)

// TestDestroyedVersions: a destroyed version (and a destroyed key) fails
// with ErrKeyDestroyed, distinct from ErrVersionRetired and ErrNotFound;
// Versions lists tombstones; Forget makes the next use read the store and
// KMS again, so a destroy takes effect in this process at once.
func TestDestroyedVersions(t *testing.T) {
	ctx := context.Background()
	e := testkeys.New(t, testkeys.Options{})
	v1 := e.Create(t, "patient-A")
	custodian := testkeys.Custodian(t, e.Keys)
	v2, err := custodian.Rotate(ctx, "patient-A")
	require.NoError(t, err)
	kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: e.Keys, BranchKeyID: "patient-A"})

	for _, v := range []keystore.BranchKeyVersion{v1, v2} {
		bk, err := kr.AcquireVersion(ctx, "patient-A", v.Version)
		require.NoError(t, err)
		bk.Release()
	}
	decrypts := e.KMS.Calls("Decrypt")

	require.NoError(t, custodian.DestroyVersion(ctx, "patient-A", v1.Version))
	bk, err := kr.AcquireVersion(ctx, "patient-A", v1.Version)
	require.NoError(t, err, "cached until CacheTTL or Forget")
	bk.Release()
	kr.Forget("patient-A")
	_, err = kr.AcquireVersion(ctx, "patient-A", v1.Version)
	require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
	require.NotErrorIs(t, err, keyring.ErrVersionRetired)
	require.NotErrorIs(t, err, keystore.ErrNotFound)
	require.NotContains(t, err.Error(), "patient-A")
	bk, err = kr.AcquireVersion(ctx, "patient-A", v2.Version)
	require.NoError(t, err, "the other version still opens")
	bk.Release()
	require.Equal(t, decrypts+1, e.KMS.Calls("Decrypt"), "Forget dropped the cached version 2 too: unwrapped again")

	vs, err := kr.Versions(ctx, "patient-A")
	require.NoError(t, err)
	require.Len(t, vs, 2)
	require.Equal(t, keystore.StateDestroyed, vs[0].State)
	require.Nil(t, vs[1].Ciphertext, "Versions carries no wrapped material")
	live, err := kr.LiveVersions(ctx, "patient-A")
	require.NoError(t, err)
	require.Len(t, live, 1)
	require.Equal(t, v2.Version, live[0].Version)

	require.NoError(t, custodian.DestroyKey(ctx, "patient-A"))
	kr.Forget("patient-A")
	_, err = kr.AcquireActive(ctx, "patient-A", 1)
	require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
	_, err = kr.EncryptingVersion(ctx, "patient-A")
	require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
	_, err = kr.LiveVersions(ctx, "patient-A")
	require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
	_, err = kr.AcquireVersion(ctx, "patient-A", v2.Version)
	require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
	m := &keyring.EncryptionMaterials{SuiteID: 0x0478, DataKeyLength: 32, EncryptionContext: map[string]string{"a": "b"}}
	err = kr.OnEncrypt(ctx, m)
	require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
	require.NotContains(t, err.Error(), "patient-A")
	kr.Forget("never-cached") // nothing to drop: no effect
}

// TestDestroyedKeyUsageCounted: a keyring that counts uses and holds a
// reservation gets ErrKeyDestroyed from the store when it next reserves,
// not a retired-version conflict.
func TestDestroyedKeyUsageCounted(t *testing.T) {
	ctx := context.Background()
	e := testkeys.New(t, testkeys.Options{})
	e.Create(t, "patient-A")
	kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: e.Keys, BranchKeyID: "patient-A", MaxUsesPerVersion: 1 << 20, UsageBlock: 2})
	for range 2 {
		bk, err := kr.AcquireActive(ctx, "patient-A", 1)
		require.NoError(t, err)
		bk.Release()
	}
	require.NoError(t, testkeys.Custodian(t, e.Keys).DestroyKey(ctx, "patient-A"))
	_, err := kr.AcquireActive(ctx, "patient-A", 1)
	require.ErrorIs(t, err, keyring.ErrKeyDestroyed, "the next reservation meets the destroyed key")
}
