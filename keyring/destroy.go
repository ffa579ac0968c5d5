package keyring

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/phicrypt/phicrypt/keystore"
)

// ErrKeyDestroyed means the branch key version that wrapped a message's
// data key (or a field's key) has been destroyed (crypto-shredded,
// keystore.Store.Destroy or DestroyKey), or, on encrypt, that the whole
// branch key has: its material is gone, and what was encrypted under it
// can never be decrypted again. It is neither an authentication failure
// nor ErrVersionRetired (a retired version can be brought back; a destroyed
// one cannot), and it is not transient: no stale cache entry is served
// after it.
//
// A process that has not yet read the store since the destroy keeps what
// it cached for at most HierarchicalConfig.CacheTTL (and a data-key cache
// in front, phicrypt.Cache, no longer: materials from this keyring are
// valid only as long as their branch key entry). Within the destroying
// process, Hierarchical.Forget ends it at once.
var ErrKeyDestroyed = errors.New("keyring: the branch key that protected this data has been destroyed (crypto-shredded); it cannot be decrypted")

// keyDestroyedError is ErrKeyDestroyed for version of branch key id (or the
// key as a whole, when version is empty), naming the key by fingerprint.
func keyDestroyedError(id, version string) error {
	if version == "" {
		return fmt.Errorf("%w: %s", ErrKeyDestroyed, keystore.Fingerprint(id))
	}
	return fmt.Errorf("%w: version %s of %s", ErrKeyDestroyed, version, keystore.Fingerprint(id))
}

// asKeyDestroyed turns the store's keystore.ErrDestroyed into
// ErrKeyDestroyed; any other error is returned as it is.
func asKeyDestroyed(err error, id, version string) error {
	if errors.Is(err, keystore.ErrDestroyed) && !errors.Is(err, ErrKeyDestroyed) {
		return keyDestroyedError(id, version)
	}
	return err
}

// Forget drops, at once, everything this keyring has cached of branch key
// id: every unwrapped version (wiped as soon as no operation holds it) and
// which version is active, so the next use reads the store again. Call it
// in a process that has just destroyed the key (or one of its versions),
// or been told another process did: data under a destroyed version then
// fails with ErrKeyDestroyed now instead of within CacheTTL. A load of the
// key already under way when Forget is called is not cached (its callers
// read again). Forget of a key not cached does nothing. It does not reach
// a data-key cache in front (phicrypt.Cache.ForgetBranchKey) or what
// packages derived from the key (fieldenc.Table.Forget).
func (h *Hierarchical) Forget(id string) {
	h.cache.forget(id)
}

// forget removes every entry of branch key id and its usage counter, and
// makes loads under way not cache what they read.
func (c *branchKeyCache) forget(id string) {
	var gone []*cacheEntry
	c.mu.Lock()
	c.generation++
	for name, e := range c.entries {
		if entryOf(name, id) {
			c.removeLocked(e)
			gone = append(gone, e)
		}
	}
	c.mu.Unlock()
	for _, e := range gone {
		e.wipe()
	}
	c.countersMu.Lock()
	delete(c.counters, id)
	c.countersMu.Unlock()
}

// entryOf reports whether the cache entry called name (activeName,
// materialName) belongs to branch key id.
func entryOf(name, id string) bool {
	if name == activeName(id) {
		return true
	}
	rest, ok := strings.CutPrefix(name, "V\x00"+id+"\x00")
	return ok && !strings.Contains(rest, "\x00")
}

// Versions returns every version of branch key id, oldest first, with its
// state and usage but without its wrapped material (Ciphertext is nil):
// destroyed versions included, as tombstones. It reads the store on every
// call. keystore.ErrNotFound if id does not exist.
func (h *Hierarchical) Versions(ctx context.Context, id string) ([]keystore.BranchKeyVersion, error) {
	all, err := h.bk.cfg.Store.List(ctx, id)
	if err != nil {
		return nil, wrapStep(err, "listing the versions of %s", keystore.Fingerprint(id))
	}
	for i := range all {
		clear(all[i].Ciphertext)
		all[i].Ciphertext = nil
	}
	return all, nil
}
