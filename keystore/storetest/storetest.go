// Package storetest is the conformance suite every keystore.Store must
// pass: phicrypt runs it against its file, SQLite and PostgreSQL stores, and a store of your own runs it the same way from its tests:
//
//	func TestMyStore(t *testing.T)      { storetest.Run(t, backend) }
//	func TestMyStoreRaces(t *testing.T) { storetest.RunTwoProcesses(t, backend, "TestMyStoreChild") }
//	func TestMyStoreChild(t *testing.T) { storetest.Child(t, backend) }
//
// A store that also keeps records (keystore.Records) runs RunRecords too:
//
//	func TestMyStoreRecords(t *testing.T) { storetest.RunRecords(t, backend, "TestMyStoreChild") }
//
// It checks every promise of the Store interface: conditional writes under
// concurrency (goroutines, and two OS processes racing on one store),
// states, usage counters, caps, copies, context cancellation, errors that
// name no branch key id, refusal of a schema from a newer phicrypt, and
// crypto-shredding (Destroy, DestroyKey, tombstones in backups).
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Backend is one Store implementation under the suite.
type Backend struct {
	// Name names the back end in messages.
	Name string
	// Fresh returns a location no other test uses (a directory, a database
	// file, a connection string with its own schema), removed after t.
	Fresh func(t *testing.T) string
	// Open opens the store at loc; opening one loc twice gives two handles
	// on one store, as two processes would have.
	Open func(ctx context.Context, loc string) (keystore.Store, error)
	// RetriedUsageMayCount says that a store over a network may count an
	// AddUsage twice when its client retries a request whose answer was
	// lost (DynamoDB's UpdateItem takes no idempotency token). Usage is an
	// upper bound either way; the suite then checks that every addition
	// counted at least once, at most a few twice, and that no two
	// additions returned the same total (which is what keeps a usage cap).
	RetriedUsageMayCount bool
	// FutureSchema makes the store at loc look written by a newer
	// phicrypt, and Run checks that the store refuses it. A store whose
	// records carry no schema version leaves it nil, and that check is not
	// part of its run.
	FutureSchema func(t *testing.T, loc string)
}

func (b Backend) open(t *testing.T, loc string) keystore.Store {
	t.Helper()
	s, err := b.Open(t.Context(), loc)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

const (
	testARN  = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	testARN2 = "arn:aws:kms:eu-west-1:111122223333:key/0987dcba-09fe-87dc-65ba-ab0987654321"
)

func wrappedKey(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// NewVersion is a version of branch key id as a keyring would make it:
// 184 bytes is the size of a KMS ciphertext for a 32-byte key.
func NewVersion(id string, state keystore.State) keystore.BranchKeyVersion {
	return keystore.BranchKeyVersion{
		BranchKeyID: id,
		Version:     keystore.NewBranchKeyVersion(),
		KMSKeyARN:   testARN,
		Ciphertext:  wrappedKey(184),
		CreatedAt:   time.Now(),
		State:       state,
	}
}

// stored is v as a store returns it: UTC, to the microsecond.
func stored(v keystore.BranchKeyVersion) keystore.BranchKeyVersion {
	v.CreatedAt = v.CreatedAt.UTC().Truncate(time.Microsecond)
	return v
}

// RequireVersion checks that got is want as a store returns it.
func RequireVersion(t *testing.T, want, got keystore.BranchKeyVersion) {
	t.Helper()
	want = stored(want)
	require.True(t, want.CreatedAt.Equal(got.CreatedAt), "created %v, want %v", got.CreatedAt, want.CreatedAt)
	require.Equal(t, time.UTC, got.CreatedAt.Location())
	got.CreatedAt = want.CreatedAt
	require.Equal(t, want, got)
}

// RequireOneActive checks the invariant: exactly one active version, the
// newest, every other decrypt-only, retired or destroyed; it returns the
// versions.
func RequireOneActive(t *testing.T, s keystore.Store, id string) []keystore.BranchKeyVersion {
	t.Helper()
	ctx := t.Context()
	vs, err := s.List(ctx, id)
	require.NoError(t, err)
	active := 0
	for _, v := range vs {
		if v.State == keystore.StateActive {
			active++
		} else {
			require.Contains(t, []keystore.State{keystore.StateDecryptOnly, keystore.StateRetired, keystore.StateDestroyed}, v.State)
		}
	}
	require.Equal(t, 1, active, "active versions")
	require.Equal(t, keystore.StateActive, vs[len(vs)-1].State, "the newest version is the active one")
	a, err := s.Active(ctx, id)
	require.NoError(t, err)
	RequireVersion(t, vs[len(vs)-1], a)
	return vs
}

// Run runs the behaviour every Store must have against b.
func Run(t *testing.T, b Backend) {
	newStore := func(t *testing.T) keystore.Store { return b.open(t, b.Fresh(t)) }

	t.Run("CreateGetListIDs", func(t *testing.T) { testCreateGetList(t, newStore(t)) })
	t.Run("CreateExists", func(t *testing.T) { testCreateExists(t, newStore(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newStore(t)) })
	t.Run("Rotate", func(t *testing.T) { testRotate(t, newStore(t)) })
	t.Run("ConcurrentRotate", func(t *testing.T) {
		loc := b.Fresh(t)
		testConcurrentRotate(t, b.open(t, loc), b.open(t, loc))
	})
	t.Run("SetState", func(t *testing.T) { testSetState(t, newStore(t)) })
	t.Run("Rewrap", func(t *testing.T) { testRewrap(t, newStore(t)) })
	t.Run("ConcurrentRewrap", func(t *testing.T) {
		loc := b.Fresh(t)
		testConcurrentRewrap(t, b.open(t, loc), b.open(t, loc))
	})
	t.Run("Caps", func(t *testing.T) { testCaps(t, newStore(t)) })
	t.Run("Copies", func(t *testing.T) { testCopies(t, newStore(t)) })
	t.Run("ErrorsLeakNothing", func(t *testing.T) { testErrorsLeakNothing(t, newStore(t)) })
	t.Run("Reopen", func(t *testing.T) { testReopen(t, b) })
	if b.FutureSchema != nil {
		t.Run("FutureSchemaRefused", func(t *testing.T) { testFutureSchema(t, b) })
	}
	t.Run("ContextCanceled", func(t *testing.T) { testContextCanceled(t, newStore(t)) })
	t.Run("AddUsage", func(t *testing.T) { testAddUsage(t, newStore(t)) })
	t.Run("ConcurrentAddUsage", func(t *testing.T) {
		loc := b.Fresh(t)
		testConcurrentAddUsage(t, b, b.open(t, loc), b.open(t, loc))
	})
	runDestroy(t, b)
}

func testCreateGetList(t *testing.T, s keystore.Store) {
	ctx := t.Context()
	ids, err := s.IDs(ctx)
	require.NoError(t, err)
	require.Empty(t, ids)

	// Ids that would be unsafe as file names, or collate differently.
	names := []string{"tenant-b", "tenant-a", "../../etc/passwd", "a/b\\c", "Ünïcødé 患者", strings.Repeat("x", keystore.MaxBranchKeyIDLen), "Z"}
	created := map[string]keystore.BranchKeyVersion{}
	for _, id := range names {
		v := NewVersion(id, keystore.StateActive)
		v.CreatedAt = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("CET", 3600))
		require.NoError(t, s.Create(ctx, v))
		created[id] = v
	}
	for id, v := range created {
		got, err := s.Get(ctx, id, v.Version)
		require.NoError(t, err)
		RequireVersion(t, v, got)
		require.Equal(t, 123456000, got.CreatedAt.Nanosecond(), "kept to the microsecond")
		active, err := s.Active(ctx, id)
		require.NoError(t, err)
		RequireVersion(t, v, active)
		list, err := s.List(ctx, id)
		require.NoError(t, err)
		require.Len(t, list, 1)
		RequireVersion(t, v, list[0])
	}
	ids, err = s.IDs(ctx)
	require.NoError(t, err)
	want := []string{"../../etc/passwd", "Z", "a/b\\c", "tenant-a", "tenant-b", strings.Repeat("x", keystore.MaxBranchKeyIDLen), "Ünïcødé 患者"}
	require.Equal(t, want, ids, "bytewise order")
}

func testCreateExists(t *testing.T, s keystore.Store) {
	ctx := t.Context()
	v := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Create(ctx, v))
	err := s.Create(ctx, NewVersion("tenant", keystore.StateActive))
	require.ErrorIs(t, err, keystore.ErrExists)
	err = s.Create(ctx, v)
	require.ErrorIs(t, err, keystore.ErrExists)
	vs := RequireOneActive(t, s, "tenant")
	require.Len(t, vs, 1)
	RequireVersion(t, v, vs[0])

	for _, st := range []keystore.State{0, keystore.StateDecryptOnly, keystore.StateRetired, 9} {
		err := s.Create(ctx, NewVersion("other", st))
		require.ErrorIs(t, err, keystore.ErrInvalid, "state %v", st)
	}
	_, err = s.Active(ctx, "other")
	require.ErrorIs(t, err, keystore.ErrNotFound)
}

func testNotFound(t *testing.T, s keystore.Store) {
	ctx := t.Context()
	missing := keystore.NewBranchKeyVersion()
	_, err := s.Active(ctx, "nobody")
	require.ErrorIs(t, err, keystore.ErrNotFound)
	_, err = s.Get(ctx, "nobody", missing)
	require.ErrorIs(t, err, keystore.ErrNotFound)
	_, err = s.List(ctx, "nobody")
	require.ErrorIs(t, err, keystore.ErrNotFound)
	err = s.Rotate(ctx, "nobody", missing, NewVersion("nobody", keystore.StateActive))
	require.ErrorIs(t, err, keystore.ErrNotFound)
	err = s.SetState(ctx, "nobody", missing, keystore.StateDecryptOnly, keystore.StateRetired)
	require.ErrorIs(t, err, keystore.ErrNotFound)
	err = s.Rewrap(ctx, "nobody", missing, []byte("old"), testARN2, []byte("new"))
	require.ErrorIs(t, err, keystore.ErrNotFound)

	// A branch key that exists, a version that does not.
	require.NoError(t, s.Create(ctx, NewVersion("tenant", keystore.StateActive)))
	_, err = s.Get(ctx, "tenant", missing)
	require.ErrorIs(t, err, keystore.ErrNotFound)
	err = s.SetState(ctx, "tenant", missing, keystore.StateDecryptOnly, keystore.StateRetired)
	require.ErrorIs(t, err, keystore.ErrNotFound)
	err = s.Rewrap(ctx, "tenant", missing, []byte("old"), testARN2, []byte("new"))
	require.ErrorIs(t, err, keystore.ErrNotFound)
	ids, err := s.IDs(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"tenant"}, ids)
}

func testRotate(t *testing.T, s keystore.Store) {
	ctx := t.Context()
	v0 := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Create(ctx, v0))

	// The wrong expected version changes nothing.
	err := s.Rotate(ctx, "tenant", keystore.NewBranchKeyVersion(), NewVersion("tenant", keystore.StateActive))
	require.ErrorIs(t, err, keystore.ErrConflict)
	require.Len(t, RequireOneActive(t, s, "tenant"), 1)

	v1 := NewVersion("tenant", keystore.StateActive)
	v1.KMSKeyARN = testARN2
	require.NoError(t, s.Rotate(ctx, "tenant", v0.Version, v1))
	vs := RequireOneActive(t, s, "tenant")
	require.Len(t, vs, 2)
	v0.State = keystore.StateDecryptOnly
	RequireVersion(t, v0, vs[0])
	RequireVersion(t, v1, vs[1])

	// A rotation from the old active version lost the race.
	err = s.Rotate(ctx, "tenant", v0.Version, NewVersion("tenant", keystore.StateActive))
	require.ErrorIs(t, err, keystore.ErrConflict)
	// A next version that exists is refused.
	again := v0
	again.State = keystore.StateActive
	err = s.Rotate(ctx, "tenant", v1.Version, again)
	require.ErrorIs(t, err, keystore.ErrExists)
	// The next version must be active and of this branch key.
	err = s.Rotate(ctx, "tenant", v1.Version, NewVersion("tenant", keystore.StateDecryptOnly))
	require.ErrorIs(t, err, keystore.ErrInvalid)
	err = s.Rotate(ctx, "tenant", v1.Version, NewVersion("other", keystore.StateActive))
	require.ErrorIs(t, err, keystore.ErrInvalid)
	require.Len(t, RequireOneActive(t, s, "tenant"), 2)

	// A longer history stays in order.
	want := []string{v0.Version, v1.Version}
	prev := v1.Version
	for range 5 {
		next := NewVersion("tenant", keystore.StateActive)
		require.NoError(t, s.Rotate(ctx, "tenant", prev, next))
		want = append(want, next.Version)
		prev = next.Version
	}
	vs = RequireOneActive(t, s, "tenant")
	var got []string
	for _, v := range vs {
		got = append(got, v.Version)
	}
	require.Equal(t, want, got, "oldest first")
}

// testConcurrentRotate rotates one key from the same active version in 16
// goroutines over two handles on one store: exactly one wins.
func testConcurrentRotate(t *testing.T, s1, s2 keystore.Store) {
	ctx := t.Context()
	v0 := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s1.Create(ctx, v0))
	expected := v0.Version
	for round := range 3 {
		const n = 16
		errs := make([]error, n)
		nexts := make([]keystore.BranchKeyVersion, n)
		var start, done sync.WaitGroup
		start.Add(1)
		for i := range n {
			nexts[i] = NewVersion("tenant", keystore.StateActive)
			s := s1
			if i%2 == 1 {
				s = s2
			}
			done.Go(func() {
				start.Wait()
				errs[i] = s.Rotate(ctx, "tenant", expected, nexts[i])
			})
		}
		start.Done()
		done.Wait()
		winner := -1
		for i, err := range errs {
			if err == nil {
				require.Equal(t, -1, winner, "round %d: two rotations won", round)
				winner = i
				continue
			}
			require.ErrorIs(t, err, keystore.ErrConflict, "round %d", round)
		}
		require.NotEqual(t, -1, winner, "round %d: no rotation won", round)
		vs := RequireOneActive(t, s2, "tenant")
		require.Len(t, vs, round+2)
		require.Equal(t, nexts[winner].Version, vs[len(vs)-1].Version)
		expected = nexts[winner].Version
	}
}

func testSetState(t *testing.T, s keystore.Store) {
	ctx := t.Context()
	v0 := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Create(ctx, v0))
	v1 := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Rotate(ctx, "tenant", v0.Version, v1))
	state := func(version string) keystore.State {
		v, err := s.Get(ctx, "tenant", version)
		require.NoError(t, err)
		return v.State
	}

	require.NoError(t, s.SetState(ctx, "tenant", v0.Version, keystore.StateDecryptOnly, keystore.StateRetired))
	require.Equal(t, keystore.StateRetired, state(v0.Version))
	// The condition is checked: v0 is no longer decrypt-only.
	err := s.SetState(ctx, "tenant", v0.Version, keystore.StateDecryptOnly, keystore.StateRetired)
	require.ErrorIs(t, err, keystore.ErrConflict)
	require.NoError(t, s.SetState(ctx, "tenant", v0.Version, keystore.StateRetired, keystore.StateDecryptOnly))
	require.Equal(t, keystore.StateDecryptOnly, state(v0.Version))

	// The active version is never retired or made decrypt-only this way.
	err = s.SetState(ctx, "tenant", v1.Version, keystore.StateDecryptOnly, keystore.StateRetired)
	require.ErrorIs(t, err, keystore.ErrConflict)
	err = s.SetState(ctx, "tenant", v1.Version, keystore.StateRetired, keystore.StateDecryptOnly)
	require.ErrorIs(t, err, keystore.ErrConflict)
	for _, tr := range [][2]keystore.State{
		{keystore.StateActive, keystore.StateRetired},
		{keystore.StateActive, keystore.StateDecryptOnly},
		{keystore.StateDecryptOnly, keystore.StateActive},
		{keystore.StateRetired, keystore.StateActive},
		{keystore.StateRetired, keystore.StateRetired},
		{0, keystore.StateRetired},
		{keystore.StateDecryptOnly, 0},
		{keystore.StateDecryptOnly, 4},
	} {
		for _, version := range []string{v0.Version, v1.Version} {
			err := s.SetState(ctx, "tenant", version, tr[0], tr[1])
			require.ErrorIs(t, err, keystore.ErrInvalid, "%v -> %v", tr[0], tr[1])
		}
	}
	require.Equal(t, keystore.StateDecryptOnly, state(v0.Version))
	require.Equal(t, keystore.StateActive, state(v1.Version))
	RequireOneActive(t, s, "tenant")
}

func testRewrap(t *testing.T, s keystore.Store) {
	ctx := t.Context()
	v0 := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Create(ctx, v0))
	v1 := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Rotate(ctx, "tenant", v0.Version, v1))
	require.NoError(t, s.SetState(ctx, "tenant", v0.Version, keystore.StateDecryptOnly, keystore.StateRetired))

	for _, v := range []keystore.BranchKeyVersion{v0, v1} {
		rewrapped := wrappedKey(200)
		require.NoError(t, s.Rewrap(ctx, "tenant", v.Version, v.Ciphertext, testARN2, rewrapped))
		got, err := s.Get(ctx, "tenant", v.Version)
		require.NoError(t, err)
		require.Equal(t, testARN2, got.KMSKeyARN)
		require.Equal(t, rewrapped, got.Ciphertext)
		// Compare-and-swap: the old ciphertext no longer matches.
		err = s.Rewrap(ctx, "tenant", v.Version, v.Ciphertext, testARN, wrappedKey(200))
		require.ErrorIs(t, err, keystore.ErrConflict)
		again, err := s.Get(ctx, "tenant", v.Version)
		require.NoError(t, err)
		require.Equal(t, got, again, "a refused rewrap changes nothing")
	}
	// States are untouched.
	vs := RequireOneActive(t, s, "tenant")
	require.Equal(t, keystore.StateRetired, vs[0].State)
	require.Equal(t, v1.Version, vs[1].Version)
}

func testConcurrentRewrap(t *testing.T, s1, s2 keystore.Store) {
	ctx := t.Context()
	v0 := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s1.Create(ctx, v0))
	const n = 8
	errs := make([]error, n)
	news := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		news[i] = wrappedKey(184)
		s := s1
		if i%2 == 1 {
			s = s2
		}
		wg.Go(func() { errs[i] = s.Rewrap(ctx, "tenant", v0.Version, v0.Ciphertext, testARN2, news[i]) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, winner, "two rewraps won")
			winner = i
			continue
		}
		require.ErrorIs(t, err, keystore.ErrConflict)
	}
	require.NotEqual(t, -1, winner)
	got, err := s2.Get(ctx, "tenant", v0.Version)
	require.NoError(t, err)
	require.Equal(t, news[winner], got.Ciphertext)
}

func testCaps(t *testing.T, s keystore.Store) {
	ctx := t.Context()
	ok := NewVersion(strings.Repeat("é", keystore.MaxBranchKeyIDLen/2), keystore.StateActive)
	ok.Ciphertext = wrappedKey(keystore.MaxWrappedBranchKeyLen)
	ok.KMSKeyARN = strings.Repeat("a", keystore.MaxKMSKeyARNLen)
	ok.CreatedAt = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
	require.NoError(t, s.Create(ctx, ok))
	got, err := s.Active(ctx, ok.BranchKeyID)
	require.NoError(t, err)
	RequireVersion(t, ok, got)
	early := NewVersion("year one", keystore.StateActive)
	early.CreatedAt = time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC) // the zero time is refused
	require.NoError(t, s.Create(ctx, early))
	got, err = s.Active(ctx, early.BranchKeyID)
	require.NoError(t, err)
	RequireVersion(t, early, got)

	bad := map[string]func(*keystore.BranchKeyVersion){
		"empty id":             func(v *keystore.BranchKeyVersion) { v.BranchKeyID = "" },
		"id too long":          func(v *keystore.BranchKeyVersion) { v.BranchKeyID = strings.Repeat("x", keystore.MaxBranchKeyIDLen+1) },
		"id not UTF-8":         func(v *keystore.BranchKeyVersion) { v.BranchKeyID = "tenant\xff" },
		"id with NUL":          func(v *keystore.BranchKeyVersion) { v.BranchKeyID = "ten\x00ant" },
		"version not a UUID":   func(v *keystore.BranchKeyVersion) { v.Version = "v1" },
		"version upper case":   func(v *keystore.BranchKeyVersion) { v.Version = strings.ToUpper(v.Version) },
		"version braced":       func(v *keystore.BranchKeyVersion) { v.Version = "{" + v.Version[:34] + "}" },
		"empty ARN":            func(v *keystore.BranchKeyVersion) { v.KMSKeyARN = "" },
		"ARN too long":         func(v *keystore.BranchKeyVersion) { v.KMSKeyARN = strings.Repeat("a", keystore.MaxKMSKeyARNLen+1) },
		"empty ciphertext":     func(v *keystore.BranchKeyVersion) { v.Ciphertext = nil },
		"ciphertext too long":  func(v *keystore.BranchKeyVersion) { v.Ciphertext = wrappedKey(keystore.MaxWrappedBranchKeyLen + 1) },
		"no creation time":     func(v *keystore.BranchKeyVersion) { v.CreatedAt = time.Time{} },
		"created after 9999":   func(v *keystore.BranchKeyVersion) { v.CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"created before 1 AD":  func(v *keystore.BranchKeyVersion) { v.CreatedAt = time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC) },
		"zero state":           func(v *keystore.BranchKeyVersion) { v.State = 0 },
		"state out of range":   func(v *keystore.BranchKeyVersion) { v.State = 200 },
		"decrypt-only to open": func(v *keystore.BranchKeyVersion) { v.State = keystore.StateDecryptOnly },
	}
	base := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Create(ctx, base))
	for name, mutate := range bad {
		v := NewVersion("capped", keystore.StateActive)
		mutate(&v)
		require.ErrorIs(t, s.Create(ctx, v), keystore.ErrInvalid, "Create: %s", name)
		v.BranchKeyID = "tenant"
		mutate(&v)
		require.ErrorIs(t, s.Rotate(ctx, "tenant", base.Version, v), keystore.ErrInvalid, "Rotate: %s", name)
	}
	ids, err := s.IDs(ctx)
	require.NoError(t, err)
	require.Len(t, ids, 3)
	require.Len(t, RequireOneActive(t, s, "tenant"), 1)

	long := strings.Repeat("x", keystore.MaxBranchKeyIDLen+1)
	_, err = s.Active(ctx, long)
	require.ErrorIs(t, err, keystore.ErrInvalid)
	_, err = s.Get(ctx, "tenant", "not-a-uuid")
	require.ErrorIs(t, err, keystore.ErrInvalid)
	_, err = s.List(ctx, "")
	require.ErrorIs(t, err, keystore.ErrInvalid)
	err = s.Rewrap(ctx, "tenant", base.Version, base.Ciphertext, testARN2, wrappedKey(keystore.MaxWrappedBranchKeyLen+1))
	require.ErrorIs(t, err, keystore.ErrInvalid)
	err = s.Rewrap(ctx, "tenant", base.Version, base.Ciphertext, testARN2, nil)
	require.ErrorIs(t, err, keystore.ErrInvalid)
	err = s.Rewrap(ctx, "tenant", base.Version, base.Ciphertext, "", wrappedKey(10))
	require.ErrorIs(t, err, keystore.ErrInvalid)
	err = s.Rewrap(ctx, "tenant", base.Version, nil, testARN2, wrappedKey(10))
	require.ErrorIs(t, err, keystore.ErrInvalid)
	got, err = s.Active(ctx, "tenant")
	require.NoError(t, err)
	RequireVersion(t, base, got)
}

// testCopies: a store keeps its own copy of what it is given and returns
// copies, so a caller that wipes or reuses a slice changes nothing stored.
func testCopies(t *testing.T, s keystore.Store) {
	ctx := t.Context()
	v := NewVersion("tenant", keystore.StateActive)
	want := bytes.Clone(v.Ciphertext)
	require.NoError(t, s.Create(ctx, v))
	clear(v.Ciphertext)
	got, err := s.Active(ctx, "tenant")
	require.NoError(t, err)
	require.Equal(t, want, got.Ciphertext)
	clear(got.Ciphertext)
	again, err := s.Get(ctx, "tenant", v.Version)
	require.NoError(t, err)
	require.Equal(t, want, again.Ciphertext)
}

// testErrorsLeakNothing pushes a recognizable id and ciphertext through the
// error paths: no message may contain either.
func testErrorsLeakNothing(t *testing.T, s keystore.Store) {
	ctx := t.Context()
	const id = "patient-MRN-CANARY-0042"
	canary := []byte("WRAPPED-KEY-CANARY-WRAPPED-KEY-CANARY")
	v := NewVersion(id, keystore.StateActive)
	v.Ciphertext = canary
	require.NoError(t, s.Create(ctx, v))

	dup := v
	dup.Version = keystore.NewBranchKeyVersion()
	big := NewVersion(id, keystore.StateActive)
	big.Ciphertext = append(bytes.Repeat(canary, 200), canary...)
	stale := keystore.NewBranchKeyVersion()
	errs := []error{
		s.Create(ctx, dup),
		s.Create(ctx, big),
		s.Rotate(ctx, id, stale, NewVersion(id, keystore.StateActive)),
		s.Rotate(ctx, id+"-other", stale, NewVersion(id+"-other", keystore.StateActive)),
		s.SetState(ctx, id, v.Version, keystore.StateDecryptOnly, keystore.StateRetired),
		s.SetState(ctx, id, stale, keystore.StateDecryptOnly, keystore.StateRetired),
		s.Rewrap(ctx, id, v.Version, []byte("not-it"), testARN2, canary),
		s.Rewrap(ctx, id, stale, canary, testARN2, canary),
	}
	_, err := s.Get(ctx, id, stale)
	errs = append(errs, err)
	_, err = s.Active(ctx, id+"-missing")
	errs = append(errs, err)
	_, err = s.AddUsage(ctx, id, stale, 1)
	errs = append(errs, err)
	_, err = s.AddUsage(ctx, id+"-missing", v.Version, 1)
	errs = append(errs, err)
	_, err = s.AddUsage(ctx, id, v.Version, 0)
	errs = append(errs, err)
	next := NewVersion(id, keystore.StateActive)
	require.NoError(t, s.Rotate(ctx, id, v.Version, next))
	require.NoError(t, s.SetState(ctx, id, v.Version, keystore.StateDecryptOnly, keystore.StateRetired))
	_, err = s.AddUsage(ctx, id, v.Version, 1)
	errs = append(errs, err)
	for i, err := range errs {
		require.Error(t, err, "case %d", i)
		msg := fmt.Sprintf("%v %+v %#v", err, err, err.Error())
		require.NotContains(t, msg, "CANARY", "case %d: %s", i, msg)
	}
}

func testReopen(t *testing.T, b Backend) {
	ctx := t.Context()
	loc := b.Fresh(t)
	s, err := b.Open(ctx, loc)
	require.NoError(t, err)
	v0 := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Create(ctx, v0))
	v1 := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Rotate(ctx, "tenant", v0.Version, v1))
	require.NoError(t, s.SetState(ctx, "tenant", v0.Version, keystore.StateDecryptOnly, keystore.StateRetired))
	rewrapped := wrappedKey(190)
	require.NoError(t, s.Rewrap(ctx, "tenant", v1.Version, v1.Ciphertext, testARN2, rewrapped))
	other := NewVersion("other", keystore.StateActive)
	require.NoError(t, s.Create(ctx, other))
	require.NoError(t, s.Close())

	s = b.open(t, loc)
	vs := RequireOneActive(t, s, "tenant")
	require.Len(t, vs, 2)
	v0.State = keystore.StateRetired
	RequireVersion(t, v0, vs[0])
	v1.KMSKeyARN, v1.Ciphertext = testARN2, rewrapped
	RequireVersion(t, v1, vs[1])
	ids, err := s.IDs(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"other", "tenant"}, ids)
	// And it still works.
	require.NoError(t, s.Rotate(ctx, "tenant", v1.Version, NewVersion("tenant", keystore.StateActive)))
	require.Len(t, RequireOneActive(t, s, "tenant"), 3)
}

func testFutureSchema(t *testing.T, b Backend) {
	ctx := t.Context()
	loc := b.Fresh(t)
	s, err := b.Open(ctx, loc)
	require.NoError(t, err)
	require.NoError(t, s.Create(ctx, NewVersion("tenant", keystore.StateActive)))
	require.NoError(t, s.Close())
	b.FutureSchema(t, loc)

	// A store may refuse at open (a schema for the whole store) or at the
	// first read (a schema per document); either way, with a clear error.
	s, err = b.Open(ctx, loc)
	if err != nil {
		require.ErrorIs(t, err, keystore.ErrUnsupportedSchema)
		require.Contains(t, err.Error(), "upgrade phicrypt")
		return
	}
	defer s.Close()
	_, err = s.Active(ctx, "tenant")
	require.ErrorIs(t, err, keystore.ErrUnsupportedSchema)
	require.Contains(t, err.Error(), "upgrade phicrypt")
	// Listing may name the key (a schema per document: reading it refuses,
	// as above, and keys of a known schema stay reachable) or refuse.
	if _, err := s.IDs(ctx); err != nil {
		require.ErrorIs(t, err, keystore.ErrUnsupportedSchema)
	}
}

func testContextCanceled(t *testing.T, s keystore.Store) {
	v := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Create(t.Context(), v))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, s.Rotate(ctx, "tenant", v.Version, NewVersion("tenant", keystore.StateActive)), context.Canceled)
	_, err := s.Active(ctx, "tenant")
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, RequireOneActive(t, s, "tenant"), 1)
}

// Child processes: RunTwoProcesses starts two copies of the test binary
// running the caller's child test (which calls Child) for each race. Both wait at a barrier (each makes
// a file in a shared directory and waits for the other's), rotate from the
// same first version (so exactly one of those two wins, whatever the
// timing), then keep rotating from whatever is active as fast as they can.
const (
	childModeEnv    = "PHICRYPT_STORE_CHILD_MODE" // "rotation", "usage", "records" or "destroy"
	childLocEnv     = "PHICRYPT_STORE_CHILD_LOC"
	childBarrierEnv = "PHICRYPT_STORE_CHILD_BARRIER"
	childFirstEnv   = "PHICRYPT_STORE_CHILD_FIRST"
	childRounds     = 100
	childKeyID      = "shared-tenant"
)

var childResult = regexp.MustCompile(`(?m)^store-child wins=(\d+) conflicts=(\d+)$`)

// runTwoProcessRotation makes one branch key at loc, has two OS processes
// rotate it concurrently, and checks that exactly one version is active and
// that every successful rotation, and nothing else, is in the history.
func runTwoProcessRotation(t *testing.T, b Backend, childTest, loc string) {
	ctx := t.Context()
	s, err := b.Open(ctx, loc)
	require.NoError(t, err)
	v0 := NewVersion(childKeyID, keystore.StateActive)
	require.NoError(t, s.Create(ctx, v0))
	require.NoError(t, s.Close())

	barrier := t.TempDir()
	type result struct {
		out []byte
		err error
	}
	results := make([]result, 2)
	var wg sync.WaitGroup
	for i := range results {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+childTest+"$", "-test.count=1")
		cmd.Env = append(os.Environ(),
			childModeEnv+"=rotation", childLocEnv+"="+loc, childBarrierEnv+"="+barrier, childFirstEnv+"="+v0.Version,
			"GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
		wg.Go(func() {
			out, err := cmd.CombinedOutput()
			results[i] = result{out, err}
		})
	}
	wg.Wait()
	wins, conflicts := 0, 0
	for i, r := range results {
		require.NoError(t, r.err, "child %d:\n%s", i, r.out)
		m := childResult.FindSubmatch(r.out)
		require.NotNil(t, m, "child %d printed no result:\n%s", i, r.out)
		w, _ := strconv.Atoi(string(m[1]))
		c, _ := strconv.Atoi(string(m[2]))
		require.Equal(t, childRounds, w+c, "child %d", i)
		wins += w
		conflicts += c
	}
	t.Logf("%s: two processes made %d rotations and lost %d races", b.Name, wins, conflicts)
	require.Positive(t, conflicts, "both first rotations from one version won")

	s, err = b.Open(ctx, loc)
	require.NoError(t, err)
	defer s.Close()
	vs := RequireOneActive(t, s, childKeyID)
	require.Len(t, vs, 1+wins, "every winning rotation, and no other, is in the history")
}

// RunTwoProcesses races two OS processes on one store made by b: both
// rotate one branch key from the same version and on (exactly one wins
// each race, and the history holds every win and nothing else), then both
// add usage to one version (the total is exactly what they added), then
// one destroys the key while the other rotates it (the rotator ends on
// keystore.ErrDestroyed and every version is a tombstone). Each
// process is the test binary running childTest, a test of the caller's
// that calls Child(t, b) and does nothing otherwise.
func RunTwoProcesses(t *testing.T, b Backend, childTest string) {
	t.Run("Rotation", func(t *testing.T) { runTwoProcessRotation(t, b, childTest, b.Fresh(t)) })
	t.Run("Usage", func(t *testing.T) { runTwoProcessUsage(t, b, childTest, b.Fresh(t)) })
	t.Run("Destroy", func(t *testing.T) { runTwoProcessDestroy(t, b, childTest, b.Fresh(t)) })
}

// Child is the body of the child test RunTwoProcesses starts; in any other
// run it returns at once.
func Child(t *testing.T, b Backend) {
	switch os.Getenv(childModeEnv) {
	case "rotation":
		rotationChild(t, b)
	case "usage":
		usageChild(t, b)
	case "records":
		recordsChild(t, b)
	case "destroy":
		destroyChild(t, b)
	}
}

func rotationChild(t *testing.T, b Backend) {
	ctx := t.Context()
	s, err := b.Open(ctx, os.Getenv(childLocEnv))
	require.NoError(t, err)
	defer s.Close()
	waitAtBarrier(t, os.Getenv(childBarrierEnv), 2)

	wins, conflicts := 0, 0
	expected := os.Getenv(childFirstEnv)
	for range childRounds {
		err = s.Rotate(ctx, childKeyID, expected, NewVersion(childKeyID, keystore.StateActive))
		switch {
		case err == nil:
			wins++
		case errors.Is(err, keystore.ErrConflict):
			conflicts++
		default:
			t.Fatal(err)
		}
		active, err := s.Active(ctx, childKeyID)
		require.NoError(t, err)
		expected = active.Version
		// A pause with the lock free, so that a writer sleeping in SQLite's
		// busy handler gets its turn instead of losing every race at once.
		time.Sleep(time.Millisecond)
	}
	fmt.Printf("store-child wins=%d conflicts=%d\n", wins, conflicts)
}

// waitAtBarrier marks this process ready in dir and waits until n are.
func waitAtBarrier(t *testing.T, dir string, n int) {
	require.NoError(t, os.WriteFile(filepath.Join(dir, strconv.Itoa(os.Getpid())), nil, 0o600))
	deadline := time.Now().Add(30 * time.Second)
	for {
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		if len(entries) >= n {
			return
		}
		require.True(t, time.Now().Before(deadline), "the other process never reached the barrier")
		time.Sleep(time.Millisecond)
	}
}

func usageOf(t *testing.T, s keystore.Store, id, version string) uint64 {
	t.Helper()
	v, err := s.Get(t.Context(), id, version)
	require.NoError(t, err)
	return v.Usage
}

func testAddUsage(t *testing.T, s keystore.Store) {
	ctx := t.Context()
	v0 := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Create(ctx, v0))
	require.Zero(t, usageOf(t, s, "tenant", v0.Version))

	total, err := s.AddUsage(ctx, "tenant", v0.Version, 5)
	require.NoError(t, err)
	require.EqualValues(t, 5, total)
	total, err = s.AddUsage(ctx, "tenant", v0.Version, keystore.MaxUsageIncrement)
	require.NoError(t, err)
	require.EqualValues(t, 5+keystore.MaxUsageIncrement, total)
	active, err := s.Active(ctx, "tenant")
	require.NoError(t, err)
	require.EqualValues(t, 5+keystore.MaxUsageIncrement, active.Usage, "Active returns the count")

	// n out of range changes nothing.
	for _, n := range []uint64{0, keystore.MaxUsageIncrement + 1, 1 << 63} {
		_, err := s.AddUsage(ctx, "tenant", v0.Version, n)
		require.ErrorIs(t, err, keystore.ErrInvalid, "n=%d", n)
	}
	_, err = s.AddUsage(ctx, "tenant", "not-a-uuid", 1)
	require.ErrorIs(t, err, keystore.ErrInvalid)
	_, err = s.AddUsage(ctx, "", v0.Version, 1)
	require.ErrorIs(t, err, keystore.ErrInvalid)
	_, err = s.AddUsage(ctx, "tenant", keystore.NewBranchKeyVersion(), 1)
	require.ErrorIs(t, err, keystore.ErrNotFound)
	_, err = s.AddUsage(ctx, "nobody", v0.Version, 1)
	require.ErrorIs(t, err, keystore.ErrNotFound)
	require.EqualValues(t, 5+keystore.MaxUsageIncrement, usageOf(t, s, "tenant", v0.Version))

	// Rotate stores the next version's count as given, and a decrypt-only
	// version is still counted (a process may hold it as active briefly).
	v1 := NewVersion("tenant", keystore.StateActive)
	v1.Usage = 3
	require.NoError(t, s.Rotate(ctx, "tenant", v0.Version, v1))
	require.EqualValues(t, 3, usageOf(t, s, "tenant", v1.Version))
	total, err = s.AddUsage(ctx, "tenant", v0.Version, 1)
	require.NoError(t, err)
	require.EqualValues(t, 6+keystore.MaxUsageIncrement, total)

	// A retired version is not counted.
	require.NoError(t, s.SetState(ctx, "tenant", v0.Version, keystore.StateDecryptOnly, keystore.StateRetired))
	_, err = s.AddUsage(ctx, "tenant", v0.Version, 1)
	require.ErrorIs(t, err, keystore.ErrConflict)
	require.EqualValues(t, 6+keystore.MaxUsageIncrement, usageOf(t, s, "tenant", v0.Version))
	vs := RequireOneActive(t, s, "tenant")
	v0.State, v0.Usage = keystore.StateRetired, 6+keystore.MaxUsageIncrement
	RequireVersion(t, v0, vs[0])
	RequireVersion(t, v1, vs[1])

	// Create stores the count given; the count saturates at MaxUsage.
	full := NewVersion("full", keystore.StateActive)
	full.Usage = keystore.MaxUsage - 10
	require.NoError(t, s.Create(ctx, full))
	require.EqualValues(t, keystore.MaxUsage-10, usageOf(t, s, "full", full.Version))
	total, err = s.AddUsage(ctx, "full", full.Version, 10)
	require.NoError(t, err)
	require.EqualValues(t, uint64(keystore.MaxUsage), total)
	total, err = s.AddUsage(ctx, "full", full.Version, keystore.MaxUsageIncrement)
	require.NoError(t, err)
	require.EqualValues(t, uint64(keystore.MaxUsage), total, "saturates")
	over := NewVersion("over", keystore.StateActive)
	over.Usage = keystore.MaxUsage + 1
	require.ErrorIs(t, s.Create(ctx, over), keystore.ErrInvalid)
	over.BranchKeyID = "full"
	require.ErrorIs(t, s.Rotate(ctx, "full", full.Version, over), keystore.ErrInvalid)
}

// testConcurrentAddUsage adds from 32 goroutines over two handles on one
// store: the total is exact and every call saw a different total.
func testConcurrentAddUsage(t *testing.T, b Backend, s1, s2 keystore.Store) {
	ctx := t.Context()
	v0 := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s1.Create(ctx, v0))
	const goroutines, rounds = 32, 5
	totals := make([][]uint64, goroutines)
	var wg sync.WaitGroup
	var want uint64
	for i := range goroutines {
		s := s1
		if i%2 == 1 {
			s = s2
		}
		n := uint64(i + 1)
		want += rounds * n
		wg.Go(func() {
			for range rounds {
				total, err := s.AddUsage(ctx, "tenant", v0.Version, n)
				if !assert.NoError(t, err) {
					return
				}
				totals[i] = append(totals[i], total)
			}
		})
	}
	wg.Wait()
	requireUsage(t, b, want, usageOf(t, s2, "tenant", v0.Version))
	seen := map[uint64]bool{}
	for _, ts := range totals {
		require.True(t, slices.IsSorted(ts), "one goroutine's totals only grow")
		for _, total := range ts {
			require.False(t, seen[total], "two additions returned the same total %d", total)
			seen[total] = true
		}
	}
	if !b.RetriedUsageMayCount {
		require.True(t, seen[want], "the last addition returned the final total")
	}
}

// requireUsage checks a stored total against what was added: exactly, or,
// for a store whose retried additions may count twice, at least and
// within a few additions' worth.
func requireUsage(t *testing.T, b Backend, want, got uint64) {
	t.Helper()
	if !b.RetriedUsageMayCount {
		require.Equal(t, want, got, "every addition counted once")
		return
	}
	require.GreaterOrEqual(t, got, want, "every addition counted")
	require.LessOrEqual(t, got-want, uint64(64), "more than a few retried additions counted twice")
}

// Child processes of runTwoProcessUsage: like TestStoreRotationChild, both
// wait at a barrier, then add usage to one version as fast as they can.
const (
	usageChildVersionEnv = "PHICRYPT_STORE_USAGE_CHILD_VERSION"
	usageChildRounds     = 200
)

var usageChildResult = regexp.MustCompile(`(?m)^usage-child added=(\d+)$`)

// runTwoProcessUsage has two OS processes add usage to one version at
// once: the stored total is exactly what they added.
func runTwoProcessUsage(t *testing.T, b Backend, childTest, loc string) {
	ctx := t.Context()
	s, err := b.Open(ctx, loc)
	require.NoError(t, err)
	v0 := NewVersion(childKeyID, keystore.StateActive)
	v0.Usage = 1000
	require.NoError(t, s.Create(ctx, v0))
	require.NoError(t, s.Close())

	barrier := t.TempDir()
	outs := make([][]byte, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range outs {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+childTest+"$", "-test.count=1")
		cmd.Env = append(os.Environ(),
			childModeEnv+"=usage", childLocEnv+"="+loc, childBarrierEnv+"="+barrier, usageChildVersionEnv+"="+v0.Version,
			"GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
		wg.Go(func() { outs[i], errs[i] = cmd.CombinedOutput() })
	}
	wg.Wait()
	want := uint64(1000)
	for i := range outs {
		require.NoError(t, errs[i], "child %d:\n%s", i, outs[i])
		m := usageChildResult.FindSubmatch(outs[i])
		require.NotNil(t, m, "child %d printed no result:\n%s", i, outs[i])
		added, err := strconv.ParseUint(string(m[1]), 10, 64)
		require.NoError(t, err)
		want += added
	}
	s, err = b.Open(ctx, loc)
	require.NoError(t, err)
	defer s.Close()
	requireUsage(t, b, want, usageOf(t, s, childKeyID, v0.Version))
	RequireOneActive(t, s, childKeyID)
}

func usageChild(t *testing.T, b Backend) {
	version := os.Getenv(usageChildVersionEnv)
	ctx := t.Context()
	s, err := b.Open(ctx, os.Getenv(childLocEnv))
	require.NoError(t, err)
	defer s.Close()
	waitAtBarrier(t, os.Getenv(childBarrierEnv), 2)
	var added, last uint64
	for i := range uint64(usageChildRounds) {
		n := i%7 + 1
		total, err := s.AddUsage(ctx, childKeyID, version, n)
		require.NoError(t, err)
		require.Greater(t, total, last, "totals only grow")
		last = total
		added += n
	}
	fmt.Printf("usage-child added=%d\n", added)
}
