package keyring

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RotationPolicy says when a branch key's active version is due to be
// replaced.
type RotationPolicy struct {
	// MaxAge rotates a branch key whose active version is older than this
	// (required, positive). NIST SP 800-57 and most hospital key policies
	// set a cryptoperiod; a year is common.
	MaxAge time.Duration
}

// RotationReport counts what RotateDue did.
type RotationReport struct {
	Checked, Rotated int
	// RotatedByOther counts keys another process rotated first; they are
	// fresh all the same.
	RotatedByOther int
}

// RotateDue rotates every branch key in the store whose active version is
// older than policy.MaxAge. It is safe to run from several processes at
// once (a custodian job on each host, say): the store's conditional write
// lets one rotation per key win, and the others count it as
// RotatedByOther. Services see the new version within their hierarchical
// keyring's CacheTTL. It stops at the first failure, reporting what it did;
// running it again continues.
func (b *BranchKeys) RotateDue(ctx context.Context, policy RotationPolicy) (RotationReport, error) {
	var rep RotationReport
	if policy.MaxAge <= 0 {
		return rep, errors.New("keyring: RotationPolicy.MaxAge must be positive")
	}
	ids, err := b.cfg.Store.IDs(ctx)
	if err != nil {
		return rep, fmt.Errorf("keyring: listing branch keys: %w", err)
	}
	for _, id := range ids {
		rep.Checked++
		active, err := b.cfg.Store.Active(ctx, id)
		if err != nil {
			return rep, fmt.Errorf("keyring: reading the active version of %s: %w", keyRef(id), err)
		}
		if b.cfg.Now().Sub(active.CreatedAt) < policy.MaxAge {
			continue
		}
		// Rotate from the version found due, so a key another process has
		// just rotated is not rotated again.
		_, err = b.rotateFrom(ctx, id, active.Version)
		switch {
		case errors.Is(err, ErrConflict):
			rep.RotatedByOther++
		case err != nil:
			return rep, err
		default:
			rep.Rotated++
		}
	}
	return rep, nil
}
