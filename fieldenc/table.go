package fieldenc

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/phicrypt/phicrypt/internal/flight"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
)

// DefaultReservedUses is how many field encryptions a Table reserves from
// the store at a time when Config.ReservedUses is zero (or the keyring's
// MaxUsesPerVersion, if smaller). A reservation is one store write, so it
// must be rare next to field encryptions, which take well under a
// microsecond; a process that stops loses what it reserved and did not use.
// It is not keyring.DefaultUsageBlock, the block the keyring reserves for
// its own OnEncrypt calls.
const DefaultReservedUses = 1 << 20

// Config configures a Table.
type Config struct {
	// Keys is the hierarchical keyring whose branch key versions the
	// table's field keys derive from. It decides the cache lifetime, the
	// usage cap per version and rotation when the cap is reached
	// (keyring.HierarchicalConfig.MaxUsesPerVersion; fields need it set
	// below 2^32, since every field nonce is random).
	Keys *keyring.Hierarchical
	// BranchKeyID names the branch key the table's fields are sealed under.
	BranchKeyID string
	// Table is bound into every field key and AAD: a value sealed for one
	// table does not open in another. Keep it stable for the life of the
	// data (renaming it needs a re-encryption).
	Table string
	// Migration lets Open accept legacy plaintext: a string column value
	// without TextPrefix, or a []byte column value that is not a sealed
	// field, is taken as plaintext (and sealed at the next Seal).
	Migration bool
	// ReservedUses is how many encryptions are reserved from the store at
	// a time (default DefaultReservedUses). Reserved and unused encryptions
	// are lost when the process stops, so the stored count is an upper
	// bound.
	ReservedUses uint64
}

// MaxFieldsPerSeal caps the fields one struct may seal at once (each counts
// one use of the version, reserved together).
const MaxFieldsPerSeal = 1024

// Table seals and opens the fields of one logical table under one branch
// key. It compiles a Codec per struct type once and keeps it; it is safe
// for concurrent use.
type Table struct {
	cfg Config

	active  atomic.Pointer[versionKeys]
	live    atomic.Pointer[liveSet]
	mu      sync.Mutex              // guards opened only; never held across a call out
	opened  map[string]*versionKeys // decrypt-side versions by version id
	columns sync.Map                // column key string → *Column
	codecs  sync.Map                // reflect.Type → *boundCodec

	// The slow paths (reserving uses, reading which versions are live,
	// opening a version) are single-flight through internal/flight: one
	// keyring or store call serves every caller waiting for it, runs
	// detached from their cancellation, and each caller waits only as long
	// as its own context allows.
	versionLoads flight.Group[string, *versionKeys] // "active", or "open " + version
	liveLoads    flight.Group[struct{}, *liveSet]
}

// versionKeys is one branch key version as the table uses it. Derived keys
// live in each Column; this carries what all columns share.
type versionKeys struct {
	version string
	ref     keyRef
	expired atomic.Bool
	// remaining counts reserved encryptions left (active versions only);
	// it goes negative when exhausted, and the slow path reserves more.
	remaining atomic.Int64
}

// liveSet is which versions can decrypt, read from the store, and which
// have been destroyed (so a value under one says so).
type liveSet struct {
	versions  []liveVersion
	destroyed []liveVersion
	readAt    time.Time
	expired   atomic.Bool
}

type liveVersion struct {
	version string
	ref     keyRef
}

// New returns a Table.
func New(cfg Config) (*Table, error) {
	if cfg.Keys == nil {
		return nil, errors.New("fieldenc: Config.Keys is required")
	}
	if cfg.BranchKeyID == "" {
		return nil, errors.New("fieldenc: Config.BranchKeyID is required")
	}
	if err := checkName("table", cfg.Table); err != nil {
		return nil, err
	}
	maxUses := cfg.Keys.MaxUsesPerVersion()
	if maxUses == 0 || maxUses > keyring.MaxUsesPerVersionLimit {
		return nil, fmt.Errorf("fieldenc: the keyring must count uses: set HierarchicalConfig.MaxUsesPerVersion (1 to 2^32; every field nonce is random, so no key may seal more than 2^32 values)")
	}
	if cfg.ReservedUses == 0 {
		cfg.ReservedUses = min(DefaultReservedUses, maxUses)
	}
	if cfg.ReservedUses > maxUses {
		return nil, fmt.Errorf("fieldenc: Config.ReservedUses (%d) exceeds the keyring's MaxUsesPerVersion (%d)", cfg.ReservedUses, maxUses)
	}
	t := &Table{cfg: cfg, opened: map[string]*versionKeys{}}
	// Closing the keyring ends what the table derived from it. The keyring
	// holds the table only weakly, and forgets it once it is collected.
	wt := weak.Make(t)
	stop := cfg.Keys.AfterClose(func() {
		if t := wt.Value(); t != nil {
			t.dropKeys()
		}
	})
	runtime.AddCleanup(t, func(stop func()) { stop() }, stop)
	return t, nil
}

// dropKeys forgets every version and every key derived from one, so the
// next operation asks the keyring (which, closed, refuses). Column keys live
// in AES key schedules that Go cannot clear; dropped, they are collected.
func (t *Table) dropKeys() {
	t.Refresh()
	t.columns.Range(func(_, v any) bool {
		switch c := v.(type) {
		case *Column:
			c.active.Store(nil)
			c.keys.list.Store(nil)
		case *blindIndex:
			c.keys.list.Store(nil)
		}
		return true
	})
	t.codecs.Range(func(_, v any) bool {
		v.(*bound).keys.Store(nil)
		return true
	})
}

// String names the table without its branch key id (which may be PHI).
func (t *Table) String() string { return "fieldenc.Table(" + t.cfg.Table + ")" }

// expireAt marks flag at time when (now if past): readers notice without
// reading the clock on every field.
func expireAt(flag *atomic.Bool, when time.Time) {
	d := time.Until(when)
	if d <= 0 {
		flag.Store(true)
		return
	}
	time.AfterFunc(d, func() { flag.Store(true) })
}

// takeActive returns the active version with n encryptions reserved for
// the caller (n ≤ ReservedUses).
func (t *Table) takeActive(ctx context.Context, n int64) (*versionKeys, error) {
	for {
		if vk := t.active.Load(); vk != nil && !vk.expired.Load() && vk.remaining.Add(-n) >= 0 {
			return vk, nil
		}
		vk, err, joined := t.versionLoads.Do(ctx, "active", func(ctx context.Context) (*versionKeys, error) {
			return t.reserveActive(ctx, n)
		})
		if err != nil {
			return nil, gaveUp(ctx, err, "reserving encryptions under the active branch key version")
		}
		if !joined {
			return vk, nil // the reservation this caller started holds its n uses
		}
		// Joined another caller's reservation: take from it (or reserve
		// again if the others used it up).
	}
}

// reserveActive reserves a block of encryptions under the active version
// and takes n of them for the caller that started it.
func (t *Table) reserveActive(ctx context.Context, n int64) (*versionKeys, error) {
	if vk := t.active.Load(); vk != nil && !vk.expired.Load() && vk.remaining.Add(-n) >= 0 {
		return vk, nil
	}
	if vk, ok := t.renew(ctx, n); ok {
		return vk, nil
	}
	block := max(t.cfg.ReservedUses, uint64(n))
	bk, err := t.cfg.Keys.AcquireActive(ctx, t.cfg.BranchKeyID, block)
	if err != nil {
		return nil, fmt.Errorf("fieldenc: reserving encryptions under the active branch key version: %w", err)
	}
	version, expires := bk.Version(), time.Now().Add(bk.ValidFor())
	bk.Release()
	ref, err := refOf(version)
	if err != nil {
		return nil, err
	}
	vk := &versionKeys{version: version, ref: ref}
	vk.remaining.Store(int64(block) - n)
	expireAt(&vk.expired, expires)
	if old := t.active.Load(); old != nil {
		old.expired.Store(true) // columns re-read the active version
		if old.version != version {
			t.expireLive() // opens look for the new version at once
		}
	}
	t.active.Store(vk)
	return vk, nil
}

// renew carries the uses reserved under an expired active version over to
// a fresh handle on it, when the keyring still writes under it, so a cache
// lifetime ending does not throw reserved uses away (each reservation
// counts against the version's cap). It runs inside reserveActive's
// single flight.
func (t *Table) renew(ctx context.Context, n int64) (*versionKeys, bool) {
	old := t.active.Load()
	if old == nil || !old.expired.Load() {
		return nil, false
	}
	// Take every use left at once: a racing fast path either took its
	// uses before (they are not in left) or fails after (it comes here).
	left := old.remaining.Swap(math.MinInt64 / 2)
	if left < n {
		return nil, false
	}
	if cur, err := t.cfg.Keys.EncryptingVersion(ctx, t.cfg.BranchKeyID); err != nil || cur.Version != old.version {
		return nil, false
	}
	bk, err := t.cfg.Keys.AcquireReserved(ctx, t.cfg.BranchKeyID, old.version)
	if err != nil {
		return nil, false
	}
	expires := time.Now().Add(bk.ValidFor())
	bk.Release()
	vk := &versionKeys{version: old.version, ref: old.ref}
	vk.remaining.Store(left - n)
	if limit := time.Now().Add(t.cfg.Keys.CacheTTL()); limit.Before(expires) {
		expires = limit
	}
	expireAt(&vk.expired, expires)
	t.active.Store(vk)
	return vk, true
}

// refOf is the key reference of a version: the first bytes of its UUID.
func refOf(version string) (keyRef, error) {
	var r keyRef
	if len(version) < 2*refLen {
		return r, fmt.Errorf("fieldenc: branch key version %q is not a UUID", version)
	}
	for i := range r {
		hi, ok1 := unhex(version[2*i])
		lo, ok2 := unhex(version[2*i+1])
		if !ok1 || !ok2 {
			return r, fmt.Errorf("fieldenc: branch key version %q is not a UUID", version)
		}
		r[i] = hi<<4 | lo
	}
	return r, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// liveVersions returns the versions that can still decrypt, active first,
// re-read from the store once the keyring's cache lifetime has passed.
func (t *Table) liveVersions(ctx context.Context) (*liveSet, error) {
	if ls := t.live.Load(); ls != nil && !ls.expired.Load() {
		return ls, nil
	}
	ls, err, _ := t.liveLoads.Do(ctx, struct{}{}, t.readLive)
	return ls, gaveUp(ctx, err, "reading the live branch key versions")
}

// gaveUp names the step a caller stopped waiting for when its own context
// ended (the load's own errors name it already).
func gaveUp(ctx context.Context, err error, step string) error {
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("fieldenc: %s: %w", step, err)
	}
	return err
}

// readLive reads the live versions, inside liveVersions' single flight.
func (t *Table) readLive(ctx context.Context) (*liveSet, error) {
	if ls := t.live.Load(); ls != nil && !ls.expired.Load() {
		return ls, nil
	}
	ls, err := t.readVersions(ctx)
	if err != nil {
		return nil, err
	}
	expireAt(&ls.expired, time.Now().Add(min(liveRefresh, t.cfg.Keys.CacheTTL())))
	t.live.Store(ls)
	return ls, nil
}

// liveRefresh bounds how long a table trusts its list of live versions, as
// does the keyring's CacheTTL if shorter: a search must know every version
// any process writes under, and a new version is written under only a
// propagation window (at least CacheTTL) after the rotation, so a list no
// older than CacheTTL always names it by then. Keys themselves expire with
// the keyring's cache lifetime. A value under
// a version the list lacks (another process rotated) makes the table read
// the list again, at most once per liveReread, so stored values naming
// unknown versions cannot turn every open into a store read.
const (
	liveRefresh = 30 * time.Second
	liveReread  = 200 * time.Millisecond
)

// expireLive makes the next open read the live versions again.
func (t *Table) expireLive() {
	if ls := t.live.Load(); ls != nil {
		ls.expired.Store(true)
	}
}

// rereadLive reads the live versions again if ls, the list that lacked a
// version, is older than liveReread; it reports whether there is a newer
// list to look in.
func (t *Table) rereadLive(ctx context.Context, ls *liveSet) (*liveSet, bool, error) {
	if cur := t.live.Load(); cur != ls && cur != nil && !cur.expired.Load() {
		return cur, true, nil // another caller read it meanwhile
	}
	if time.Since(ls.readAt) < liveReread {
		return ls, false, nil
	}
	ls.expired.Store(true)
	next, err := t.liveVersions(ctx)
	return next, err == nil, err
}

// openVersion returns a decrypt-side handle on version, checked against
// the keyring (which refuses retired versions) once per cache lifetime.
func (t *Table) openVersion(ctx context.Context, version string) (*versionKeys, error) {
	t.mu.Lock()
	vk, ok := t.opened[version]
	t.mu.Unlock()
	if ok && !vk.expired.Load() {
		return vk, nil
	}
	vk, err, _ := t.versionLoads.Do(ctx, "open "+version, func(ctx context.Context) (*versionKeys, error) {
		return t.loadVersion(ctx, version)
	})
	return vk, gaveUp(ctx, err, "opening branch key version "+version)
}

// loadVersion opens version through the keyring, inside openVersion's
// single flight.
func (t *Table) loadVersion(ctx context.Context, version string) (*versionKeys, error) {
	t.mu.Lock()
	vk, ok := t.opened[version]
	t.mu.Unlock()
	if ok && !vk.expired.Load() {
		return vk, nil
	}
	bk, err := t.cfg.Keys.AcquireVersion(ctx, t.cfg.BranchKeyID, version)
	if err != nil {
		return nil, fmt.Errorf("fieldenc: opening branch key version %s: %w", version, err)
	}
	expires := time.Now().Add(bk.ValidFor())
	bk.Release()
	ref, err := refOf(version)
	if err != nil {
		return nil, err
	}
	vk = &versionKeys{version: version, ref: ref}
	expireAt(&vk.expired, expires)
	t.mu.Lock()
	defer t.mu.Unlock()
	for v, old := range t.opened {
		if old.expired.Load() {
			delete(t.opened, v)
		}
	}
	t.opened[version] = vk
	return vk, nil
}

// deriveKey derives a per-table key from version of the branch key.
func (t *Table) deriveKey(ctx context.Context, version string, out []byte, purpose byte, name string) error {
	bk, err := t.cfg.Keys.AcquireVersion(ctx, t.cfg.BranchKeyID, version)
	if err != nil {
		return fmt.Errorf("fieldenc: opening branch key version %s: %w", version, err)
	}
	defer bk.Release()
	return bk.DeriveKey(out, derivationInfo(purpose, t.cfg.Table, name))
}

// ActiveVersion returns the branch key version new fields are sealed under:
// the active version, or during a rotation's propagation window
// (keyring.HierarchicalConfig.PropagationWindow) the one it replaced.
func (t *Table) ActiveVersion(ctx context.Context) (string, error) {
	v, err := t.cfg.Keys.EncryptingVersion(ctx, t.cfg.BranchKeyID)
	if errors.Is(err, keystore.ErrNotFound) {
		return "", ErrUnknownKey
	}
	if err != nil {
		return "", fmt.Errorf("fieldenc: reading the active branch key version: %w", err)
	}
	return v.Version, nil
}

// Refresh forgets which versions are active and live, so the next
// operation reads them again (after a rotation or retirement that should
// take effect before the keyring's cache lifetime ends; the keyring's own
// cache still applies).
func (t *Table) Refresh() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if vk := t.active.Load(); vk != nil {
		vk.expired.Store(true)
	}
	if ls := t.live.Load(); ls != nil {
		ls.expired.Store(true)
	}
	for _, vk := range t.opened {
		vk.expired.Store(true)
	}
	clear(t.opened)
}
