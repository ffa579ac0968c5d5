package phicrypt

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/keyring"
)

func testCache(t *testing.T, capacity int) *Cache {
	t.Helper()
	c, err := NewCache(CacheConfig{MaxAge: time.Hour, Capacity: capacity})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// encryptKey and decryptKey build cache keys as Encrypt and Decrypt do.
func (c *Cache) encryptKey(owner *[16]byte, suite Suite, serializedContext []byte) []byte {
	return append(appendCacheKeyPrefix(nil, owner, 'E', suite), serializedContext...)
}

func (c *Cache) decryptKey(owner *[16]byte, suite Suite, edks []keyring.EncryptedDataKey, serializedContext []byte) []byte {
	key := appendEDKSection(appendCacheKeyPrefix(nil, owner, 'D', suite), edks)
	return append(key, serializedContext...)
}

// testGet is lookup, then miss.
func (c *Cache) testGet(ctx context.Context, key []byte, size uint64, fill func() (*cacheEntry, error)) (*cacheEntry, error) {
	if e, _ := c.lookup(key, size); e != nil {
		return e, nil
	}
	return c.miss(ctx, key, size, func(context.Context) (*cacheEntry, error) { return fill() })
}

func entryWithKey(b byte) func() (*cacheEntry, error) {
	return func() (*cacheEntry, error) {
		return &cacheEntry{dataKey: keyring.Secret(bytes.Repeat([]byte{b}, 32))}, nil
	}
}

// A hit takes no lock and allocates nothing.
func TestCacheHitAllocatesNothing(t *testing.T) {
	c := testCache(t, 10)
	var owner [16]byte
	ctx := context.Background()
	serialized := []byte("\x00\x01\x00\x06tenant\x00\x01a")
	e, err := c.testGet(ctx, c.encryptKey(&owner, SuiteCommitted, serialized), 10, entryWithKey(1))
	if err != nil {
		t.Fatal(err)
	}
	e.release()
	key := c.encryptKey(&owner, SuiteCommitted, serialized)
	allocs := testing.AllocsPerRun(1000, func() {
		e, _ := c.lookup(key, 10)
		if e == nil || e.dataKey[0] != 1 {
			t.Fatal("missed a cached entry")
		}
		e.release()
	})
	if allocs != 0 && !raceEnabledInternal {
		t.Fatalf("a cache hit allocates %v times", allocs)
	}
}

// Evicted keys are overwritten, but only once no message uses them.
func TestCacheEvictionWipesUnusedKeys(t *testing.T) {
	c := testCache(t, 1)
	ctx := context.Background()
	var owner [16]byte
	a, _ := c.testGet(ctx, c.encryptKey(&owner, SuiteCommitted, []byte("a")), 1, entryWithKey(0xAA))
	// a is in use while b's insert evicts it.
	b, _ := c.testGet(ctx, c.encryptKey(&owner, SuiteCommitted, []byte("b")), 1, entryWithKey(0xBB))
	if a.dataKey[0] != 0xAA {
		t.Fatal("an evicted key was wiped while a message was using it")
	}
	a.release()
	if !bytes.Equal(a.dataKey, make([]byte, 32)) {
		t.Fatal("an evicted key was not wiped after its last use")
	}
	b.release()
	// c evicts b, which nobody uses: wiped at once.
	cc, _ := c.testGet(ctx, c.encryptKey(&owner, SuiteCommitted, []byte("c")), 1, entryWithKey(0xCC))
	if !bytes.Equal(b.dataKey, make([]byte, 32)) {
		t.Fatal("an unused evicted key was not wiped")
	}
	cc.release()
	if st := c.Stats(); st.Evictions != 2 || st.KeyringCalls != 3 {
		t.Fatalf("stats %+v", st)
	}
	// An evicted entry refuses new references.
	if a.acquire() {
		t.Fatal("an evicted entry handed out a reference")
	}
}

// Different owners and suites never share entries.
func TestCacheKeysSeparateOwnersAndSuites(t *testing.T) {
	c := testCache(t, 10)
	var o1, o2 [16]byte
	o2[0] = 1
	ctx := []byte("same context")
	long := bytes.Repeat([]byte("x"), maxRawCacheKey)
	var d1, d2 [digestKeyLen]byte
	keys := map[string]bool{
		string(c.encryptKey(&o1, SuiteCommitted, ctx)):                                                true,
		string(c.encryptKey(&o2, SuiteCommitted, ctx)):                                                true,
		string(c.encryptKey(&o1, SuiteCommittedSigned, ctx)):                                          true,
		string(c.decryptKey(&o1, SuiteCommitted, nil, ctx)):                                           true,
		string(c.decryptKey(&o1, SuiteCommitted, []keyring.EncryptedDataKey{{ProviderID: "p"}}, ctx)): true,
		// Long keys are digests, still apart by owner, kind and content.
		string(cacheKeyOf(c.encryptKey(&o1, SuiteCommitted, long), &d1)):      true,
		string(cacheKeyOf(c.decryptKey(&o1, SuiteCommitted, nil, long), &d2)): true,
		string(cacheKeyOf(c.encryptKey(&o1, SuiteCommitted, long[1:]), &d1)):  true,
	}
	if len(keys) != 8 {
		t.Fatal("cache keys collide across owners, suites or kinds")
	}
}

// Item 5 of the hot-path issue: a data key past MaxAge is wiped within a
// bounded time (a timer at expiry) though nothing uses the cache again;
// with StaleIfError, at the end of the stale window instead.
func TestExpiredDataKeyIsWipedWithoutFurtherUse(t *testing.T) {
	const maxAge = 600 * time.Millisecond
	for _, stale := range []time.Duration{0, 600 * time.Millisecond} {
		c, err := NewCache(CacheConfig{MaxAge: maxAge, StaleIfError: stale})
		if err != nil {
			t.Fatal(err)
		}
		key := c.encryptKey(&[16]byte{1}, SuiteCommitted, nil)
		start := time.Now()
		e, err := c.testGet(context.Background(), key, 1, entryWithKey(7))
		if err != nil {
			t.Fatal(err)
		}
		dk := e.dataKey
		e.release()
		time.Sleep(maxAge + stale - 400*time.Millisecond)
		if bytes.Equal(dk, make([]byte, len(dk))) && time.Since(start) < maxAge+stale {
			t.Fatalf("stale %v: wiped before its time (within the stale window it may still serve)", stale)
		}
		time.Sleep(time.Until(start.Add(maxAge + stale + 500*time.Millisecond)))
		if !bytes.Equal(dk, make([]byte, len(dk))) {
			t.Fatalf("stale %v: an expired data key is still in memory 500 ms after it could last be used", stale)
		}
		if n := len(*c.entries.Load()); n != 0 {
			t.Fatalf("stale %v: %d entries left", stale, n)
		}
		c.Close()
	}
}

// Close wipes every data key not in use at once, and one in use when its
// message ends; the cache refuses work after.
func TestCloseWipesEveryDataKey(t *testing.T) {
	c := testCache(t, 10)
	var held, idle *cacheEntry
	for i, p := range []**cacheEntry{&held, &idle} {
		key := c.encryptKey(&[16]byte{byte(i)}, SuiteCommitted, nil)
		e, err := c.testGet(context.Background(), key, 1, entryWithKey(byte(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		*p = e
	}
	idle.release()
	heldKey, idleKey := held.dataKey, idle.dataKey
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, len(idleKey))
	if !bytes.Equal(idleKey, zero) {
		t.Fatal("Close left an idle data key in memory")
	}
	if bytes.Equal(heldKey, zero) {
		t.Fatal("Close wiped a key a message is still using")
	}
	held.release()
	if !bytes.Equal(heldKey, zero) {
		t.Fatal("the key in use was not wiped when its message ended")
	}
	key := c.encryptKey(&[16]byte{9}, SuiteCommitted, nil)
	if _, err := c.testGet(context.Background(), key, 1, entryWithKey(9)); err == nil {
		t.Fatal("a closed cache served a new entry")
	}
}
