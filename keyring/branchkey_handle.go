package keyring

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/phicrypt/phicrypt/keystore"
)

// BranchKey is an unwrapped branch key version held from a hierarchical
// keyring's cache, for packages that derive their own keys from branch keys
// (fieldenc derives per-column keys). It never exposes or prints the key
// material: DeriveKey is the only way to use it.
//
// While held, the cache cannot wipe the material; Release ends the hold.
// Hold it for one operation or batch, not for the life of the process, and
// acquire it again after Expires.
type BranchKey struct {
	id, version string
	ent         *cacheEntry
	expires     time.Time
	validFor    time.Duration
	released    atomic.Bool
}

// ID returns the branch key id. It may be derived from PHI (a patient
// number): do not log it.
func (k *BranchKey) ID() string { return k.id }

// Version returns the branch key version (a lowercase UUID).
func (k *BranchKey) Version() string { return k.version }

// Expires is when the cache entry's TTL ends (for a handle from
// AcquireActive, also when this process next reads which version is
// active), on the keyring's clock (HierarchicalConfig.Now): acquire again
// after it.
func (k *BranchKey) Expires() time.Time { return k.expires }

// ValidFor is how long, from when the handle was acquired, what is derived
// from it may be used: Expires less the keyring's time at acquisition. A
// cache on another clock (the real one) times its entries with it.
func (k *BranchKey) ValidFor() time.Duration { return k.validFor }

// MaxDerivedKeyLen is the most DeriveKey produces: 255 SHA-256 blocks
// (RFC 5869 section 2.3).
const MaxDerivedKeyLen = 255 * sha256.Size

// DeriveKey fills out with HKDF-SHA-256 (RFC 5869) of the branch key
// material, with no salt and info as the info: len(out) must be 1 to
// MaxDerivedKeyLen. Different infos give independent keys; name what the
// key is for in info (a purpose, table and column), never a secret value.
// DeriveKey after Release panics.
func (k *BranchKey) DeriveKey(out, info []byte) error {
	if k.released.Load() {
		panic("keyring: BranchKey.DeriveKey after Release")
	}
	if len(out) < 1 || len(out) > MaxDerivedKeyLen {
		return fmt.Errorf("%w: a derived key is 1 to %d bytes, not %d", ErrInvalid, MaxDerivedKeyLen, len(out))
	}
	key, err := hkdf.Key(sha256.New, k.ent.key, nil, string(info), len(out))
	if err != nil {
		return fmt.Errorf("keyring: deriving a key from version %s of %s: %w", k.version, keystore.Fingerprint(k.id), err)
	}
	copy(out, key)
	clear(key)
	return nil
}

// Release ends the hold. The handle is unusable after; releasing it again
// does nothing.
func (k *BranchKey) Release() {
	if k.released.CompareAndSwap(false, true) {
		k.ent.release()
	}
}

// String names the version by the branch key's fingerprint, never its id
// or material.
func (k *BranchKey) String() string {
	return "BranchKey(" + keystore.Fingerprint(k.id) + " version " + k.version + ")"
}

// GoString implements fmt.GoStringer, so %#v prints no internals.
func (k *BranchKey) GoString() string { return k.String() }

// AcquireActive returns the active version of branch key id with uses (1 to
// 2^32, and at most MaxUsesPerVersion) counted against it exactly as that
// many OnEncrypt calls would count: reserved in blocks, capped at
// MaxUsesPerVersion, and rotating the branch key when its version is used
// up (ErrVersionExhausted if it cannot). With MaxUsesPerVersion 0 nothing
// is counted. The caller must Release the handle.
func (h *Hierarchical) AcquireActive(ctx context.Context, id string, uses uint64) (*BranchKey, error) {
	if err := keystore.CheckID(id); err != nil {
		return nil, err
	}
	if err := h.checkUses(uses); err != nil {
		return nil, err
	}
	active, ent, until, err := h.activeMaterial(ctx, id, uses)
	if err != nil {
		return nil, err
	}
	return h.handle(active, ent, until), nil
}

// AcquireReserved returns version version of branch key id to write under
// with uses an earlier AcquireActive reserved and the caller has not spent
// (fieldenc carries a block of uses over to a renewed handle this way),
// counting nothing more. It is AcquireVersion with the refusals of
// AcquireActive: nothing is written under a version whose escrow copy is
// not stored (HierarchicalConfig.Escrow) or that came back from escrow
// (ErrVersionRecovered). It does not check that version is still the one
// writes go under: the caller does, with EncryptingVersion, as fieldenc
// does. The caller must Release the handle.
func (h *Hierarchical) AcquireReserved(ctx context.Context, id, version string) (*BranchKey, error) {
	if err := keystore.CheckKeyVersion(id, version); err != nil {
		return nil, err
	}
	ent, err := h.cache.material(ctx, h.bk, keystore.BranchKeyVersion{BranchKeyID: id, Version: version})
	if err != nil {
		return nil, err
	}
	if err := h.cache.escrowed(ctx, h.bk, ent); err != nil {
		ent.release()
		return nil, err
	}
	if err := h.bk.notRecovered(ctx, ent.rec); err != nil {
		ent.release()
		return nil, err
	}
	return h.handle(ent.rec, ent, h.cache.validUntil(ent)), nil
}

// AcquireVersion returns version version of branch key id, to decrypt
// under it: ErrVersionRetired if it is retired (as OnDecrypt refuses it),
// keystore.ErrNotFound if it does not exist. The caller must Release the handle.
func (h *Hierarchical) AcquireVersion(ctx context.Context, id, version string) (*BranchKey, error) {
	if err := keystore.CheckKeyVersion(id, version); err != nil {
		return nil, err
	}
	return h.acquire(ctx, keystore.BranchKeyVersion{BranchKeyID: id, Version: version})
}

// acquire holds v's unwrapped material from the cache.
func (h *Hierarchical) acquire(ctx context.Context, v keystore.BranchKeyVersion) (*BranchKey, error) {
	ent, err := h.cache.material(ctx, h.bk, v)
	if err != nil {
		return nil, err
	}
	return h.handle(v, ent, h.cache.validUntil(ent)), nil
}

func (h *Hierarchical) handle(v keystore.BranchKeyVersion, ent *cacheEntry, until time.Time) *BranchKey {
	return &BranchKey{id: v.BranchKeyID, version: v.Version, ent: ent, expires: until, validFor: max(until.Sub(h.cache.now()), time.Nanosecond)}
}

// LiveVersions returns the versions of branch key id that can still
// decrypt: the active one first, then the decrypt-only ones, newest first.
// It reads the store on every call and leaves out the wrapped material
// (Ciphertext is nil). keystore.ErrNotFound if id does not exist,
// ErrKeyDestroyed if the key has been destroyed.
func (h *Hierarchical) LiveVersions(ctx context.Context, id string) ([]keystore.BranchKeyVersion, error) {
	all, err := h.Versions(ctx, id)
	if err != nil {
		return nil, err
	}
	live := make([]keystore.BranchKeyVersion, 0, len(all))
	for _, v := range slices.Backward(all) {
		switch v.State {
		case keystore.StateActive:
			live = slices.Insert(live, 0, v)
		case keystore.StateDecryptOnly:
			live = append(live, v)
		}
	}
	if len(live) == 0 {
		return nil, keyDestroyedError(id, "") // only a destroyed key has no active version
	}
	return live, nil
}
