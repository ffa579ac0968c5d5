package storetest

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/stretchr/testify/require"
)

// runDestroy runs the crypto-shredding cases (Store.Destroy, DestroyKey).
func runDestroy(t *testing.T, b Backend) {
	newStore := func(t *testing.T) keystore.Store { return b.open(t, b.Fresh(t)) }
	t.Run("DestroyVersion", func(t *testing.T) { testDestroyVersion(t, newStore(t)) })
	t.Run("DestroyKey", func(t *testing.T) { testDestroyKey(t, newStore(t)) })
	t.Run("DestroyReopen", func(t *testing.T) { testDestroyReopen(t, b) })
	t.Run("DestroyRacesRotate", func(t *testing.T) {
		loc := b.Fresh(t)
		testDestroyRacesRotate(t, b.open(t, loc), b.open(t, loc))
	})
	t.Run("DestroyErrorsLeakNothing", func(t *testing.T) { testDestroyErrorsLeakNothing(t, newStore(t)) })
	t.Run("BackupAfterDestroy", func(t *testing.T) { testBackupAfterDestroy(t, newStore(t), newStore(t)) })
}

// requireTombstone checks that got is want destroyed: no material, every
// other field kept.
func requireTombstone(t *testing.T, want, got keystore.BranchKeyVersion) {
	t.Helper()
	require.Empty(t, got.Ciphertext, "a destroyed version holds no wrapped key")
	RequireVersion(t, want.Tombstone(), got)
}

// threeVersions makes branch key id with three versions, oldest first; the
// last is active.
func threeVersions(t *testing.T, s keystore.Store, id string) []keystore.BranchKeyVersion {
	ctx := t.Context()
	vs := []keystore.BranchKeyVersion{NewVersion(id, keystore.StateActive)}
	require.NoError(t, s.Create(ctx, vs[0]))
	for range 2 {
		next := NewVersion(id, keystore.StateActive)
		require.NoError(t, s.Rotate(ctx, id, vs[len(vs)-1].Version, next))
		vs[len(vs)-1].State = keystore.StateDecryptOnly
		vs = append(vs, next)
	}
	return vs
}

func testDestroyVersion(t *testing.T, s keystore.Store) {
	ctx := t.Context()
	vs := threeVersions(t, s, "tenant")
	total, err := s.AddUsage(ctx, "tenant", vs[0].Version, 5)
	require.NoError(t, err)
	vs[0].Usage = total

	require.NoError(t, s.Destroy(ctx, "tenant", vs[0].Version))
	got, err := s.Get(ctx, "tenant", vs[0].Version)
	require.NoError(t, err, "the record stays, as a tombstone")
	requireTombstone(t, vs[0], got)
	require.NoError(t, s.Destroy(ctx, "tenant", vs[0].Version), "destroying again is a safe retry")

	// A retired version is destroyed the same way.
	require.NoError(t, s.SetState(ctx, "tenant", vs[1].Version, keystore.StateDecryptOnly, keystore.StateRetired))
	require.NoError(t, s.Destroy(ctx, "tenant", vs[1].Version))

	err = s.Destroy(ctx, "tenant", vs[2].Version)
	require.ErrorIs(t, err, keystore.ErrConflict, "the active version is not destroyed alone")
	require.Contains(t, err.Error(), "rotate first")
	require.ErrorIs(t, s.Destroy(ctx, "tenant", keystore.NewBranchKeyVersion()), keystore.ErrNotFound)
	require.ErrorIs(t, s.Destroy(ctx, "nobody", vs[0].Version), keystore.ErrNotFound)
	require.ErrorIs(t, s.Destroy(ctx, "tenant", "not-a-uuid"), keystore.ErrInvalid)

	list, err := s.List(ctx, "tenant")
	require.NoError(t, err)
	require.Len(t, list, 3)
	requireTombstone(t, vs[0], list[0])
	vs[1].State = keystore.StateRetired
	requireTombstone(t, vs[1], list[1])
	RequireVersion(t, vs[2], list[2])
	active, err := s.Active(ctx, "tenant")
	require.NoError(t, err)
	RequireVersion(t, vs[2], active)

	// Nothing leads out of destroyed, nor into it through SetState.
	for _, to := range []keystore.State{keystore.StateDecryptOnly, keystore.StateRetired} {
		from := keystore.StateDecryptOnly + keystore.StateRetired - to
		require.ErrorIs(t, s.SetState(ctx, "tenant", vs[0].Version, from, to), keystore.ErrConflict)
	}
	require.ErrorIs(t, s.SetState(ctx, "tenant", vs[0].Version, keystore.StateDestroyed, keystore.StateDecryptOnly), keystore.ErrInvalid)
	require.ErrorIs(t, s.SetState(ctx, "tenant", vs[2].Version, keystore.StateDecryptOnly, keystore.StateDestroyed), keystore.ErrInvalid)
	_, err = s.AddUsage(ctx, "tenant", vs[0].Version, 1)
	require.ErrorIs(t, err, keystore.ErrDestroyed)
	require.ErrorIs(t, s.Rewrap(ctx, "tenant", vs[0].Version, vs[0].Ciphertext, testARN2, wrappedKey(184)), keystore.ErrDestroyed)
	got, err = s.Get(ctx, "tenant", vs[0].Version)
	require.NoError(t, err)
	requireTombstone(t, vs[0], got)

	// The key goes on: rotate, and destroy the version that was active.
	next := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Rotate(ctx, "tenant", vs[2].Version, next))
	require.NoError(t, s.Destroy(ctx, "tenant", vs[2].Version))
	active, err = s.Active(ctx, "tenant")
	require.NoError(t, err)
	RequireVersion(t, next, active)
}

func testDestroyKey(t *testing.T, s keystore.Store) {
	ctx := t.Context()
	vs := threeVersions(t, s, "tenant")
	other := NewVersion("other", keystore.StateActive)
	require.NoError(t, s.Create(ctx, other))
	require.NoError(t, s.Destroy(ctx, "tenant", vs[0].Version)) // a tombstone already there

	require.NoError(t, s.DestroyKey(ctx, "tenant"))
	require.NoError(t, s.DestroyKey(ctx, "tenant"), "destroying again is a safe retry")
	_, err := s.Active(ctx, "tenant")
	require.ErrorIs(t, err, keystore.ErrDestroyed)
	require.NotErrorIs(t, err, keystore.ErrNotFound)
	list, err := s.List(ctx, "tenant")
	require.NoError(t, err)
	require.Len(t, list, 3)
	for i := range vs {
		requireTombstone(t, vs[i], list[i])
		got, err := s.Get(ctx, "tenant", vs[i].Version)
		require.NoError(t, err)
		requireTombstone(t, vs[i], got)
		require.NoError(t, s.Destroy(ctx, "tenant", vs[i].Version))
	}

	// Nothing brings it back, and its id is never reused.
	err = s.Rotate(ctx, "tenant", vs[2].Version, NewVersion("tenant", keystore.StateActive))
	require.ErrorIs(t, err, keystore.ErrDestroyed, "rotating from the version that was active")
	require.ErrorIs(t, s.Create(ctx, NewVersion("tenant", keystore.StateActive)), keystore.ErrExists)
	_, err = s.AddUsage(ctx, "tenant", vs[2].Version, 1)
	require.ErrorIs(t, err, keystore.ErrDestroyed)
	require.ErrorIs(t, s.Rewrap(ctx, "tenant", vs[2].Version, vs[2].Ciphertext, testARN2, wrappedKey(184)), keystore.ErrDestroyed)
	err = s.SetState(ctx, "tenant", vs[2].Version, keystore.StateDecryptOnly, keystore.StateRetired)
	require.ErrorIs(t, err, keystore.ErrConflict)
	_, err = s.Active(ctx, "tenant")
	require.ErrorIs(t, err, keystore.ErrDestroyed)

	ids, err := s.IDs(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"other", "tenant"}, ids, "a destroyed key is still listed, as its tombstones")
	got, err := s.Active(ctx, "other")
	require.NoError(t, err)
	RequireVersion(t, other, got)
	require.ErrorIs(t, s.DestroyKey(ctx, "nobody"), keystore.ErrNotFound)
	require.ErrorIs(t, s.DestroyKey(ctx, ""), keystore.ErrInvalid)
}

func testDestroyReopen(t *testing.T, b Backend) {
	ctx := t.Context()
	loc := b.Fresh(t)
	s, err := b.Open(ctx, loc)
	require.NoError(t, err)
	vs := threeVersions(t, s, "tenant")
	require.NoError(t, s.Destroy(ctx, "tenant", vs[1].Version))
	gone := NewVersion("gone", keystore.StateActive)
	require.NoError(t, s.Create(ctx, gone))
	require.NoError(t, s.DestroyKey(ctx, "gone"))
	require.NoError(t, s.Close())

	s = b.open(t, loc)
	list, err := s.List(ctx, "tenant")
	require.NoError(t, err)
	RequireVersion(t, vs[0], list[0])
	requireTombstone(t, vs[1], list[1])
	RequireVersion(t, vs[2], list[2])
	_, err = s.Active(ctx, "gone")
	require.ErrorIs(t, err, keystore.ErrDestroyed)
	got, err := s.Get(ctx, "gone", gone.Version)
	require.NoError(t, err)
	requireTombstone(t, gone, got)
}

// testDestroyRacesRotate destroys a key through one handle while another
// rotates it as fast as it can: the key ends destroyed, every version with
// it, and the rotator ends on ErrDestroyed.
func testDestroyRacesRotate(t *testing.T, s1, s2 keystore.Store) {
	ctx := t.Context()
	v0 := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s1.Create(ctx, v0))
	var rotErr error
	var wg sync.WaitGroup
	wg.Go(func() { rotErr = rotateUntilDestroyed(s2, "tenant", v0.Version, 10*time.Second) })
	time.Sleep(5 * time.Millisecond)
	require.NoError(t, s1.DestroyKey(ctx, "tenant"))
	wg.Wait()
	require.ErrorIs(t, rotErr, keystore.ErrDestroyed)
	requireAllDestroyed(t, s1, "tenant")
}

// rotateUntilDestroyed rotates branch key id from first on, re-reading the
// active version after each lost race, until the store says the key is
// destroyed (that error), another error, or the time is up.
func rotateUntilDestroyed(s keystore.Store, id, first string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	expected := first
	for ctx.Err() == nil {
		err := s.Rotate(ctx, id, expected, NewVersion(id, keystore.StateActive))
		if err != nil && !errors.Is(err, keystore.ErrConflict) {
			return err
		}
		active, err := s.Active(ctx, id)
		if err != nil {
			return err
		}
		expected = active.Version
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("the key was not destroyed within %v", limit)
}

func requireAllDestroyed(t *testing.T, s keystore.Store, id string) {
	t.Helper()
	list, err := s.List(t.Context(), id)
	require.NoError(t, err)
	for _, v := range list {
		require.Equal(t, keystore.StateDestroyed, v.State, "version %s", v.Version)
		require.Empty(t, v.Ciphertext)
	}
	_, err = s.Active(t.Context(), id)
	require.ErrorIs(t, err, keystore.ErrDestroyed)
}

func testDestroyErrorsLeakNothing(t *testing.T, s keystore.Store) {
	ctx := t.Context()
	const id = "patient-MRN-CANARY-0042"
	v := NewVersion(id, keystore.StateActive)
	v.Ciphertext = []byte("WRAPPED-KEY-CANARY-WRAPPED-KEY-CANARY")
	require.NoError(t, s.Create(ctx, v))
	next := NewVersion(id, keystore.StateActive)
	require.NoError(t, s.Rotate(ctx, id, v.Version, next))
	require.NoError(t, s.Destroy(ctx, id, v.Version))
	errs := []error{
		s.Destroy(ctx, id, next.Version),
		s.Destroy(ctx, id, keystore.NewBranchKeyVersion()),
		s.DestroyKey(ctx, id+"-missing"),
		s.Rewrap(ctx, id, v.Version, v.Ciphertext, testARN2, wrappedKey(184)),
	}
	_, err := s.AddUsage(ctx, id, v.Version, 1)
	errs = append(errs, err)
	require.NoError(t, s.DestroyKey(ctx, id))
	_, err = s.Active(ctx, id)
	errs = append(errs, err, s.Rotate(ctx, id, next.Version, NewVersion(id, keystore.StateActive)))
	for i, err := range errs {
		require.Error(t, err, "case %d", i)
		msg := fmt.Sprintf("%v %+v %#v", err, err, err.Error())
		require.NotContains(t, msg, "CANARY", "case %d: %s", i, msg)
	}
}

// testBackupAfterDestroy: a backup made after a destroy holds none of the
// destroyed material, and restores the tombstones as tombstones.
func testBackupAfterDestroy(t *testing.T, s, target keystore.Store) {
	ctx := t.Context()
	vs := threeVersions(t, s, "tenant")
	require.NoError(t, s.Destroy(ctx, "tenant", vs[0].Version))
	gone := NewVersion("gone", keystore.StateActive)
	require.NoError(t, s.Create(ctx, gone))
	require.NoError(t, s.DestroyKey(ctx, "gone"))

	var backup bytes.Buffer
	require.NoError(t, keystore.Export(ctx, s, &backup))
	for _, destroyed := range [][]byte{vs[0].Ciphertext, gone.Ciphertext} {
		require.False(t, containsMaterial(backup.Bytes(), destroyed), "the backup holds destroyed material")
	}
	require.True(t, containsMaterial(backup.Bytes(), vs[1].Ciphertext), "the backup holds live material")

	require.NoError(t, keystore.Restore(ctx, target, bytes.NewReader(backup.Bytes())))
	list, err := target.List(ctx, "tenant")
	require.NoError(t, err)
	requireTombstone(t, vs[0], list[0])
	RequireVersion(t, vs[1], list[1])
	RequireVersion(t, vs[2], list[2])
	requireAllDestroyed(t, target, "gone")
	got, err := target.Get(ctx, "gone", gone.Version)
	require.NoError(t, err)
	requireTombstone(t, gone, got)
}

// containsMaterial reports whether a JSON backup holds ct, raw or in the
// base64 encoding/json writes.
func containsMaterial(backup, ct []byte) bool {
	return bytes.Contains(backup, ct) || bytes.Contains(backup, []byte(base64.StdEncoding.EncodeToString(ct)))
}

// Child processes of runTwoProcessDestroy: one rotates the key as fast as
// it can, the other destroys it; the first must end on ErrDestroyed.
const destroyRoleEnv = "PHICRYPT_STORE_DESTROY_ROLE"

var destroyChildResult = regexp.MustCompile(`(?m)^destroy-child role=(\w+) ok$`)

// runTwoProcessDestroy has one OS process destroy a branch key that
// another is rotating.
func runTwoProcessDestroy(t *testing.T, b Backend, childTest, loc string) {
	ctx := t.Context()
	s, err := b.Open(ctx, loc)
	require.NoError(t, err)
	v0 := NewVersion(childKeyID, keystore.StateActive)
	require.NoError(t, s.Create(ctx, v0))
	require.NoError(t, s.Close())

	barrier := t.TempDir()
	roles := []string{"rotate", "destroy"}
	outs := make([][]byte, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, role := range roles {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+childTest+"$", "-test.count=1")
		cmd.Env = append(os.Environ(),
			childModeEnv+"=destroy", childLocEnv+"="+loc, childBarrierEnv+"="+barrier, childFirstEnv+"="+v0.Version,
			destroyRoleEnv+"="+role, "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
		wg.Go(func() { outs[i], errs[i] = cmd.CombinedOutput() })
	}
	wg.Wait()
	for i := range outs {
		require.NoError(t, errs[i], "child %s:\n%s", roles[i], outs[i])
		m := destroyChildResult.FindSubmatch(outs[i])
		require.NotNil(t, m, "child %s printed no result:\n%s", roles[i], outs[i])
	}
	s, err = b.Open(ctx, loc)
	require.NoError(t, err)
	defer s.Close()
	requireAllDestroyed(t, s, childKeyID)
}

func destroyChild(t *testing.T, b Backend) {
	ctx := t.Context()
	s, err := b.Open(ctx, os.Getenv(childLocEnv))
	require.NoError(t, err)
	defer s.Close()
	waitAtBarrier(t, os.Getenv(childBarrierEnv), 2)
	role := os.Getenv(destroyRoleEnv)
	switch role {
	case "rotate":
		err := rotateUntilDestroyed(s, childKeyID, os.Getenv(childFirstEnv), 30*time.Second)
		require.ErrorIs(t, err, keystore.ErrDestroyed)
	case "destroy":
		time.Sleep(20 * time.Millisecond) // let some rotations happen first
		require.NoError(t, s.DestroyKey(ctx, childKeyID))
	default:
		t.Fatalf("unknown role %q", role)
	}
	fmt.Printf("destroy-child role=%s ok\n", role)
}
