package keyring

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/phicrypt/phicrypt/internal/flight"
	"github.com/phicrypt/phicrypt/keystore"
)

// branchKeyCache holds, for the TTL, unwrapped branch key versions and which
// version of each branch key new data is written under. Misses for one
// entry are single-flight (internal/flight): concurrent callers wait for one
// keystore.Store read and one KMS call, which runs detached from any one caller's
// cancellation. (Spec "Initialization": a cache with the TTL and a max
// size. Its entry identifiers, spec Appendix A, matter only to a cache
// shared across keyrings; this one is private.)
//
// Key material is wiped when its entry expires (or, with a stale window,
// when that window ends), when it is evicted, and on close: a timer per
// entry does it, so nothing has to use the cache for it to happen.
type branchKeyCache struct {
	ttl      time.Duration
	stale    time.Duration // StaleIfError
	window   time.Duration // PropagationWindow
	maxUses  uint64        // MaxUsesPerVersion (0: not counted)
	capacity int
	now      func() time.Time
	onStale  func(id string, u StaleUse)
	escrow   *HPKEEscrow // nil: versions are not escrowed

	loads   *flight.Group[string, *cacheEntry]
	refills *flight.Group[*usageCounter, bool]

	mu      sync.Mutex
	entries map[string]*cacheEntry
	lru     *list.List // of *cacheEntry, most recently used first
	closed  bool
	// generation counts forget calls: a load that began before one does
	// not cache what it read (it may predate a destroy).
	generation uint64

	// counters keeps each branch key's usage counter across reloads of its
	// active-version entry (expiry, eviction), so the uses it reserved in
	// the store are not thrown away with the entry; a counter lives until
	// its branch key's writing version changes, or the map outgrows
	// maxCounters (then an arbitrary one goes, losing its reserved uses).
	countersMu sync.Mutex
	counters   map[string]versionCounter
}

// staleRetry is how often, while an expired entry is served during a
// transient failure, one load is tried again in the background; callers
// in between are served at once instead of waiting out KMS retries.
const staleRetry = time.Second

type versionCounter struct {
	version string
	usage   *usageCounter
}

// cacheEntry is an active-version record (key nil, usage set) or unwrapped
// material.
type cacheEntry struct {
	name    string
	rec     keystore.BranchKeyVersion
	key     Secret
	expires time.Time
	elem    *list.Element
	timer   *time.Timer // wipes the entry when its stale window ends
	// usage counts uses of rec's version handed out through this entry
	// (active-version entries only).
	usage *usageCounter
	// capAt, when set by a load, bounds expires: an active-version entry
	// that names the previous version during a rotation's propagation
	// window ends when the new version takes over.
	capAt time.Time

	// Under the cache's mu: the last transient failure to reload this
	// expired entry, and when to try again.
	lastErr error
	retryAt time.Time

	// Users take a hold while they derive from key (acquire, release).
	// Wiping an entry the cache has let go of waits for the last hold to
	// end, without blocking anyone: so key is never cleared under a user,
	// and a user may hold one entry twice (a BranchKey and an OnEncrypt
	// in one goroutine) without deadlock.
	hmu    sync.Mutex
	holds  int
	doomed bool // removed from the cache: no new holds; wiped at the last release

	// escrowErr is why this version's escrow copy could not be stored
	// when it was unwrapped (HierarchicalConfig.Escrow); nil once stored.
	// Reading under the version does not wait for the copy; writing does,
	// and tries again (escrowed).
	escrowMu  sync.Mutex
	escrowErr error
}

// StaleUse reports one use of an expired branch key (or of an expired
// record of which version is active) while reading it again failed with a
// transient error (HierarchicalConfig.StaleIfError). It names the branch
// key by its fingerprint, never its id.
type StaleUse struct {
	// BranchKey is the branch key's fingerprint ("branch key #xxxxxxxx").
	BranchKey string
	// Version is the branch key version served.
	Version string
	// ExpiredFor is how long the entry had been expired.
	ExpiredFor time.Duration
	// Err is the failure that made the cache serve it.
	Err error
}

func (e *cacheEntry) release() {
	e.hmu.Lock()
	e.holds--
	if e.holds == 0 && e.doomed {
		e.key.Wipe()
	}
	e.hmu.Unlock()
}

// wipe clears key now or, if it is held, when the last hold ends.
func (e *cacheEntry) wipe() {
	e.hmu.Lock()
	e.doomed = true
	if e.holds == 0 {
		e.key.Wipe()
	}
	e.hmu.Unlock()
}

// acquire takes a hold on a live entry; false if the cache has let go of
// it.
func (e *cacheEntry) acquire() bool {
	e.hmu.Lock()
	defer e.hmu.Unlock()
	if e.doomed {
		return false
	}
	e.holds++
	return true
}

type branchKeyCacheConfig struct {
	ttl, stale, window, loadTimeout time.Duration
	maxUses                         uint64
	capacity                        int
	now                             func() time.Time
	onStale                         func(id string, u StaleUse)
	escrow                          *HPKEEscrow // HierarchicalConfig.Escrow
}

func newBranchKeyCache(cfg branchKeyCacheConfig) *branchKeyCache {
	return &branchKeyCache{
		ttl: cfg.ttl, stale: cfg.stale, window: cfg.window, maxUses: cfg.maxUses, capacity: cfg.capacity, now: cfg.now, onStale: cfg.onStale,
		escrow:  cfg.escrow,
		loads:   flight.New[string, *cacheEntry](cfg.loadTimeout),
		refills: flight.New[*usageCounter, bool](cfg.loadTimeout),
		entries: map[string]*cacheEntry{}, lru: list.New(),
		counters: map[string]versionCounter{},
	}
}

// counter returns the usage counter of version v of its branch key: the one
// this process already has, or a new one starting from v.Usage.
func (c *branchKeyCache) counter(v keystore.BranchKeyVersion) *usageCounter {
	c.countersMu.Lock()
	defer c.countersMu.Unlock()
	if vc, ok := c.counters[v.BranchKeyID]; ok && vc.version == v.Version {
		return vc.usage
	}
	if len(c.counters) >= c.maxCounters() {
		for id := range c.counters {
			delete(c.counters, id)
			break
		}
	}
	u := newUsageCounter(v.Usage)
	c.counters[v.BranchKeyID] = versionCounter{version: v.Version, usage: u}
	return u
}

// spent reports whether this process found version v used up (and the
// branch key rotated away from it).
func (c *branchKeyCache) spent(v keystore.BranchKeyVersion) bool {
	c.countersMu.Lock()
	defer c.countersMu.Unlock()
	vc, ok := c.counters[v.BranchKeyID]
	return ok && vc.version == v.Version && vc.usage.spent.Load()
}

// maxCounters bounds the counters kept: a few per cache entry.
func (c *branchKeyCache) maxCounters() int { return 4 * c.capacity }

func activeName(id string) string            { return "A\x00" + id }
func materialName(id, version string) string { return "V\x00" + id + "\x00" + version }

// active returns the entry holding the version of branch key id that new
// data is written under, held for reading: the caller must release it.
//
// That is the store's active version once its propagation window
// (PropagationWindow from its CreatedAt) has passed. Until then it is the
// newest earlier version whose own window has passed, so that no process
// writes under a version other processes may not yet know of (their
// searches would miss the row); the entry then ends when the next newer
// version takes over. A retired or used-up version is never written under:
// the active one is, at once.
func (c *branchKeyCache) active(ctx context.Context, bk *BranchKeys, id string) (*cacheEntry, error) {
	return c.get(ctx, activeName(id), func(ctx context.Context) (*cacheEntry, error) {
		v, err := bk.cfg.Store.Active(ctx, id)
		if err != nil {
			return nil, wrapStep(asKeyDestroyed(err, id, ""), "reading the active version of %s", keystore.Fingerprint(id))
		}
		writer, capAt := v, time.Time{}
		if now := c.now(); now.Before(v.CreatedAt.Add(c.window)) {
			all, err := bk.cfg.Store.List(ctx, id)
			if err != nil {
				return nil, wrapStep(err, "listing the versions of %s", keystore.Fingerprint(id))
			}
			writer, capAt = c.writingVersion(all, v, now)
			if writer.Version != v.Version {
				recovered, err := bk.recovered(ctx, writer)
				if err != nil {
					return nil, err
				}
				if recovered {
					// Material that came back from escrow is read, never
					// written under again: the active version at once.
					writer, capAt = v, time.Time{}
				}
			}
		}
		if writer.Version == v.Version {
			if err := bk.notRecovered(ctx, v); err != nil {
				return nil, err
			}
		}
		return &cacheEntry{rec: writer, usage: c.counter(writer), capAt: capAt}, nil
	})
}

// writingVersion picks, from all the versions of a branch key (oldest
// first) whose active version is still inside its propagation window at
// now, the version to write under and when the next newer one takes over.
func (c *branchKeyCache) writingVersion(all []keystore.BranchKeyVersion, active keystore.BranchKeyVersion, now time.Time) (keystore.BranchKeyVersion, time.Time) {
	i := slices.IndexFunc(all, func(v keystore.BranchKeyVersion) bool { return v.Version == active.Version })
	if i < 0 {
		return active, time.Time{} // rotated again since Active was read
	}
	takeover := active.CreatedAt.Add(c.window)
	for j := i - 1; j >= 0; j-- {
		v := all[j]
		if v.State != keystore.StateDecryptOnly || c.spent(v) || c.maxUses != 0 && v.Usage >= c.maxUses {
			break
		}
		// The first version takes over at once: nothing else was written.
		if j == 0 || !now.Before(v.CreatedAt.Add(c.window)) {
			return v, takeover
		}
		takeover = v.CreatedAt.Add(c.window)
	}
	return active, time.Time{}
}

// dropActive makes the next use read which version is active again.
func (c *branchKeyCache) dropActive(id string) {
	c.mu.Lock()
	e, ok := c.entries[activeName(id)]
	if ok {
		c.removeLocked(e)
	}
	c.mu.Unlock()
	if ok {
		e.wipe()
	}
}

// material returns the unwrapped version v.Version of branch key
// v.BranchKeyID, held for reading: the caller must release it. When v
// carries no ciphertext it is read from the store first; a retired version
// is refused with ErrVersionRetired.
func (c *branchKeyCache) material(ctx context.Context, bk *BranchKeys, v keystore.BranchKeyVersion) (*cacheEntry, error) {
	return c.get(ctx, materialName(v.BranchKeyID, v.Version), func(ctx context.Context) (*cacheEntry, error) {
		rec := v
		if rec.Ciphertext == nil {
			var err error
			if rec, err = bk.cfg.Store.Get(ctx, v.BranchKeyID, v.Version); err != nil {
				return nil, wrapStep(err, "reading version %s of %s", v.Version, keystore.Fingerprint(v.BranchKeyID))
			}
		}
		switch rec.State {
		case keystore.StateRetired:
			return nil, fmt.Errorf("%w: version %s of %s", ErrVersionRetired, v.Version, keystore.Fingerprint(v.BranchKeyID))
		case keystore.StateDestroyed:
			return nil, keyDestroyedError(v.BranchKeyID, v.Version)
		}
		key, err := bk.Unwrap(ctx, rec)
		if err != nil {
			return nil, err
		}
		rec.Ciphertext = nil // not needed once unwrapped
		e := &cacheEntry{rec: rec, key: key}
		if c.escrow != nil {
			// Nothing is written under a version before its escrow copy
			// is stored (escrowed); what was written under it is read
			// even when the copy cannot be stored now.
			if _, err := bk.escrowTo(ctx, c.escrow, rec, key); err != nil {
				if errors.Is(err, ErrKeyDestroyed) {
					// A shredded record; if the version itself was
					// destroyed meanwhile, it is not used at all.
					if cur, gerr := bk.cfg.Store.Get(ctx, rec.BranchKeyID, rec.Version); gerr == nil && cur.State == keystore.StateDestroyed {
						e.key.Wipe()
						return nil, err
					}
				}
				e.escrowErr = err
			}
		}
		return e, nil
	})
}

// escrowed returns nil once the held entry e's version has its escrow
// copy in the store (always, without HierarchicalConfig.Escrow): what
// writing under it needs. A copy that could not be stored when the
// version was unwrapped is tried again here.
func (c *branchKeyCache) escrowed(ctx context.Context, bk *BranchKeys, e *cacheEntry) error {
	if c.escrow == nil {
		return nil
	}
	e.escrowMu.Lock()
	defer e.escrowMu.Unlock()
	if e.escrowErr == nil {
		return nil
	}
	if _, err := bk.escrowTo(ctx, c.escrow, e.rec, e.key); err != nil {
		e.escrowErr = err
		return fmt.Errorf("keyring: nothing is written under version %s of %s before its escrow copy is stored: %w", e.rec.Version, keystore.Fingerprint(e.rec.BranchKeyID), err)
	}
	e.escrowErr = nil
	return nil
}

// ErrClosed is returned by a hierarchical keyring used after Close.
var ErrClosed = errors.New("keyring: the hierarchical keyring has been closed")

// get returns the live entry called name, held for reading, loading it with
// load on a miss. Only one load per name runs at a time; it runs detached
// from any one caller's cancellation, and each caller waits for it only as
// long as its own ctx allows. Failed loads are not cached. An expired entry
// within its stale window is served instead when the load fails with a
// transient error; once a failure is known, callers are served it at once
// while a load is retried in the background every staleRetry.
func (c *branchKeyCache) get(ctx context.Context, name string, load func(context.Context) (*cacheEntry, error)) (*cacheEntry, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		now := c.now()
		e, ok := c.entries[name]
		if ok && now.Before(e.expires) {
			c.lru.MoveToFront(e.elem)
			c.mu.Unlock()
			if e.acquire() {
				return e, nil
			}
			continue // wiped between lookup and use: look again
		}
		var stale *cacheEntry
		switch {
		case ok && now.Before(e.expires.Add(c.stale)):
			stale = e
		case ok:
			c.removeLocked(e)
			e.wipe()
		}
		if stale != nil && stale.lastErr != nil {
			// A reload has failed already: serve the stale entry now, and
			// try again in the background from time to time. What the
			// retry meets is recorded: a refusal (a disabled key, a
			// retired version) ends the stale serving at once.
			if !now.Before(stale.retryAt) {
				stale.retryAt = now.Add(staleRetry)
				reload := c.loader(name, load)
				c.loads.Start(ctx, name, func(ctx context.Context) (*cacheEntry, error) {
					e, err := reload(ctx)
					if err != nil {
						c.failedReload(stale, err)
					}
					return e, err
				})
			}
			err := stale.lastErr
			c.mu.Unlock()
			if stale.acquire() {
				c.reportStale(stale, now, err)
				return stale, nil
			}
			continue
		}
		c.mu.Unlock()

		fresh, err, _ := c.loads.Do(ctx, name, c.loader(name, load))
		if err == nil {
			if fresh.acquire() {
				return fresh, nil
			}
			continue
		}
		if errors.Is(err, flight.ErrClosed) {
			return nil, ErrClosed
		}
		if ctx.Err() != nil || stale == nil {
			return nil, err
		}
		if !c.failedReload(stale, err) {
			return nil, err
		}
		c.mu.Lock()
		now = c.now()
		servable := c.entries[name] == stale && now.Before(stale.expires.Add(c.stale))
		c.mu.Unlock()
		if !servable || !stale.acquire() {
			return nil, err
		}
		c.reportStale(stale, now, err)
		return stale, nil
	}
}

// failedReload records that reloading the expired entry stale failed with
// err, and reports whether stale may still be served: after a transient
// failure it may (and is served at once until the next retry); after a
// refusal (a disabled key, a denied call, a retired version) it is removed
// and wiped, so the refusal stands.
func (c *branchKeyCache) failedReload(stale *cacheEntry, err error) bool {
	c.mu.Lock()
	cur, cached := c.entries[stale.name]
	cached = cached && cur == stale
	transient := IsTransient(err)
	switch {
	case cached && transient:
		stale.lastErr, stale.retryAt = err, c.now().Add(staleRetry)
	case cached:
		c.removeLocked(stale)
	}
	c.mu.Unlock()
	if cached && !transient {
		stale.wipe()
	}
	return cached && transient
}

func (c *branchKeyCache) reportStale(e *cacheEntry, now time.Time, err error) {
	if c.onStale != nil {
		c.onStale(e.rec.BranchKeyID, StaleUse{BranchKey: keystore.Fingerprint(e.rec.BranchKeyID), Version: e.rec.Version, ExpiredFor: now.Sub(e.expires), Err: err})
	}
}

// validUntil is how long what was derived from e may be used: its expiry
// or, for an entry served stale, until the next background retry (within
// the stale window).
func (c *branchKeyCache) validUntil(e *cacheEntry) time.Time {
	now := c.now()
	if now.Before(e.expires) {
		return e.expires
	}
	return minTime(now.Add(staleRetry), e.expires.Add(c.stale))
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// loader wraps load so that its result enters the cache before any waiter
// sees it.
func (c *branchKeyCache) loader(name string, load func(context.Context) (*cacheEntry, error)) func(context.Context) (*cacheEntry, error) {
	return func(ctx context.Context) (*cacheEntry, error) {
		// A caller that missed just before the previous load finished
		// starts a new one: the entry that load made serves it.
		c.mu.Lock()
		if e, ok := c.entries[name]; ok && c.now().Before(e.expires) {
			c.mu.Unlock()
			return e, nil
		}
		gen := c.generation
		c.mu.Unlock()
		e, err := load(ctx)
		if err != nil {
			return nil, err
		}
		c.insert(name, e, gen)
		return e, nil
	}
}

// insert adds e under name, replacing what was there, evicting the least
// recently used beyond capacity, and arming the timer that wipes e. An
// entry loaded from before a forget (gen, the generation its load began
// in, is not the current one) is wiped instead: its waiters load again.
func (c *branchKeyCache) insert(name string, e *cacheEntry, gen uint64) {
	var evicted []*cacheEntry
	c.mu.Lock()
	if c.closed || gen != c.generation {
		c.mu.Unlock()
		e.wipe()
		return
	}
	now := c.now()
	e.name = name
	e.expires = now.Add(c.ttl)
	if !e.capAt.IsZero() && e.capAt.Before(e.expires) {
		e.expires = e.capAt
	}
	if old, ok := c.entries[name]; ok {
		c.removeLocked(old)
		evicted = append(evicted, old)
	}
	e.elem = c.lru.PushFront(e)
	c.entries[name] = e
	for c.lru.Len() > c.capacity {
		old := c.lru.Back().Value.(*cacheEntry)
		c.removeLocked(old)
		evicted = append(evicted, old)
	}
	e.timer = time.AfterFunc(e.expires.Add(c.stale).Sub(now), func() { c.expire(e) })
	c.mu.Unlock()
	for _, old := range evicted {
		old.wipe()
	}
}

// expire removes e, if it is still cached, and wipes it: its stale window
// (or its life, without one) has ended.
func (c *branchKeyCache) expire(e *cacheEntry) {
	c.mu.Lock()
	cur, ok := c.entries[e.name]
	if ok && cur == e {
		c.removeLocked(e)
	}
	c.mu.Unlock()
	e.wipe()
}

func (c *branchKeyCache) removeLocked(e *cacheEntry) {
	c.lru.Remove(e.elem)
	delete(c.entries, e.name)
	if e.timer != nil {
		e.timer.Stop()
	}
}

// close wipes every entry, ends loads under way and refuses later use.
func (c *branchKeyCache) close() {
	c.mu.Lock()
	c.closed = true
	all := make([]*cacheEntry, 0, len(c.entries))
	for _, e := range c.entries {
		c.removeLocked(e)
		all = append(all, e)
	}
	c.mu.Unlock()
	c.loads.Close()
	c.refills.Close()
	for _, e := range all {
		e.wipe()
	}
	c.countersMu.Lock()
	clear(c.counters)
	c.countersMu.Unlock()
}

// size reports how many entries the cache holds (for tests).
func (c *branchKeyCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
