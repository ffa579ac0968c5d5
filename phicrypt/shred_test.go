package phicrypt_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

// patientKeyring is a hierarchical keyring with one branch key per patient,
// chosen by the branch key id supplier from the encryption context.
func patientKeyring(t *testing.T, e *testkeys.Env, now func() time.Time) *keyring.Hierarchical {
	t.Helper()
	// A propagation window of 1 ns: a rotation's new version is written
	// under at once (this test is one process).
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: e.Keys, CacheTTL: time.Minute, Now: now,
		PropagationWindow: time.Nanosecond,
		BranchKeyIDSupplier: func(ec map[string]string) (string, error) {
			if ec["patient"] == "" {
				return "", errors.New("no patient in the encryption context")
			}
			return "patient-" + ec["patient"], nil
		}})
	require.NoError(t, err)
	t.Cleanup(func() { kr.Close() })
	return kr
}

func patientEC(p string) map[string]string { return map[string]string{"patient": p} }

// requireDestroyed checks that err says the key was destroyed, and nothing
// else: not an authentication failure, not a retired version, and without
// the branch key id.
func requireDestroyed(t *testing.T, err error) {
	t.Helper()
	require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
	require.NotErrorIs(t, err, phicrypt.ErrAuthentication)
	require.NotErrorIs(t, err, keyring.ErrVersionRetired)
	require.NotContains(t, err.Error(), "patient-")
	require.Contains(t, err.Error(), "branch key #")
}

// TestShredPerPatient: one branch key per patient; destroying one version
// of patient A's key makes exactly the messages under it fail with
// ErrKeyDestroyed (A's other versions and patient B still decrypt), and
// destroying A's whole key forgets A: nothing of A decrypts or encrypts.
// In this process Forget (keyring) and ForgetBranchKey (data-key cache)
// make it take effect at once; a new process (a cold keyring) sees it at
// once too.
func TestShredPerPatient(t *testing.T) {
	ctx := context.Background()
	e := testkeys.New(t, testkeys.Options{})
	e.Create(t, "patient-A")
	e.Create(t, "patient-B")
	kr := patientKeyring(t, e, nil)
	cache := newCache(t, phicrypt.CacheConfig{MaxAge: time.Hour})
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, Cache: cache})
	require.NoError(t, err)
	seal := func(p, text string) []byte {
		msg, err := enc.Encrypt(ctx, []byte(text), patientEC(p))
		require.NoError(t, err)
		return msg
	}
	open := func(enc *phicrypt.Encryptor, p string, msg []byte) (string, error) {
		pt, _, err := enc.Decrypt(ctx, msg, patientEC(p))
		return string(pt), err
	}

	aOld := seal("A", "A under version 1")
	bMsg := seal("B", "B's record")
	custodian := testkeys.Custodian(t, e.Keys)
	v1, err := e.Store.Active(ctx, "patient-A")
	require.NoError(t, err)
	_, err = custodian.Rotate(ctx, "patient-A")
	require.NoError(t, err)
	kr.Forget("patient-A") // write under the new version at once
	require.Equal(t, 1, cache.ForgetBranchKey("patient-A"))
	aNew := seal("A", "A under version 2")
	for _, m := range []struct{ p, want string }{{"A", "A under version 1"}, {"A", "A under version 2"}, {"B", "B's record"}} {
		msg := map[string][]byte{"A under version 1": aOld, "A under version 2": aNew, "B's record": bMsg}[m.want]
		got, err := open(enc, m.p, msg)
		require.NoError(t, err)
		require.Equal(t, m.want, got)
	}

	// Destroy version 1: cached in this process until forgotten.
	require.NoError(t, custodian.DestroyVersion(ctx, "patient-A", v1.Version))
	_, err = open(enc, "A", aOld)
	require.NoError(t, err, "still cached here (bounded by CacheTTL)")
	kr.Forget("patient-A")
	require.Positive(t, cache.ForgetBranchKey("patient-A"))
	_, err = open(enc, "A", aOld)
	requireDestroyed(t, err)
	require.ErrorIs(t, err, phicrypt.ErrNoKey)
	got, err := open(enc, "A", aNew)
	require.NoError(t, err)
	require.Equal(t, "A under version 2", got)

	// A process that starts now never had it.
	cold, err := phicrypt.New(phicrypt.Config{Keyring: patientKeyring(t, e, nil)})
	require.NoError(t, err)
	_, err = open(cold, "A", aOld)
	requireDestroyed(t, err)
	got, err = open(cold, "A", aNew)
	require.NoError(t, err)
	require.Equal(t, "A under version 2", got)

	// Forget patient A: one call.
	require.NoError(t, custodian.DestroyKey(ctx, "patient-A"))
	kr.Forget("patient-A")
	cache.ForgetBranchKey("patient-A")
	fresh, err := phicrypt.New(phicrypt.Config{Keyring: patientKeyring(t, e, nil)})
	require.NoError(t, err)
	for _, e := range []*phicrypt.Encryptor{enc, fresh} {
		for _, msg := range [][]byte{aOld, aNew} {
			_, err := open(e, "A", msg)
			requireDestroyed(t, err)
		}
		_, err := e.Encrypt(ctx, []byte("new data for A"), patientEC("A"))
		requireDestroyed(t, err)
		got, err := open(e, "B", bMsg)
		require.NoError(t, err, "patient B is untouched")
		require.Equal(t, "B's record", got)
		_, err = e.Encrypt(ctx, []byte("new data for B"), patientEC("B"))
		require.NoError(t, err)
	}
	// A retry of the destroy is safe, and a new key under A's id is refused.
	require.NoError(t, custodian.DestroyKey(ctx, "patient-A"))
	_, err = custodian.CreateBranchKey(ctx, "patient-A")
	require.Error(t, err)
}

// TestShredWithinCacheTTL: a process that holds the branch key (and data
// keys) in its caches, and is not told of the destroy, fails with
// ErrKeyDestroyed once its CacheTTL has passed, not later, and is never
// served the destroyed key as stale.
func TestShredWithinCacheTTL(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{t: time.Now()}
	e := testkeys.New(t, testkeys.Options{})
	e.Create(t, "patient-A")
	e.Create(t, "patient-B")
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: e.Keys, CacheTTL: time.Minute, Now: clock.Now,
		StaleIfError:        time.Hour,
		BranchKeyIDSupplier: func(ec map[string]string) (string, error) { return "patient-" + ec["patient"], nil }})
	require.NoError(t, err)
	defer kr.Close()
	cache := newCache(t, phicrypt.CacheConfig{MaxAge: time.Hour, Now: clock.Now, StaleIfError: time.Hour})
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, Cache: cache})
	require.NoError(t, err)
	msgs := map[string][]byte{}
	for _, p := range []string{"A", "B"} {
		msgs[p], err = enc.Encrypt(ctx, []byte("record of "+p), patientEC(p))
		require.NoError(t, err)
		_, _, err = enc.Decrypt(ctx, msgs[p], patientEC(p))
		require.NoError(t, err)
	}

	require.NoError(t, testkeys.Custodian(t, e.Keys).DestroyKey(ctx, "patient-A"))
	clock.Advance(30 * time.Second)
	_, _, err = enc.Decrypt(ctx, msgs["A"], patientEC("A"))
	require.NoError(t, err, "within CacheTTL this process may still decrypt")
	clock.Advance(31 * time.Second)
	_, _, err = enc.Decrypt(ctx, msgs["A"], patientEC("A"))
	requireDestroyed(t, err)
	_, err = enc.Encrypt(ctx, []byte("more"), patientEC("A"))
	requireDestroyed(t, err)
	pt, _, err := enc.Decrypt(ctx, msgs["B"], patientEC("B"))
	require.NoError(t, err)
	require.Equal(t, "record of B", string(pt))
	require.Zero(t, cache.Stats().StaleServes, "a destroyed key is a refusal, never served stale")
}

// After a custodian destroys a patient's branch key, a service drops what
// its caches hold of it at once: the keyring's branch keys (Forget) and the
// data keys wrapped under them (ForgetBranchKey, which says how many it
// evicted; none here, as nothing was encrypted).
func ExampleCache_ForgetBranchKey() {
	cache, _ := phicrypt.NewCache(phicrypt.CacheConfig{MaxAge: time.Minute})
	defer cache.Close()
	// After custody.BranchKeys.DestroyKey(ctx, "patient-MRN-0042") and
	// keyring.Hierarchical.Forget("patient-MRN-0042"):
	fmt.Println(cache.ForgetBranchKey("patient-MRN-0042"))
	// Output: 0
}
