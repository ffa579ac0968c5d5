package phicrypt

import (
	"context"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phicrypt/phicrypt/internal/flight"
	"github.com/phicrypt/phicrypt/keyring"
)

// Cache keeps data keys between keyring calls, with the AWS Encryption SDK's
// caching semantics (framework/caching-cmm.md): an entry serves at most
// MaxAge, MaxMessages messages and MaxBytes of plaintext, then the next
// message gets a new data key. Encrypt entries are keyed by owning
// Encryptor, suite and encryption context; decrypt entries by owning
// Encryptor, suite, the message's encrypted data keys and context.
// Concurrent misses for one entry make one keyring call (single flight).
// Failures are not cached.
//
// A cache hit takes no lock and allocates nothing: entries live in an
// immutable map replaced on insert. Evicted data keys are overwritten once
// no message is using them; Go cannot promise that no other copy exists
// (the runtime may have moved or copied the bytes), so this narrows, not
// closes, the window in which a memory dump shows them.
//
// One Cache may serve several Encryptors: each Encryptor's entries are its
// own (its keyring made them), and they share the capacity.
type Cache struct {
	cfg CacheConfig

	// entries is keyed by the bytes cacheKeyOf returns. A lookup indexes it
	// with string(key), which the compiler does without allocating.
	entries atomic.Pointer[map[string]*cacheEntry]

	mu     sync.Mutex // guards inserts, evictions and closed
	closed bool
	loads  *flight.Group[string, *cacheEntry]

	now   func() int64 // unix nanoseconds
	stats cacheCounters
}

// CacheConfig configures a Cache.
type CacheConfig struct {
	// MaxAge bounds how long a data key is used (required).
	MaxAge time.Duration
	// MaxMessages bounds the messages per data key (default and at most
	// 2^32, the ESDK's limit).
	MaxMessages uint64
	// MaxBytes bounds the plaintext bytes per data key (default 2^63-1).
	MaxBytes uint64
	// Capacity bounds the entries; the least recently used is evicted
	// first (default 1000).
	Capacity int
	// Partition names the cache, as the ESDK's partition does. Every Cache
	// value is its own namespace (entries are never shared between two
	// Cache values, whatever their partitions), so in-process it only
	// documents intent.
	Partition string
	// RefreshAhead, when set, refreshes an entry in the background once it
	// is that close to MaxAge, while callers keep using it: no caller waits
	// on the keyring while a valid entry exists.
	RefreshAhead time.Duration
	// StaleIfError, when set, lets an expired entry serve for up to this
	// long after its expiry while the keyring fails with transient errors
	// (throttling, KMS internal errors, network failures; never refusals
	// such as a disabled key or denied access). Every such use is counted
	// and reported to OnStaleUse.
	StaleIfError time.Duration
	// OnStaleUse is called for every stale use.
	OnStaleUse func(StaleUse)
	// Audit, when set, records every stale use in an audit log
	// (audit.KindStaleServe), once per branch key the entry's data key is
	// wrapped under (by keyed digest; once without a key for other
	// keyrings). A record that cannot be stored is dropped: a stale serve
	// must not block.
	Audit *keyring.AuditConfig
	// LoadTimeout bounds one keyring call on a miss (default 30 s). The
	// call is shared by every caller waiting for the same entry and runs
	// detached from their cancellation; each caller waits only as long as
	// its own context allows.
	LoadTimeout time.Duration
	// Now is the clock. The default is the monotonic clock, so that
	// wall-clock steps do not move expiries; it does not advance while the
	// host is suspended (Linux), so pass time.Now where suspended time must
	// count against MaxAge.
	Now func() time.Time
}

// StaleUse reports one use of an expired entry during a keyring failure.
type StaleUse struct {
	ExpiredFor time.Duration
	Err        error // the keyring's error
}

// CacheStats counts what a cache has done since it was made.
type CacheStats struct {
	Hits, Misses uint64
	// KeyringCalls are the calls that went to the keyring (and so, for a
	// KMS keyring, to KMS).
	KeyringCalls uint64
	// Waits counts callers that waited on another caller's keyring call
	// for the same entry.
	Waits     uint64
	Evictions uint64
	// Refreshes are background refreshes ahead of expiry; StaleServes are
	// uses of expired entries while the keyring failed.
	Refreshes, StaleServes uint64
}

type cacheCounters struct {
	hits, misses, calls, waits, evictions, refreshes, staleServes atomic.Uint64
}

const maxCachedMessages = 1 << 32

// NewCache checks cfg and returns an empty cache.
func NewCache(cfg CacheConfig) (*Cache, error) {
	if cfg.MaxAge <= 0 {
		return nil, errors.New("phicrypt: CacheConfig.MaxAge must be positive")
	}
	if cfg.MaxMessages == 0 {
		cfg.MaxMessages = maxCachedMessages
	}
	if cfg.MaxMessages > maxCachedMessages {
		return nil, errors.New("phicrypt: CacheConfig.MaxMessages is at most 2^32")
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = math.MaxInt64
	}
	if cfg.Capacity == 0 {
		cfg.Capacity = 1000
	}
	if cfg.Capacity < 1 {
		return nil, errors.New("phicrypt: CacheConfig.Capacity must be positive")
	}
	if cfg.RefreshAhead < 0 || cfg.RefreshAhead >= cfg.MaxAge || cfg.StaleIfError < 0 || cfg.LoadTimeout < 0 {
		return nil, errors.New("phicrypt: CacheConfig.RefreshAhead must be below MaxAge, and neither it, StaleIfError nor LoadTimeout negative")
	}
	if cfg.Audit != nil {
		if err := cfg.Audit.Validate(); err != nil {
			return nil, err
		}
	}
	c := &Cache{cfg: cfg, loads: flight.New[string, *cacheEntry](cfg.LoadTimeout), now: clockNanos(cfg.Now)}
	empty := map[string]*cacheEntry{}
	c.entries.Store(&empty)
	return c, nil
}

// clockNanos returns the cache's clock in unix nanoseconds. The default
// reads only the monotonic clock (time.Since a reading taken now): half the
// cost of time.Now on every hit, and a wall clock stepped back cannot
// stretch a data key's MaxAge. On Linux that clock stops while the host is
// suspended, so a suspended or paused VM resumes with its entries' ages as
// they were; a process that must count suspended time passes
// CacheConfig.Now (time.Now).
func clockNanos(now func() time.Time) func() int64 {
	if now != nil {
		return func() int64 { return now().UnixNano() }
	}
	base := time.Now()
	baseNanos := base.UnixNano()
	return func() int64 { return baseNanos + int64(time.Since(base)) }
}

// expiry is when an entry made now expires, saturating for a MaxAge of
// centuries.
func (c *Cache) expiry() int64 { return addSat(c.now(), int64(c.cfg.MaxAge)) }

// expiryFor is expiry, lowered to the keyring's bound on the materials
// (keyring.EncryptionMaterials.ValidFor; zero: none). A hierarchical
// keyring bounds them by its branch key's cache entry, so a rotation or a
// retirement takes effect within its CacheTTL whatever MaxAge says.
func (c *Cache) expiryFor(validFor time.Duration) int64 {
	exp := c.expiry()
	if validFor > 0 {
		exp = min(exp, addSat(c.now(), int64(validFor)))
	}
	return exp
}

// addSat is a+b for b ≥ 0, saturating at math.MaxInt64 (a "never expires"
// MaxAge plus a stale window must not wrap into the past).
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Stats returns the counters.
func (c *Cache) Stats() CacheStats {
	return CacheStats{
		Hits: c.stats.hits.Load(), Misses: c.stats.misses.Load(), KeyringCalls: c.stats.calls.Load(),
		Waits: c.stats.waits.Load(), Evictions: c.stats.evictions.Load(),
		Refreshes: c.stats.refreshes.Load(), StaleServes: c.stats.staleServes.Load(),
	}
}

// cacheEntry is one cached data key with its usage.
type cacheEntry struct {
	dataKey keyring.Secret
	edks    []keyring.EncryptedDataKey // encrypt entries only
	// context is the parsed encryption context a decrypt entry was made
	// for, shared read-only by every message that hits the entry, so a hit
	// parses no context. Nobody may modify it.
	context map[string]string
	expires int64 // unix nanoseconds
	// validFor is the keyring's bound on the materials (zero: none).
	validFor time.Duration
	// branchKeys are the branch key ids its encrypted data keys name
	// (ForgetBranchKey).
	branchKeys []string
	// timer evicts the entry when it expires (after StaleIfError, when
	// set), so an expired key is wiped whether or not the cache is used.
	timer    *time.Timer
	messages atomic.Uint64
	bytes    atomic.Uint64
	lastUse  atomic.Int64
	// refreshing is set while a background refresh is under way.
	refreshing atomic.Bool
	// refs counts messages using dataKey; the top bit marks the entry
	// evicted. The key is wiped when both hold: evicted and unused.
	refs atomic.Int64
}

const evictedBit = int64(1) << 62

// acquire takes a reference, unless the entry has been evicted.
func (e *cacheEntry) acquire() bool {
	for {
		r := e.refs.Load()
		if r&evictedBit != 0 {
			return false
		}
		if e.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

func (e *cacheEntry) release() {
	if e.refs.Add(-1) == evictedBit {
		e.dataKey.Wipe()
	}
}

func (e *cacheEntry) evict() {
	if e.refs.Or(evictedBit) == 0 { // not evicted before, and unused
		e.dataKey.Wipe()
	}
}

// lookup is the hit path: it returns an entry with room for one more
// message of size bytes (reserved, with a reference the caller must
// release), or nil. It takes no lock and allocates nothing. refresh reports
// that the entry is within RefreshAhead of expiring and this caller has
// been chosen to refresh it.
func (c *Cache) lookup(key []byte, size uint64) (e *cacheEntry, refresh bool) {
	e, refresh = c.find(key, size)
	if e != nil {
		c.stats.hits.Add(1)
	}
	return e, refresh
}

// find is lookup without counting a hit.
func (c *Cache) find(key []byte, size uint64) (e *cacheEntry, refresh bool) {
	now := c.now()
	e = (*c.entries.Load())[string(key)]
	if e == nil || !c.reserve(e, now, e.expires, size) {
		return nil, false
	}
	ahead := int64(c.cfg.RefreshAhead)
	refresh = ahead > 0 && now >= e.expires-ahead && e.refreshing.CompareAndSwap(false, true)
	return e, refresh
}

// refresh replaces old in the background with a new entry from fill, while
// callers keep using old. It shares the miss path's single flight (a miss
// for the same key waits for it) and its timeout. A failed refresh is
// retried by a later caller.
func (c *Cache) refresh(ctx context.Context, keyBytes []byte, old *cacheEntry, fill func(context.Context) (*cacheEntry, error)) {
	key := string(keyBytes)
	c.loads.Start(ctx, key, func(ctx context.Context) (*cacheEntry, error) {
		c.stats.calls.Add(1)
		c.stats.refreshes.Add(1)
		e, err := fill(ctx)
		c.mu.Lock()
		defer c.mu.Unlock()
		if err != nil || c.closed {
			old.refreshing.Store(false)
			if err == nil {
				e.evict()
				err = ErrClosed
			}
			return nil, err
		}
		e.expires = c.expiryFor(e.validFor)
		c.insert(key, e)
		return e, nil
	})
}

// miss is the slow path: one keyring call (through fill) serves all
// concurrent callers of one key (internal/flight). The call runs detached
// from every caller's cancellation, bounded by LoadTimeout, and each caller
// waits only as long as its own ctx allows, so one caller giving up fails
// no other. When the call fails with a transient error and StaleIfError
// allows, the expired entry serves. fill must not use anything the caller
// may reuse once miss returns (it may outlive the caller).
func (c *Cache) miss(ctx context.Context, key []byte, size uint64, fill func(context.Context) (*cacheEntry, error)) (*cacheEntry, error) {
	c.stats.misses.Add(1)
	skey := string(key)
	var full *cacheEntry // an entry this caller found without room
	for {
		if e, _ := c.find(key, size); e != nil {
			return e, nil
		}
		e, err, joined := c.loads.Do(ctx, skey, func(ctx context.Context) (*cacheEntry, error) {
			// A caller that missed just before the previous load finished
			// starts a new one: the entry that load made serves it, unless
			// it is the one this caller found without room.
			if e := (*c.entries.Load())[skey]; e != nil && e != full && c.now() < e.expires {
				return e, nil
			}
			c.stats.calls.Add(1)
			e, err := fill(ctx)
			if err != nil {
				return nil, err
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.closed {
				e.evict()
				return nil, ErrClosed
			}
			e.expires = c.expiryFor(e.validFor)
			c.insert(skey, e)
			return e, nil
		})
		if joined {
			c.stats.waits.Add(1)
		}
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, ctxErr
			}
			if errors.Is(err, flight.ErrClosed) {
				return nil, ErrClosed
			}
			return c.stale(key, size, err)
		}
		// The callers of a fresh entry use it whatever the clock says, so
		// a very short MaxAge (or keyring validity) cannot starve them.
		if c.reserve(e, c.now(), math.MaxInt64, size) {
			return e, nil
		}
		// Used up by other callers, or evicted already: look again.
		full = e
	}
}

// stale serves an expired entry after a transient keyring failure, within
// StaleIfError of its expiry; otherwise it returns err. A refusal (a
// disabled key, denied access) is never papered over.
func (c *Cache) stale(key []byte, size uint64, err error) (*cacheEntry, error) {
	window := int64(c.cfg.StaleIfError)
	if window <= 0 || !keyring.IsTransient(err) {
		return nil, err
	}
	now := c.now()
	e := (*c.entries.Load())[string(key)]
	if e == nil || !c.reserve(e, now, addSat(e.expires, window), size) {
		return nil, err
	}
	c.stats.staleServes.Add(1)
	if c.cfg.OnStaleUse != nil {
		c.cfg.OnStaleUse(StaleUse{ExpiredFor: time.Duration(now - e.expires), Err: err})
	}
	if a := c.cfg.Audit; a != nil {
		ids := e.branchKeys
		if len(ids) == 0 {
			ids = []string{""}
		}
		for _, id := range ids {
			_, _ = a.Log.Append(a.Hasher.StaleServe(a.Time(), a.Actor, id, "data key served past its age: keyring unavailable"))
		}
	}
	return e, nil
}

// reserve counts one message of size bytes against e if it is usable until
// after now and has room, and takes a reference.
func (c *Cache) reserve(e *cacheEntry, now, until int64, size uint64) bool {
	if now >= until || !e.acquire() {
		return false
	}
	m := e.messages.Add(1)
	b := e.bytes.Add(size)
	if m > c.cfg.MaxMessages || b > c.cfg.MaxBytes || b < size {
		e.release()
		return false
	}
	e.lastUse.Store(now)
	return true
}

// insert replaces the map with one holding e under key, evicting the entry it
// replaces, expired entries, and the least recently used beyond capacity.
// It must be called with c.mu held.
func (c *Cache) insert(key string, e *cacheEntry) {
	old := *c.entries.Load()
	next := make(map[string]*cacheEntry, len(old)+1)
	now := c.now()
	for k, v := range old {
		if k == key || now >= addSat(v.expires, int64(c.cfg.StaleIfError)) {
			c.drop(v)
			continue
		}
		next[k] = v
	}
	for len(next) >= c.cfg.Capacity {
		var lruKey string
		var lru *cacheEntry
		for k, v := range next {
			if lru == nil || v.lastUse.Load() < lru.lastUse.Load() {
				lruKey, lru = k, v
			}
		}
		delete(next, lruKey)
		c.drop(lru)
	}
	e.lastUse.Store(now)
	next[key] = e
	c.entries.Store(&next)
	if wipeAt := addSat(e.expires, int64(c.cfg.StaleIfError)); wipeAt != math.MaxInt64 {
		e.timer = time.AfterFunc(time.Duration(wipeAt-now), func() { c.expire(key, e) })
	}
}

func (c *Cache) drop(e *cacheEntry) {
	c.stats.evictions.Add(1)
	if e.timer != nil {
		e.timer.Stop()
	}
	e.evict()
}

// expire evicts e, if it is still cached under key: its life (and stale
// window) has ended. Its data key is wiped once no message uses it.
func (c *Cache) expire(key string, e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.entries.Load()
	if old[key] != e {
		return
	}
	next := make(map[string]*cacheEntry, len(old))
	for k, v := range old {
		if v != e {
			next[k] = v
		}
	}
	c.entries.Store(&next)
	c.drop(e)
}

// ErrClosed is returned by an Encryptor whose Cache has been closed.
var ErrClosed = errors.New("phicrypt: the data-key cache has been closed")

// Close evicts every entry (each data key is wiped once no message uses
// it), ends keyring calls under way and stops the cache's timers. An
// Encryptor using the cache fails after; Close is for shutdown.
func (c *Cache) Close() error {
	c.mu.Lock()
	c.closed = true
	old := *c.entries.Load()
	empty := map[string]*cacheEntry{}
	c.entries.Store(&empty)
	for _, e := range old {
		c.drop(e)
	}
	c.mu.Unlock()
	c.loads.Close()
	return nil
}

// Cache keys are the exact bytes that identify an entry, so a hit costs a
// map lookup and no hashing:
//
//	owner(16) kind(1) suite(2) rest
//
// kind 'E' (encrypt: rest is the serialized encryption context) or 'D'
// (decrypt: rest is the header's encrypted-data-key section, count and
// length-prefixed fields in message order, then the serialized context).
// Both parts of rest are self-delimiting, so distinct inputs never share a
// key. A key longer than maxRawCacheKey is replaced by its prefix, with
// the kind in lower case, and the SHA-512 of the whole key, so an entry
// never pins more than that much memory for its key.
const (
	cacheKeyPrefixLen = 16 + 1 + 2
	maxRawCacheKey    = 1024
	digestKeyLen      = cacheKeyPrefixLen + sha512.Size
)

func appendCacheKeyPrefix(dst []byte, owner *[16]byte, kind byte, suite Suite) []byte {
	dst = append(dst, owner[:]...)
	return append(dst, kind, byte(suite>>8), byte(suite))
}

// cacheKeyOf returns key, or its digest form (in buf) when key is long.
func cacheKeyOf(key []byte, buf *[digestKeyLen]byte) []byte {
	if len(key) <= maxRawCacheKey {
		return key
	}
	copy(buf[:], key[:cacheKeyPrefixLen])
	buf[16] |= 0x20 // 'e' or 'd': a digest can never equal a raw key
	d := sha512.Sum512(key)
	copy(buf[cacheKeyPrefixLen:], d[:])
	return buf[:]
}

// appendEDKSection appends the encrypted-data-key section of a header:
// a count, then each key's three length-prefixed fields.
func appendEDKSection(dst []byte, edks []keyring.EncryptedDataKey) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(edks)))
	for _, e := range edks {
		dst = appendShortBytes(dst, []byte(e.ProviderID))
		dst = appendShortBytes(dst, e.ProviderInfo)
		dst = appendShortBytes(dst, e.Ciphertext)
	}
	return dst
}
