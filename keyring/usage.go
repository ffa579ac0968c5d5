package keyring

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/phicrypt/phicrypt/internal/flight"
	"github.com/phicrypt/phicrypt/keystore"
)

// Counting uses of branch key versions (HierarchicalConfig.MaxUsesPerVersion).
//
// A process reserves a block of uses in the store with one keystore.Store.AddUsage
// and hands them out with an atomic counter; when the block runs out, one
// goroutine reserves the next while the others wait for it. Each
// reservation's uses are numbered by the total AddUsage returns (the block
// is uses total-n+1 .. total, disjoint from every other reservation in
// every process), and only those numbered up to the cap are handed out, so
// no version is used more than the cap whatever the processes do. When a
// version has no uses left, the keyring rotates the branch key from that
// version (a conditional rotation: if another process rotated first, it
// simply reads the new active version).

// maxExhaustedRotations bounds how many fresh versions one encryption may
// find already used up (by other processes) before giving up.
const maxExhaustedRotations = 8

// usageCounter counts the uses of one branch key version handed out through
// one active-version cache entry.
type usageCounter struct {
	avail atomic.Uint64 // uses reserved in the store and not yet handed out
	// spent is set once the version has no uses left and the branch key
	// has moved on (rotated is set).
	spent atomic.Bool

	// Reserving and rotating are single-flight per counter (the cache's
	// refills group); the fields below are read and written only there.
	known     uint64 // the version's total in the store, as last seen
	exhausted bool   // no more uses may be reserved: rotate
	rotated   bool   // the branch key has moved on from this version
}

func newUsageCounter(known uint64) *usageCounter {
	return &usageCounter{known: known}
}

// take hands out k reserved uses if there are that many.
func (u *usageCounter) take(k uint64) bool {
	for {
		a := u.avail.Load()
		if a < k {
			return false
		}
		if u.avail.CompareAndSwap(a, a-k) {
			return true
		}
	}
}

// checkUsage validates and completes the counting settings.
func (cfg *HierarchicalConfig) checkUsage() error {
	if cfg.MaxUsesPerVersion == 0 {
		if cfg.UsageBlock != 0 {
			return errors.New("keyring: HierarchicalConfig.UsageBlock needs MaxUsesPerVersion")
		}
		return nil
	}
	if cfg.MaxUsesPerVersion > MaxUsesPerVersionLimit {
		return fmt.Errorf("keyring: HierarchicalConfig.MaxUsesPerVersion is at most %d", uint64(MaxUsesPerVersionLimit))
	}
	if cfg.UsageBlock == 0 {
		cfg.UsageBlock = min(DefaultUsageBlock, cfg.MaxUsesPerVersion)
	}
	if cfg.UsageBlock > cfg.MaxUsesPerVersion {
		return errors.New("keyring: HierarchicalConfig.UsageBlock must not exceed MaxUsesPerVersion")
	}
	return nil
}

// checkUses validates a number of uses to count at once.
func (h *Hierarchical) checkUses(uses uint64) error {
	if uses < 1 || uses > keystore.MaxUsageIncrement {
		return fmt.Errorf("%w: uses are counted 1 to %d at a time, not %d", ErrInvalid, uint64(keystore.MaxUsageIncrement), uses)
	}
	if h.maxUses != 0 && uses > h.maxUses {
		return fmt.Errorf("%w: %d uses at once exceed MaxUsesPerVersion (%d)", ErrInvalid, uses, h.maxUses)
	}
	return nil
}

// activeVersion returns the version of branch key id that new data is
// written under, with uses counted against it, and until when this process
// may keep writing under it. Without MaxUsesPerVersion it counts nothing.
func (h *Hierarchical) activeVersion(ctx context.Context, id string, uses uint64) (keystore.BranchKeyVersion, time.Time, error) {
	for range maxExhaustedRotations {
		e, err := h.cache.active(ctx, h.bk, id)
		if err != nil {
			return keystore.BranchKeyVersion{}, time.Time{}, err
		}
		rec, until, u := e.rec, h.cache.validUntil(e), e.usage
		e.release()
		if h.maxUses == 0 || u.take(uses) {
			return rec, until, nil
		}
		ok, err := h.reserve(ctx, rec, u, uses)
		if err != nil {
			return keystore.BranchKeyVersion{}, time.Time{}, err
		}
		if ok {
			return rec, until, nil
		}
		// The version is used up and the branch key has moved on: read
		// which version is active now.
		h.cache.dropActive(id)
	}
	return keystore.BranchKeyVersion{}, time.Time{}, fmt.Errorf("%w: %d new versions of %s in a row were used up before this process could use them",
		ErrVersionExhausted, maxExhaustedRotations, keystore.Fingerprint(id))
}

// activeMaterial is activeVersion with the version's unwrapped material,
// held (the caller releases it), and until when both may be used. A
// writing version retired meanwhile (during a rotation's propagation
// window, say) makes it read the active version again, once.
func (h *Hierarchical) activeMaterial(ctx context.Context, id string, uses uint64) (keystore.BranchKeyVersion, *cacheEntry, time.Time, error) {
	for attempt := 0; ; attempt++ {
		rec, until, err := h.activeVersion(ctx, id, uses)
		if err != nil {
			return keystore.BranchKeyVersion{}, nil, time.Time{}, err
		}
		ent, err := h.cache.material(ctx, h.bk, rec)
		if errors.Is(err, ErrVersionRetired) && attempt == 0 {
			h.cache.dropActive(id)
			continue
		}
		if err != nil {
			return keystore.BranchKeyVersion{}, nil, time.Time{}, err
		}
		if err := h.cache.escrowed(ctx, h.bk, ent); err != nil {
			ent.release()
			return keystore.BranchKeyVersion{}, nil, time.Time{}, err
		}
		return rec, ent, minTime(until, h.cache.validUntil(ent)), nil
	}
}

// reserve makes k uses of version rec available, reserving blocks in the
// store; false if the version has none left, once the branch key has been
// rotated away from it (by this call, an earlier one or another process).
// Reservations are single-flight per counter (internal/flight): one store
// write at a time, detached from any one caller's cancellation, each caller
// waiting only as long as its own ctx allows.
func (h *Hierarchical) reserve(ctx context.Context, rec keystore.BranchKeyVersion, u *usageCounter, k uint64) (bool, error) {
	for {
		if u.take(k) {
			return true, nil
		}
		more, err, joined := h.cache.refills.Do(ctx, u, func(ctx context.Context) (bool, error) {
			return h.refill(ctx, rec, u, k)
		})
		if errors.Is(err, flight.ErrClosed) {
			return false, ErrClosed
		}
		if err != nil || !more {
			return false, err
		}
		if !joined {
			return true, nil // the refill this caller started took its k uses
		}
	}
}

// refill reserves the next block of uses of rec's version (at least k) and
// takes k of them for the caller that started it (so that caller cannot be
// starved by others taking the block), or, when the version has no more,
// rotates the branch key away from it. It reports whether it took k uses. Only one refill per counter runs at a
// time (the flight group), so the fields it touches need no lock.
func (h *Hierarchical) refill(ctx context.Context, rec keystore.BranchKeyVersion, u *usageCounter, k uint64) (bool, error) {
	if u.take(k) { // another refill has just added some
		return true, nil
	}
	if !u.exhausted {
		ok, err := h.reserveBlock(ctx, rec, u, k)
		if ok || err != nil {
			return ok, err
		}
	}
	if !u.rotated {
		// Conditional on the version found used up, so a branch key that
		// another process has rotated is not rotated again (keystore.ErrConflict).
		_, err := h.bk.rotateFrom(ctx, rec.BranchKeyID, rec.Version)
		if err != nil && !errors.Is(err, keystore.ErrConflict) {
			return false, fmt.Errorf("%w: version %s of %s reached MaxUsesPerVersion (%d) and rotating it failed: %w",
				ErrVersionExhausted, rec.Version, keystore.Fingerprint(rec.BranchKeyID), h.maxUses, err)
		}
		u.rotated = true
		u.spent.Store(true)
	}
	return false, nil
}

// reserveBlock reserves the next block of uses of rec's version, inside a
// refill. It marks u exhausted when the version cannot give k more uses.
func (h *Hierarchical) reserveBlock(ctx context.Context, rec keystore.BranchKeyVersion, u *usageCounter, k uint64) (bool, error) {
	// Reserve no more than the cap leaves, as far as this process knows,
	// so that one process alone never counts past the cap.
	room := h.maxUses - min(u.known, h.maxUses)
	if room < k {
		u.exhausted = true
		return false, nil
	}
	n := min(max(h.block, k), room)
	total, err := h.bk.cfg.Store.AddUsage(ctx, rec.BranchKeyID, rec.Version, n)
	if errors.Is(err, keystore.ErrConflict) {
		// Retired since this process read it: the branch key has long
		// moved on.
		u.exhausted, u.rotated = true, true
		u.spent.Store(true)
		return false, nil
	}
	if err != nil {
		return false, wrapStep(asKeyDestroyed(err, rec.BranchKeyID, rec.Version), "counting uses of version %s of %s", rec.Version, keystore.Fingerprint(rec.BranchKeyID))
	}
	u.known = total
	// This reservation is uses total-n+1 .. total; those up to the cap may
	// be handed out.
	var usable uint64
	if start := total - min(n, total); start < h.maxUses {
		usable = min(n, h.maxUses-start)
	}
	if usable < n || total >= h.maxUses {
		u.exhausted = true
	}
	if usable < k {
		u.avail.Add(usable) // for smaller requests
		u.exhausted = true
		return false, nil
	}
	u.avail.Add(usable - k)
	return true, nil
}
