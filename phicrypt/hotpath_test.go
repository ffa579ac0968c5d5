package phicrypt_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

// testClock is a clock the test moves by hand, shared by the data-key
// cache, the hierarchical keyring and the branch keys.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newHierSetup(t *testing.T, now func() time.Time, opts ...func(*kms.Options)) *testkeys.Env {
	t.Helper()
	e := testkeys.New(t, testkeys.Options{Now: now, ClientOptions: opts})
	e.Create(t, "tenant-a")
	return e
}

// Item 1 of the hot-path issue: with a data-key cache (MaxAge 5 min) in
// front of a hierarchical keyring (CacheTTL 1 min), as OPERATIONS.md
// suggests, a rotation moves new messages to the new version within one
// CacheTTL, and a retirement makes the retired version's messages fail
// within one CacheTTL; data written after the rotation survives the
// retirement of the old version.
func TestRotationAndRetirementThroughTheDataKeyCache(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{t: time.Now()}
	s := newHierSetup(t, clock.Now)
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: s.Keys, BranchKeyID: "tenant-a",
		CacheTTL: time.Minute, Now: clock.Now})
	require.NoError(t, err)
	defer kr.Close()
	cache, err := phicrypt.NewCache(phicrypt.CacheConfig{MaxAge: 5 * time.Minute, Now: clock.Now})
	require.NoError(t, err)
	defer cache.Close()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, Cache: cache})
	require.NoError(t, err)
	ec := map[string]string{"tenant": "a"}

	before, err := enc.Encrypt(ctx, []byte("before the rotation"), ec)
	require.NoError(t, err)
	v1, err := s.Store.Active(ctx, "tenant-a")
	require.NoError(t, err)
	clock.Advance(time.Second)
	v2, err := testkeys.Custodian(t, s.Keys).Rotate(ctx, "tenant-a")
	require.NoError(t, err)
	require.WithinDuration(t, clock.Now().Add(time.Minute), kr.WritesFrom(v2), time.Millisecond)

	// One CacheTTL after the rotation, new messages are under version 2.
	clock.Advance(time.Minute)
	after, err := enc.Encrypt(ctx, []byte("after the rotation"), ec)
	require.NoError(t, err)
	// Retire version 1 (as the runbook does once data is re-encrypted).
	_, err = testkeys.Custodian(t, s.Keys).SetMinDecryptionVersion(ctx, "tenant-a", v2.Version)
	require.NoError(t, err)
	got, err := s.Store.Get(ctx, "tenant-a", v1.Version)
	require.NoError(t, err)
	require.Equal(t, keystore.StateRetired, got.State)

	// One CacheTTL after the retirement: the message written after the
	// rotation still opens; the one under version 1 fails, as retired.
	clock.Advance(time.Minute + time.Second)
	pt, _, err := enc.Decrypt(ctx, after, ec)
	require.NoError(t, err, "a message written one CacheTTL after the rotation must not depend on the old version")
	require.Equal(t, "after the rotation", string(pt))
	_, _, err = enc.Decrypt(ctx, before, ec)
	require.ErrorIs(t, err, keyring.ErrVersionRetired)
	require.ErrorIs(t, err, phicrypt.ErrNoKey)
}

// firstCallerGivesUp runs encrypt once under a context that ends after
// 50 ms, while the keyring call it started is slow, and then from waiters
// that joined it; it returns how many waiters failed and the first
// caller's error.
func firstCallerGivesUp(t *testing.T, waiters int, encrypt func(context.Context) error) (int32, error) {
	t.Helper()
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	firstErr := make(chan error, 1)
	go func() { firstErr <- encrypt(short) }()
	time.Sleep(10 * time.Millisecond) // the first caller starts the call
	var wg sync.WaitGroup
	var failures atomic.Int32
	for range waiters {
		wg.Go(func() {
			if err := encrypt(context.Background()); err != nil {
				failures.Add(1)
				t.Log(err)
			}
		})
	}
	err := <-firstErr
	wg.Wait()
	return failures.Load(), err
}

// Item 2: the caller that started a shared keyring call gives up; every
// other caller waiting for the same data key gets it, from one KMS call.
func TestOneCallersCancellationFailsNoOtherWaiter(t *testing.T) {
	ctx := context.Background()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	client := l.Client("svc")
	key, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	kr, err := keyring.NewKMS(keyring.KMSConfig{Client: client, Generator: aws.ToString(key.KeyMetadata.Arn)})
	require.NoError(t, err)
	cache, err := phicrypt.NewCache(phicrypt.CacheConfig{MaxAge: time.Minute})
	require.NoError(t, err)
	defer cache.Close()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, Cache: cache})
	require.NoError(t, err)
	ec := map[string]string{"tenant": "a"}
	l.SetFault("GenerateDataKey", kmsmock.Fault{Latency: 400 * time.Millisecond})

	failures, first := firstCallerGivesUp(t, 16, func(ctx context.Context) error {
		msg, err := enc.Encrypt(ctx, []byte("record"), ec)
		if err != nil {
			return err
		}
		_, _, err = enc.Decrypt(ctx, msg, ec)
		return err
	})
	require.ErrorIs(t, first, context.DeadlineExceeded, "the first caller stops waiting when its own context ends")
	require.Zero(t, failures, "no waiter fails because another caller's context ended")
	require.Equal(t, int64(1), l.Calls("GenerateDataKey"), "one KMS call served every caller")
}

// Item 2, the branch-key cache: the same through the hierarchical keyring.
func TestBranchKeyLoadSurvivesItsStartersCancellation(t *testing.T) {
	s := newHierSetup(t, nil)
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: s.Keys, BranchKeyID: "tenant-a", CacheTTL: time.Minute})
	require.NoError(t, err)
	defer kr.Close()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr})
	require.NoError(t, err)
	s.KMS.SetFault("Decrypt", kmsmock.Fault{Latency: 400 * time.Millisecond})
	ec := map[string]string{"tenant": "a"}

	failures, first := firstCallerGivesUp(t, 8, func(ctx context.Context) error {
		_, err := enc.Encrypt(ctx, []byte("record"), ec)
		return err
	})
	require.ErrorIs(t, first, context.DeadlineExceeded)
	require.Zero(t, failures)
	require.Equal(t, int64(1), s.KMS.Calls("Decrypt"))
}

// Item 4: through a KMS outage shorter than CacheTTL + StaleIfError,
// messages keep encrypting and decrypting under the hierarchical keyring
// (every stale use reported), and fail with the KMS error after it; a
// disabled key is never papered over.
func TestKMSOutageWithinTheStaleWindow(t *testing.T) {
	ctx := context.Background()
	noRetries := func(o *kms.Options) { o.RetryMaxAttempts = 1 }
	s := newHierSetup(t, nil, noRetries)
	var staleUses atomic.Int32
	var lastStale atomic.Value
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: s.Keys, BranchKeyID: "tenant-a",
		CacheTTL: 300 * time.Millisecond, StaleIfError: 1500 * time.Millisecond,
		OnStaleUse: func(u keyring.StaleUse) { staleUses.Add(1); lastStale.Store(u) }})
	require.NoError(t, err)
	defer kr.Close()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr})
	require.NoError(t, err)
	ec := map[string]string{"tenant": "a"}
	before, err := enc.Encrypt(ctx, []byte("before the outage"), ec)
	require.NoError(t, err)

	s.KMS.SetOutage(true)
	start := time.Now()
	for time.Since(start) < time.Second { // past CacheTTL, inside the window
		msg, err := enc.Encrypt(ctx, []byte("during the outage"), ec)
		require.NoError(t, err, "at %v into the outage", time.Since(start))
		_, _, err = enc.Decrypt(ctx, msg, ec)
		require.NoError(t, err)
		_, _, err = enc.Decrypt(ctx, before, ec)
		require.NoError(t, err)
		time.Sleep(50 * time.Millisecond)
	}
	require.Positive(t, staleUses.Load(), "stale uses are reported")
	u := lastStale.Load().(keyring.StaleUse)
	require.Contains(t, u.BranchKey, "branch key #")
	require.NotContains(t, u.BranchKey, "tenant-a")
	require.True(t, keyring.IsTransient(u.Err))

	// Past CacheTTL + StaleIfError: the KMS failure is reported.
	time.Sleep(CacheTTLPlusWindowRemaining(start, 300*time.Millisecond+1500*time.Millisecond))
	_, err = enc.Encrypt(ctx, []byte("too late"), ec)
	require.Error(t, err)
	require.True(t, keyring.IsTransient(err), "the error is the KMS failure: %v", err)

	// KMS back: it works again, without stale uses.
	s.KMS.SetOutage(false)
	_, err = enc.Encrypt(ctx, []byte("after"), ec)
	require.NoError(t, err)
}

// CacheTTLPlusWindowRemaining is how long to sleep from now until total
// has passed since start, plus a margin.
func CacheTTLPlusWindowRemaining(start time.Time, total time.Duration) time.Duration {
	return time.Until(start.Add(total + 200*time.Millisecond))
}

// Item 4: a refusal is never served stale. A disabled KMS key fails at the
// first reload after CacheTTL, whatever StaleIfError says.
func TestDisabledKeyIsNotServedStale(t *testing.T) {
	ctx := context.Background()
	s := newHierSetup(t, nil)
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: s.Keys, BranchKeyID: "tenant-a",
		CacheTTL: 200 * time.Millisecond, StaleIfError: time.Hour,
		OnStaleUse: func(keyring.StaleUse) { t.Error("a refusal was served stale") }})
	require.NoError(t, err)
	defer kr.Close()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr})
	require.NoError(t, err)
	ec := map[string]string{"tenant": "a"}
	_, err = enc.Encrypt(ctx, []byte("x"), ec)
	require.NoError(t, err)
	v, err := s.Store.Active(ctx, "tenant-a")
	require.NoError(t, err)
	client := s.KMS.Client("admin")
	_, err = client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(v.KMSKeyARN)})
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond)
	_, err = enc.Encrypt(ctx, []byte("x"), ec)
	require.Error(t, err)
	require.False(t, keyring.IsTransient(err))
	require.False(t, errors.Is(err, context.DeadlineExceeded))
}

// offsetClock is the real clock moved forward by hand, so timers and the
// cache's clock stay in step while a test skips minutes.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// staleSetup is a hierarchical keyring with a 30-minute stale window on a
// clock the test moves, and an Encryptor over it.
func staleSetup(t *testing.T) (*testkeys.Env, *offsetClock, *phicrypt.Encryptor) {
	t.Helper()
	clock := &offsetClock{}
	s := newHierSetup(t, clock.Now, func(o *kms.Options) { o.RetryMaxAttempts = 1 })
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: s.Keys, BranchKeyID: "tenant-a",
		CacheTTL: time.Minute, StaleIfError: 30 * time.Minute, Now: clock.Now})
	require.NoError(t, err)
	t.Cleanup(func() { kr.Close() })
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr})
	require.NoError(t, err)
	return s, clock, enc
}

// A refusal met once KMS is back (the key disabled during the outage) ends
// the stale serving of branch keys: the stale window bridges outages, not
// refusals.
func TestRefusalAfterAnOutageEndsStaleServing(t *testing.T) {
	ctx := context.Background()
	s, clock, enc := staleSetup(t)
	ec := map[string]string{"tenant": "a"}
	msg, err := enc.Encrypt(ctx, []byte("x"), ec)
	require.NoError(t, err)
	s.KMS.SetOutage(true)
	clock.Advance(2 * time.Minute)
	_, err = enc.Encrypt(ctx, []byte("x"), ec)
	require.NoError(t, err, "inside the stale window")
	s.KMS.SetOutage(false)
	_, err = s.Client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(s.ARN)})
	require.NoError(t, err)

	clock.Advance(2 * time.Second) // the next background retry meets the refusal
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, errE := enc.Encrypt(ctx, []byte("x"), ec)
		_, _, errD := enc.Decrypt(ctx, msg, ec)
		if errE != nil && errD != nil {
			require.False(t, keyring.IsTransient(errE), "the refusal stands: %v", errE)
			break
		}
		require.True(t, time.Now().Before(deadline), "still served stale after KMS refused the key")
		clock.Advance(time.Second)
		time.Sleep(50 * time.Millisecond)
	}
}

// A version retired while KMS is down stops decrypting within the retry
// interval, though the stale window is far from over: the store still
// answers, and a retirement is a refusal.
func TestRetirementDuringAnOutageEndsStaleServing(t *testing.T) {
	ctx := context.Background()
	s, clock, enc := staleSetup(t)
	ec := map[string]string{"tenant": "a"}
	v1, err := s.Store.Active(ctx, "tenant-a")
	require.NoError(t, err)
	msg, err := enc.Encrypt(ctx, []byte("x"), ec)
	require.NoError(t, err)
	_, err = testkeys.Custodian(t, s.Keys).Rotate(ctx, "tenant-a")
	require.NoError(t, err)
	s.KMS.SetOutage(true)
	clock.Advance(2 * time.Minute)
	_, _, err = enc.Decrypt(ctx, msg, ec)
	require.NoError(t, err, "served stale inside the window")
	require.NoError(t, s.Store.SetState(ctx, "tenant-a", v1.Version, keystore.StateDecryptOnly, keystore.StateRetired))

	deadline := time.Now().Add(5 * time.Second)
	for {
		clock.Advance(2 * time.Second)
		_, _, err = enc.Decrypt(ctx, msg, ec)
		if err != nil {
			require.ErrorIs(t, err, keyring.ErrVersionRetired)
			break
		}
		require.True(t, time.Now().Before(deadline), "a retired version is still served stale")
		time.Sleep(50 * time.Millisecond)
	}
}
