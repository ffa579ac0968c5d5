package keyring

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Counting uses of branch key versions (HierarchicalConfig.MaxUsesPerVersion).
//
// A process reserves a block of uses in the store with one Store.AddUsage
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

	// sem (capacity 1) is held while reserving or rotating, so those are
	// single-flight; the fields below are read and written only under it.
	sem       chan struct{}
	known     uint64 // the version's total in the store, as last seen
	exhausted bool   // no more uses may be reserved: rotate
	rotated   bool   // the branch key has moved on from this version
}

func newUsageCounter(known uint64) *usageCounter {
	return &usageCounter{sem: make(chan struct{}, 1), known: known}
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
	if uses < 1 || uses > MaxUsageIncrement {
		return fmt.Errorf("%w: uses are counted 1 to %d at a time, not %d", ErrInvalid, uint64(MaxUsageIncrement), uses)
	}
	if h.maxUses != 0 && uses > h.maxUses {
		return fmt.Errorf("%w: %d uses at once exceed MaxUsesPerVersion (%d)", ErrInvalid, uses, h.maxUses)
	}
	return nil
}

// activeVersion returns the active version of branch key id with uses
// counted against it, and when this process must read the active version
// again. Without MaxUsesPerVersion it counts nothing.
func (h *Hierarchical) activeVersion(ctx context.Context, id string, uses uint64) (BranchKeyVersion, time.Time, error) {
	for range maxExhaustedRotations {
		e, err := h.cache.active(ctx, h.bk, id)
		if err != nil {
			return BranchKeyVersion{}, time.Time{}, err
		}
		rec, expires, u := e.rec, e.expires, e.usage
		e.release()
		if h.maxUses == 0 || u.take(uses) {
			return rec, expires, nil
		}
		ok, err := h.reserve(ctx, rec, u, uses)
		if err != nil {
			return BranchKeyVersion{}, time.Time{}, err
		}
		if ok {
			return rec, expires, nil
		}
		// The version is used up and the branch key has moved on: read
		// which version is active now.
		h.cache.drop(e)
	}
	return BranchKeyVersion{}, time.Time{}, fmt.Errorf("%w: %d new versions of %s in a row were used up before this process could use them",
		ErrVersionExhausted, maxExhaustedRotations, keyRef(id))
}

// reserve makes k uses of version rec available, reserving a block in the
// store; false if the version has none left, once the branch key has been
// rotated away from it (by this call, an earlier one or another process).
func (h *Hierarchical) reserve(ctx context.Context, rec BranchKeyVersion, u *usageCounter, k uint64) (bool, error) {
	select {
	case u.sem <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-u.sem }()
	if u.take(k) { // another goroutine reserved while this one waited
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
		// another process has rotated is not rotated again (ErrConflict).
		_, err := h.bk.rotateFrom(ctx, rec.BranchKeyID, rec.Version)
		if err != nil && !errors.Is(err, ErrConflict) {
			return false, fmt.Errorf("%w: version %s of %s reached MaxUsesPerVersion (%d) and rotating it failed: %w",
				ErrVersionExhausted, rec.Version, keyRef(rec.BranchKeyID), h.maxUses, err)
		}
		u.rotated = true
	}
	return false, nil
}

// reserveBlock reserves the next block of uses of rec's version, under
// u.sem. It marks u exhausted when the version cannot give k more uses.
func (h *Hierarchical) reserveBlock(ctx context.Context, rec BranchKeyVersion, u *usageCounter, k uint64) (bool, error) {
	// Reserve no more than the cap leaves, as far as this process knows,
	// so that one process alone never counts past the cap.
	room := h.maxUses - min(u.known, h.maxUses)
	if room < k {
		u.exhausted = true
		return false, nil
	}
	n := min(max(h.block, k), room)
	total, err := h.bk.cfg.Store.AddUsage(ctx, rec.BranchKeyID, rec.Version, n)
	if errors.Is(err, ErrConflict) {
		// Retired since this process read it: the branch key has long
		// moved on.
		u.exhausted, u.rotated = true, true
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("keyring: counting uses of version %s of %s: %w", rec.Version, keyRef(rec.BranchKeyID), err)
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
