package phicrypt_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/audit"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
)

// kmsEncryptor returns an Encryptor over a KMS key in a fresh kmsmock, with
// the given cache, and the emulator to count calls on.
func kmsEncryptor(t testing.TB, cache *phicrypt.Cache, optFns ...func(*kms.Options)) (*phicrypt.Encryptor, *kmsmock.Local, string) {
	t.Helper()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	client := l.Client("svc", optFns...)
	key, err := client.CreateKey(context.Background(), &kms.CreateKeyInput{})
	require.NoError(t, err)
	arn := aws.ToString(key.KeyMetadata.Arn)
	kr, err := keyring.NewKMS(keyring.KMSConfig{Client: client, Generator: arn})
	require.NoError(t, err)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, Cache: cache})
	require.NoError(t, err)
	return enc, l, arn
}

func newCache(t testing.TB, cfg phicrypt.CacheConfig) *phicrypt.Cache {
	t.Helper()
	if cfg.MaxAge == 0 {
		cfg.MaxAge = time.Hour
	}
	c, err := phicrypt.NewCache(cfg)
	require.NoError(t, err)
	return c
}

// 64 goroutines missing the same entry at once make exactly one KMS call;
// the others wait for it and are counted as waiting.
func TestCacheSingleFlight(t *testing.T) {
	cache := newCache(t, phicrypt.CacheConfig{})
	enc, l, _ := kmsEncryptor(t, cache)
	l.SetFault("GenerateDataKey", kmsmock.Fault{Latency: 50 * time.Millisecond})
	ec := map[string]string{"tenant": "a"}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 64 {
		wg.Go(func() {
			<-start
			_, err := enc.Encrypt(context.Background(), []byte("record"), ec)
			require.NoError(t, err)
		})
	}
	close(start)
	wg.Wait()
	require.Equal(t, int64(1), l.Calls("GenerateDataKey"))
	st := cache.Stats()
	require.Equal(t, uint64(1), st.KeyringCalls)
	require.Equal(t, uint64(64), st.Hits+st.Misses)
}

// Many encrypts over 100 contexts with a long TTL make at most 100
// GenerateDataKey calls.
func TestCacheBoundsKMSCalls(t *testing.T) {
	cache := newCache(t, phicrypt.CacheConfig{})
	enc, l, _ := kmsEncryptor(t, cache)
	n := 1_000_000
	if raceEnabled {
		n = 100_000 // the race detector makes each encrypt ~10x slower
	}
	contexts := make([]map[string]string, 100)
	for i := range contexts {
		contexts[i] = map[string]string{"tenant": fmt.Sprint("tenant-", i)}
	}
	var wg sync.WaitGroup
	var done atomic.Int64
	for w := range 2 {
		wg.Go(func() {
			dst := make([]byte, 0, 1024)
			for i := w; i < n; i += 2 {
				if _, err := enc.EncryptAppend(context.Background(), dst[:0], nil, contexts[i%len(contexts)]); err != nil {
					t.Error(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int64(n), done.Load())
	require.LessOrEqual(t, l.Calls("GenerateDataKey"), int64(100))
	require.Equal(t, int64(100), l.Calls("GenerateDataKey"), "each context needs its own data key")
	t.Logf("%d encrypts over 100 contexts: %d GenerateDataKey calls; %+v", n, l.Calls("GenerateDataKey"), cache.Stats())
}

// The message and byte limits force a new data key exactly when reached.
func TestCacheLimitsForceNewKeys(t *testing.T) {
	ctx := context.Background()
	t.Run("messages", func(t *testing.T) {
		enc, l, _ := kmsEncryptor(t, newCache(t, phicrypt.CacheConfig{MaxMessages: 3}))
		for i, want := range []int64{1, 1, 1, 2, 2, 2, 3} {
			_, err := enc.Encrypt(ctx, []byte("x"), nil)
			require.NoError(t, err)
			require.Equal(t, want, l.Calls("GenerateDataKey"), "after message %d", i+1)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		enc, l, _ := kmsEncryptor(t, newCache(t, phicrypt.CacheConfig{MaxBytes: 100}))
		for i, want := range []int64{1, 1, 2, 2, 3} { // 40+40 fit in 100; 40 more do not
			_, err := enc.Encrypt(ctx, make([]byte, 40), nil)
			require.NoError(t, err)
			require.Equal(t, want, l.Calls("GenerateDataKey"), "after message %d", i+1)
		}
		_, err := enc.Encrypt(ctx, make([]byte, 101), nil)
		require.NoError(t, err)
		require.Equal(t, int64(4), l.Calls("GenerateDataKey"), "a message larger than MaxBytes bypasses the cache")
	})
	t.Run("age", func(t *testing.T) {
		var now atomic.Int64
		now.Store(time.Now().UnixNano())
		clock := func() time.Time { return time.Unix(0, now.Load()) }
		enc, l, _ := kmsEncryptor(t, newCache(t, phicrypt.CacheConfig{MaxAge: time.Minute, Now: clock}))
		_, err := enc.Encrypt(ctx, []byte("x"), nil)
		require.NoError(t, err)
		now.Add(int64(59 * time.Second))
		_, err = enc.Encrypt(ctx, []byte("x"), nil)
		require.NoError(t, err)
		require.Equal(t, int64(1), l.Calls("GenerateDataKey"))
		now.Add(int64(2 * time.Second))
		_, err = enc.Encrypt(ctx, []byte("x"), nil)
		require.NoError(t, err)
		require.Equal(t, int64(2), l.Calls("GenerateDataKey"))
	})
}

// Messages that share a cached data key still each decrypt, and a cached
// decrypt makes one KMS call for many reads of one message.
func TestCacheDecrypt(t *testing.T) {
	ctx := context.Background()
	cache := newCache(t, phicrypt.CacheConfig{})
	enc, l, _ := kmsEncryptor(t, cache)
	ec := map[string]string{"tenant": "a"}
	msgs := make([][]byte, 5)
	for i := range msgs {
		var err error
		msgs[i], err = enc.Encrypt(ctx, []byte(fmt.Sprint("record ", i)), ec)
		require.NoError(t, err)
	}
	require.NotEqual(t, msgs[0], msgs[1], "messages differ even under one data key")
	for range 3 {
		for i, msg := range msgs {
			pt, _, err := enc.Decrypt(ctx, msg, ec)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprint("record ", i), string(pt))
		}
	}
	require.Equal(t, int64(1), l.Calls("GenerateDataKey"))
	require.Equal(t, int64(1), l.Calls("Decrypt"), "all five messages carry the same encrypted data key")

	// A decrypt whose keyring call fails is not cached. The other
	// Encryptor shares the cache but not its entries.
	other, _, _ := kmsEncryptor(t, cache)
	msg, err := other.Encrypt(ctx, []byte("x"), ec)
	require.NoError(t, err)
	before := cache.Stats().KeyringCalls
	for range 2 {
		_, _, err = enc.Decrypt(ctx, msg, ec)
		require.ErrorIs(t, err, phicrypt.ErrNoKey)
	}
	require.Equal(t, before+2, cache.Stats().KeyringCalls, "failures are not cached")
}

// Under 20 % throttling and internal errors every operation still succeeds:
// the SDK retries and the cache only holds successes.
func TestCacheUnderKMSFaults(t *testing.T) {
	ctx := context.Background()
	retries := func(o *kms.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 12
			so.MaxBackoff = time.Millisecond
			so.RateLimiter = ratelimit.None
		})
	}
	cache := newCache(t, phicrypt.CacheConfig{MaxMessages: 2})
	enc, l, _ := kmsEncryptor(t, cache, retries)
	l.SetFault("", kmsmock.Fault{ThrottleRate: 0.1, InternalErrorRate: 0.1})
	for i := range 100 {
		ec := map[string]string{"tenant": fmt.Sprint(i % 7)}
		msg, err := enc.Encrypt(ctx, []byte("phi"), ec)
		require.NoError(t, err)
		pt, _, err := enc.Decrypt(ctx, msg, ec)
		require.NoError(t, err)
		require.True(t, bytes.Equal(pt, []byte("phi")))
	}
	require.Greater(t, l.Calls("GenerateDataKey"), int64(50), "MaxMessages 2 needs a key every other message, plus retries")
}

func TestCacheConfigRefusals(t *testing.T) {
	for _, cfg := range []phicrypt.CacheConfig{{}, {MaxAge: -1}, {MaxAge: time.Hour, MaxMessages: 1<<32 + 1}, {MaxAge: time.Hour, Capacity: -1}} {
		_, err := phicrypt.NewCache(cfg)
		require.Error(t, err, "%+v", cfg)
	}
}

// BenchmarkEncrypt1KiBCachedKMS: a 1 KiB message with the KMS keyring on a
// cache hit; kmscalls/op shows how many messages a KMS call serves.
func BenchmarkEncrypt1KiBCachedKMS(b *testing.B) {
	enc, l, _ := kmsEncryptor(b, newCache(b, phicrypt.CacheConfig{}))
	ec := map[string]string{"tenant": "general-hospital"}
	pt := make([]byte, 1024)
	dst := make([]byte, 0, 4096)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.EncryptAppend(context.Background(), dst[:0], pt, ec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(l.Calls("GenerateDataKey"))/float64(b.N), "kmscalls/op")
}

func BenchmarkDecrypt1KiBCachedKMS(b *testing.B) {
	enc, l, _ := kmsEncryptor(b, newCache(b, phicrypt.CacheConfig{}))
	ec := map[string]string{"tenant": "general-hospital"}
	msg, err := enc.Encrypt(context.Background(), make([]byte, 1024), ec)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, 4096)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := enc.DecryptAppend(context.Background(), dst[:0], msg, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(l.Calls("Decrypt"))/float64(b.N), "kmscalls/op")
}

// manualClock is a clock tests move by hand.
type manualClock struct{ ns atomic.Int64 }

func newManualClock() *manualClock {
	c := &manualClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *manualClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *manualClock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func oneAttempt(o *kms.Options)                { o.RetryMaxAttempts = 1 }
func eventually(t *testing.T, cond func() bool) {
	require.Eventually(t, cond, 10*time.Second, 5*time.Millisecond)
}

// With refresh-ahead, an entry near expiry is replaced in the background:
// with KMS answering in 50 ms, no caller waits while a valid entry exists.
func TestCacheRefreshAhead(t *testing.T) {
	ctx := context.Background()
	clock := newManualClock()
	cache := newCache(t, phicrypt.CacheConfig{MaxAge: time.Minute, RefreshAhead: 20 * time.Second, Now: clock.now})
	enc, l, _ := kmsEncryptor(t, cache)
	l.SetFault("GenerateDataKey", kmsmock.Fault{Latency: 50 * time.Millisecond})
	ec := map[string]string{"tenant": "a"}
	_, err := enc.Encrypt(ctx, []byte("x"), ec)
	require.NoError(t, err)

	clock.advance(45 * time.Second) // inside the refresh window
	for range 200 {
		_, err := enc.Encrypt(ctx, []byte("x"), ec)
		require.NoError(t, err)
	}
	eventually(t, func() bool { return l.Calls("GenerateDataKey") == 2 })
	// The refreshed entry has replaced the first one.
	eventually(t, func() bool { st := cache.Stats(); return st.Refreshes == 1 && st.Evictions == 1 })

	clock.advance(30 * time.Second) // the first entry has expired; the refreshed one has not
	for range 50 {
		_, err := enc.Encrypt(ctx, []byte("x"), ec)
		require.NoError(t, err)
	}
	st := cache.Stats()
	require.Equal(t, int64(2), l.Calls("GenerateDataKey"))
	require.Equal(t, uint64(0), st.Waits, "no caller waited on KMS")
	require.Equal(t, uint64(1), st.Misses, "only the very first message missed")
}

// While KMS is down, an expired entry serves within the stale window, each
// use reported; beyond it, a clear error. A refusal is never served stale.
func TestCacheStaleIfError(t *testing.T) {
	ctx := context.Background()
	clock := newManualClock()
	var uses []phicrypt.StaleUse
	var mu sync.Mutex
	log := memoryAuditLog(t)
	cache := newCache(t, phicrypt.CacheConfig{MaxAge: time.Minute, StaleIfError: 5 * time.Minute, Now: clock.now,
		OnStaleUse: func(u phicrypt.StaleUse) { mu.Lock(); uses = append(uses, u); mu.Unlock() },
		Audit:      &keyring.AuditConfig{Log: log, Hasher: log.hasher, Actor: "svc"}})
	enc, l, arn := kmsEncryptor(t, cache, oneAttempt)
	ec := map[string]string{"tenant": "a"}
	_, err := enc.Encrypt(ctx, []byte("x"), ec)
	require.NoError(t, err)

	l.SetOutage(true)
	clock.advance(2 * time.Minute)
	msg, err := enc.Encrypt(ctx, []byte("during the outage"), ec)
	require.NoError(t, err, "an outage inside the stale window keeps serving")
	require.Equal(t, uint64(1), cache.Stats().StaleServes)
	mu.Lock()
	require.Len(t, uses, 1)
	require.InDelta(t, float64(time.Minute), float64(uses[0].ExpiredFor), float64(time.Second))
	mu.Unlock()
	recs := log.parsed(t)
	require.Len(t, recs, 1, "the stale serve is in the audit log")
	require.Equal(t, audit.KindStaleServe, recs[0].Kind)
	require.Equal(t, "svc", recs[0].Actor)
	require.True(t, recs[0].Key.IsZero(), "a KMS keyring's entry names no branch key")

	clock.advance(5 * time.Minute) // beyond the stale window
	_, err = enc.Encrypt(ctx, []byte("x"), ec)
	require.Error(t, err, "beyond the window the outage is an error")
	l.SetOutage(false)
	pt, _, err := enc.Decrypt(ctx, msg, ec)
	require.NoError(t, err)
	require.Equal(t, "during the outage", string(pt))

	// A disabled key is a refusal, not an outage: nothing stale is served.
	_, err = enc.Encrypt(ctx, []byte("x"), ec)
	require.NoError(t, err)
	_, err = l.Client("svc").DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(arn)})
	require.NoError(t, err)
	clock.advance(2 * time.Minute)
	_, err = enc.Encrypt(ctx, []byte("x"), ec)
	require.ErrorContains(t, err, "DisabledException")
}

// On a cache hit, EncryptAppend and DecryptAppend into a buffer with room
// allocate only the message's AES-GCM instance: aes.NewCipher (the key
// schedule) and cipher.NewGCM (the GCM state). Each message has its own key,
// derived from the cached data key and a random message id, and the
// standard library cannot re-key an instance. DecryptAppend also allocates
// the context map it returns (a map header and one group), which is the
// caller's to keep.
func TestCachedHotPathAllocations(t *testing.T) {
	const aesGCM = 2     // aes.NewCipher + cipher.NewGCM
	const contextMap = 2 // the returned map: header + one group
	ctx := context.Background()
	enc, _, _ := kmsEncryptor(t, newCache(t, phicrypt.CacheConfig{}))
	for _, ec := range []map[string]string{{"tenant": "general-hospital", "purpose": "treatment"}, nil} {
		pt := make([]byte, 1024)
		msg, err := enc.Encrypt(ctx, pt, ec) // fills the encrypt entry
		require.NoError(t, err)
		_, _, err = enc.Decrypt(ctx, msg, nil) // fills the decrypt entry
		require.NoError(t, err)
		dst := make([]byte, 0, 4096)
		encAllocs := testing.AllocsPerRun(200, func() {
			if _, err := enc.EncryptAppend(ctx, dst[:0], pt, ec); err != nil {
				t.Fatal(err)
			}
		})
		decAllocs := testing.AllocsPerRun(200, func() {
			if _, _, err := enc.DecryptAppend(ctx, dst[:0], msg, nil); err != nil {
				t.Fatal(err)
			}
		})
		// Expecting exactly the pairs the header holds costs nothing more.
		expAllocs := testing.AllocsPerRun(200, func() {
			if _, _, err := enc.DecryptAppend(ctx, dst[:0], msg, ec); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("context %d pairs: encrypt %v, decrypt %v, decrypt expecting the context %v allocations", len(ec), encAllocs, decAllocs, expAllocs)
		if raceEnabled {
			continue // the race detector allocates on its own account
		}
		require.LessOrEqual(t, encAllocs, float64(aesGCM), "EncryptAppend on a cache hit")
		require.LessOrEqual(t, decAllocs, float64(aesGCM+contextMap), "DecryptAppend on a cache hit")
		require.LessOrEqual(t, expAllocs, float64(aesGCM+contextMap), "DecryptAppend on a cache hit, expecting the header's pairs")
	}
}

// A context too long to key the cache by its bytes is keyed by its digest:
// still one data key per context, and contexts that differ do not share.
func TestCacheLongContext(t *testing.T) {
	ctx := context.Background()
	enc, l, _ := kmsEncryptor(t, newCache(t, phicrypt.CacheConfig{}))
	long := func(c byte) map[string]string {
		return map[string]string{"tenant": string(bytes.Repeat([]byte{c}, 2000))}
	}
	for range 3 {
		for _, c := range []byte{'a', 'b'} {
			msg, err := enc.Encrypt(ctx, []byte("phi"), long(c))
			require.NoError(t, err)
			pt, got, err := enc.Decrypt(ctx, msg, long(c))
			require.NoError(t, err)
			require.Equal(t, "phi", string(pt))
			require.Equal(t, long(c), got)
		}
	}
	require.Equal(t, int64(2), l.Calls("GenerateDataKey"))
	require.Equal(t, int64(2), l.Calls("Decrypt"))
}

// A MaxAge of "never" with a stale window keeps every entry: the window is
// added without wrapping into the past (found in review: each insert used to
// evict all other entries).
func TestCacheNeverExpiresWithStaleWindow(t *testing.T) {
	ctx := context.Background()
	for _, stale := range []time.Duration{0, time.Hour} {
		cache := newCache(t, phicrypt.CacheConfig{MaxAge: time.Duration(math.MaxInt64), StaleIfError: stale})
		enc, l, _ := kmsEncryptor(t, cache)
		for range 3 {
			for _, v := range []string{"a", "b"} {
				_, err := enc.Encrypt(ctx, []byte("x"), map[string]string{"k": v})
				require.NoError(t, err)
			}
		}
		require.Equal(t, int64(2), l.Calls("GenerateDataKey"), "stale window %v", stale)
	}
}

// auditLogForTest is an audit log in memory with its hasher.
type auditLogForTest struct {
	*audit.Log
	hasher *audit.Hasher
}

func memoryAuditLog(t *testing.T) auditLogForTest {
	t.Helper()
	skey, _, err := note.GenerateKey(nil, "audit.test/phicrypt")
	require.NoError(t, err)
	signer, err := note.NewSigner(skey)
	require.NoError(t, err)
	l, err := audit.NewLog(audit.Config{Sink: audit.NewMemorySink(), Signer: signer})
	require.NoError(t, err)
	h, err := audit.NewHasher(make([]byte, audit.MinHashKeySize))
	require.NoError(t, err)
	return auditLogForTest{l, h}
}

func (l auditLogForTest) parsed(t *testing.T) []audit.Record {
	t.Helper()
	raw, err := l.Records(0, l.Size())
	require.NoError(t, err)
	var out []audit.Record
	for _, b := range raw {
		r, err := audit.ParseRecord(b)
		require.NoError(t, err)
		out = append(out, r)
	}
	return out
}
