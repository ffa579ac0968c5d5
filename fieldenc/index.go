package fieldenc

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/phicrypt/phicrypt/internal/blind"
	"github.com/phicrypt/phicrypt/internal/flight"
)

// MaxIndexSources caps how many fields one compound blind index covers.
const MaxIndexSources = 16

// blindIndex is one named blind index of a table: HMAC-SHA-256 under a key
// derived per branch key version, truncated to bits.
type blindIndex struct {
	t    *Table
	name string
	bits int
	keys versionCache[*blind.Index]
}

func (t *Table) blindIndex(name string, bits int) (*blindIndex, error) {
	if err := checkName("blind index", name); err != nil {
		return nil, err
	}
	if bits < 1 || bits > 256 {
		return nil, fmt.Errorf("fieldenc: blind index %s: bits must be 1 to 256, not %d", name, bits)
	}
	key := fmt.Sprintf("B%d/%s", bits, name)
	if x, ok := t.columns.Load(key); ok {
		return x.(*blindIndex), nil
	}
	x, _ := t.columns.LoadOrStore(key, &blindIndex{t: t, name: name, bits: bits})
	return x.(*blindIndex), nil
}

// under returns the index's MAC under vk, derived once per vk.
func (x *blindIndex) under(ctx context.Context, vk *versionKeys) (*blind.Index, error) {
	return x.keys.get(ctx, vk, func(ctx context.Context) (*blind.Index, error) {
		var key [32]byte
		defer clear(key[:])
		if err := x.t.deriveKey(ctx, vk.version, key[:], purposeBlindIndex, x.name); err != nil {
			return nil, err
		}
		return blind.NewIndex(key[:], x.bits)
	})
}

// versionCache keeps one derived value per branch key version handle,
// dropping those whose handle has expired. Reads take no lock.
type versionCache[V any] struct {
	mu    sync.Mutex // guards replacing list; never held across a call out
	list  atomic.Pointer[[]versioned[V]]
	loads flight.Group[*versionKeys, V] // one derivation per version at a time
}

type versioned[V any] struct {
	vk *versionKeys
	v  V
}

func (c *versionCache[V]) lookup(vk *versionKeys) (V, bool) {
	if l := c.list.Load(); l != nil {
		for _, e := range *l {
			if e.vk == vk {
				return e.v, true
			}
		}
	}
	var zero V
	return zero, false
}

// lookupVersion finds a live entry for version, whatever its handle.
func (c *versionCache[V]) lookupVersion(version string) (V, bool) {
	if l := c.list.Load(); l != nil {
		for _, e := range *l {
			if e.vk.version == version && !e.vk.expired.Load() {
				return e.v, true
			}
		}
	}
	var zero V
	return zero, false
}

// get returns the entry for vk, made by make on a miss: one make per
// version at a time (internal/flight), detached from the callers'
// cancellation, each waiting only as long as its own ctx allows.
func (c *versionCache[V]) get(ctx context.Context, vk *versionKeys, make func(context.Context) (V, error)) (V, error) {
	if v, ok := c.lookup(vk); ok {
		return v, nil
	}
	v, err, _ := c.loads.Do(ctx, vk, func(ctx context.Context) (V, error) {
		if v, ok := c.lookup(vk); ok {
			return v, nil
		}
		v, err := make(ctx)
		if err != nil {
			return v, err
		}
		c.add(vk, v)
		return v, nil
	})
	return v, gaveUp(ctx, err, "deriving keys from branch key version "+vk.version)
}

// add keeps v for vk and drops entries whose versions have expired.
func (c *versionCache[V]) add(vk *versionKeys, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var keep []versioned[V]
	if l := c.list.Load(); l != nil {
		for _, e := range *l {
			if !e.vk.expired.Load() {
				keep = append(keep, e)
			}
		}
	}
	keep = append(keep, versioned[V]{vk, v})
	c.list.Store(&keep)
}
