package keyring_test

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/storetest"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/stretchr/testify/require"
)

func TestBranchKeyDeriveKey(t *testing.T) {
	forEachHierStore(t, func(t *testing.T, e *kmsEnv, s keystore.Store) {
		ctx := context.Background()
		bk := newBranchKeys(t, e, s, e.key(""))
		v1, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-a")
		require.NoError(t, err)
		v2, err := testkeys.Custodian(t, bk).Rotate(ctx, "tenant-a")
		require.NoError(t, err)
		// Past the rotation's propagation window, version 2 is written under.
		after := &fakeClock{t: v2.CreatedAt.Add(hierTTL)}
		kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a", Now: after.Now})

		active, err := kr.AcquireActive(ctx, "tenant-a", 1)
		require.NoError(t, err)
		defer active.Release()
		require.Equal(t, "tenant-a", active.ID())
		require.Equal(t, v2.Version, active.Version())
		old, err := kr.AcquireVersion(ctx, "tenant-a", v1.Version)
		require.NoError(t, err)
		defer old.Release()
		require.Equal(t, v1.Version, old.Version())

		derive := func(k *keyring.BranchKey, info string, n int) []byte {
			out := make([]byte, n)
			require.NoError(t, k.DeriveKey(out, []byte(info)))
			return out
		}
		for _, c := range []struct {
			k *keyring.BranchKey
			v keystore.BranchKeyVersion
		}{{active, v2}, {old, v1}} {
			material, err := bk.Unwrap(ctx, c.v)
			require.NoError(t, err)
			for _, n := range []int{1, 32, 64, keyring.MaxDerivedKeyLen} {
				want, err := hkdf.Key(sha256.New, material, nil, "fieldenc patients.ssn", n)
				require.NoError(t, err)
				require.Equal(t, want, derive(c.k, "fieldenc patients.ssn", n), "%d bytes", n)
			}
			material.Wipe()
		}
		require.NotEqual(t, derive(active, "a", 32), derive(old, "a", 32), "versions give different keys")
		require.NotEqual(t, derive(active, "a", 32), derive(active, "b", 32), "infos give different keys")
		require.Equal(t, derive(active, "a", 32), derive(active, "a", 32))

		for _, n := range []int{0, keyring.MaxDerivedKeyLen + 1} {
			require.ErrorIs(t, active.DeriveKey(make([]byte, n), nil), keyring.ErrInvalid, "%d bytes", n)
		}
		require.WithinDuration(t, after.Now().Add(hierTTL), active.Expires(), 5*time.Second)
	})
}

func TestBranchKeyRelease(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	bk := newBranchKeys(t, e, hierStores[0].open(t), e.key(""))
	_, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-a")
	require.NoError(t, err)
	kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a"})
	k, err := kr.AcquireActive(ctx, "tenant-a", 1)
	require.NoError(t, err)
	// A second hold on the same entry, and an OnEncrypt, in the same
	// goroutine while the first is held.
	k2, err := kr.AcquireActive(ctx, "tenant-a", 1)
	require.NoError(t, err)
	require.NoError(t, kr.OnEncrypt(ctx, encMaterials(phiContext)))
	k.Release()
	k.Release() // idempotent
	require.Panics(t, func() { k.DeriveKey(make([]byte, 32), nil) })
	require.NoError(t, k2.DeriveKey(make([]byte, 32), nil), "the other hold is unaffected")
	k2.Release()
}

func TestAcquireActiveCounts(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	s := &addCountingStore{Store: hierStores[1].open(t)}
	bk := newBranchKeys(t, e, s, e.key(""))
	v1, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-a")
	require.NoError(t, err)
	kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a", MaxUsesPerVersion: 100, UsageBlock: 10})

	acquire := func(uses uint64) string {
		k, err := kr.AcquireActive(ctx, "tenant-a", uses)
		require.NoError(t, err)
		defer k.Release()
		return k.Version()
	}
	require.Equal(t, v1.Version, acquire(30)) // one reservation of 30
	require.EqualValues(t, 30, usageOf(t, s, "tenant-a", v1.Version))
	require.Equal(t, v1.Version, acquire(5)) // a block of 10
	require.Equal(t, v1.Version, acquire(5)) // from the block
	require.EqualValues(t, 40, usageOf(t, s, "tenant-a", v1.Version))
	require.EqualValues(t, 2, s.adds.Load())
	require.Equal(t, v1.Version, acquire(60)) // exactly to the cap
	require.EqualValues(t, 100, usageOf(t, s, "tenant-a", v1.Version))
	v2 := acquire(1) // used up: rotated
	require.NotEqual(t, v1.Version, v2)
	require.EqualValues(t, 100, usageOf(t, s, "tenant-a", v1.Version))
	require.EqualValues(t, 10, usageOf(t, s, "tenant-a", v2))
	vs := storetest.RequireOneActive(t, s, "tenant-a")
	require.Len(t, vs, 2)
	require.Equal(t, v2, vs[1].Version)

	// 95 uses do not fit in v2's remaining 90: another rotation, and v2
	// is left with what it had.
	v3 := acquire(95)
	require.NotEqual(t, v2, v3)
	require.EqualValues(t, 95, usageOf(t, s, "tenant-a", v3))

	for _, uses := range []uint64{0, 101} {
		_, err := kr.AcquireActive(ctx, "tenant-a", uses)
		require.ErrorIs(t, err, keyring.ErrInvalid, "%d uses", uses)
	}
	_, err = kr.AcquireActive(ctx, "tenant\x00a", 1)
	require.ErrorIs(t, err, keyring.ErrInvalid)

	// Without a cap nothing is counted, up to 2^32 uses at once.
	s.adds.Store(0)
	free := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a"})
	k, err := free.AcquireActive(ctx, "tenant-a", keystore.MaxUsageIncrement)
	require.NoError(t, err)
	k.Release()
	_, err = free.AcquireActive(ctx, "tenant-a", keystore.MaxUsageIncrement+1)
	require.ErrorIs(t, err, keyring.ErrInvalid)
	require.Zero(t, s.adds.Load())
}

func TestAcquireVersionAndLiveVersions(t *testing.T) {
	forEachHierStore(t, func(t *testing.T, e *kmsEnv, s keystore.Store) {
		ctx := context.Background()
		bk := newBranchKeys(t, e, s, e.key(""))
		v1, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-a")
		require.NoError(t, err)
		kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant-a"})
		versions := func() []string {
			live, err := kr.LiveVersions(ctx, "tenant-a")
			require.NoError(t, err)
			var out []string
			for _, v := range live {
				require.Nil(t, v.Ciphertext)
				out = append(out, v.Version)
			}
			return out
		}
		require.Equal(t, []string{v1.Version}, versions())
		v2, err := testkeys.Custodian(t, bk).Rotate(ctx, "tenant-a")
		require.NoError(t, err)
		v3, err := testkeys.Custodian(t, bk).Rotate(ctx, "tenant-a")
		require.NoError(t, err)
		require.Equal(t, []string{v3.Version, v2.Version, v1.Version}, versions())
		require.NoError(t, s.SetState(ctx, "tenant-a", v1.Version, keystore.StateDecryptOnly, keystore.StateRetired))
		require.Equal(t, []string{v3.Version, v2.Version}, versions(), "read from the store each call")
		live, err := kr.LiveVersions(ctx, "tenant-a")
		require.NoError(t, err)
		require.Equal(t, keystore.StateActive, live[0].State)
		require.Equal(t, keystore.StateDecryptOnly, live[1].State)

		_, err = kr.AcquireVersion(ctx, "tenant-a", v1.Version)
		require.ErrorIs(t, err, keyring.ErrVersionRetired)
		_, err = kr.AcquireVersion(ctx, "tenant-a", keystore.NewBranchKeyVersion())
		require.ErrorIs(t, err, keystore.ErrNotFound)
		_, err = kr.AcquireVersion(ctx, "tenant-a", "v1")
		require.ErrorIs(t, err, keyring.ErrInvalid)
		_, err = kr.LiveVersions(ctx, "nobody")
		require.ErrorIs(t, err, keystore.ErrNotFound)
		k, err := kr.AcquireVersion(ctx, "tenant-a", v2.Version)
		require.NoError(t, err)
		k.Release()
	})
}

// TestBranchKeyPrintsNothingSecret: a handle names its branch key by
// fingerprint, never by id, and never shows the material; errors of the
// handle API do not contain the id either.
func TestBranchKeyPrintsNothingSecret(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	s := hierStores[0].open(t)
	bk := newBranchKeys(t, e, s, e.key(""))
	const id = "patient-CANARY-MRN-000123"
	v1, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, id)
	require.NoError(t, err)
	kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: id})
	k, err := kr.AcquireActive(ctx, id, 1)
	require.NoError(t, err)
	defer k.Release()
	material, err := bk.Unwrap(ctx, v1)
	require.NoError(t, err)

	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		outputs = append(outputs, fmt.Sprintf(verb, k))
	}
	require.Contains(t, k.String(), v1.Version)
	require.Contains(t, k.String(), "branch key #")
	_, err = kr.AcquireVersion(ctx, id, keystore.NewBranchKeyVersion())
	outputs = append(outputs, err.Error())
	_, err = kr.LiveVersions(ctx, id+"-missing")
	outputs = append(outputs, err.Error())
	_, err = kr.AcquireActive(ctx, id+"-missing", 1)
	outputs = append(outputs, err.Error())
	forbidden := []string{"CANARY", string(material), hex.EncodeToString(material), strings.ToUpper(hex.EncodeToString(material)),
		base64.StdEncoding.EncodeToString(material), fmt.Sprint([]byte(material))}
	for _, out := range outputs {
		for _, f := range forbidden {
			require.NotContains(t, out, f)
		}
	}
}
