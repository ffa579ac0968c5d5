package custody

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/phicrypt/phicrypt/keystore"
)

// RotationPolicy says when a branch key's active version is due to be
// replaced: when it is MaxAge old or has been used MaxMessages times,
// whichever comes first. Set at least one; zero means no limit of that
// kind.
type RotationPolicy struct {
	// MaxAge rotates a branch key whose active version is at least this
	// old (zero: no age limit; never negative). NIST SP 800-57 and most
	// hospital key policies set a cryptoperiod; a year is common.
	MaxAge time.Duration
	// MaxMessages rotates a branch key whose active version's Usage (the
	// encryptions counted against it, keystore.BranchKeyVersion.Usage) is at least
	// this (zero: no usage limit). Usage is counted only by hierarchical
	// keyrings with HierarchicalConfig.MaxUsesPerVersion set, which also
	// rotate by themselves at that cap; this limit lets a custodian job
	// rotate earlier, for keys used by processes that count.
	MaxMessages uint64
}

// due reports whether active should be replaced at now.
func (p RotationPolicy) due(active keystore.BranchKeyVersion, now time.Time) bool {
	return p.MaxAge > 0 && now.Sub(active.CreatedAt) >= p.MaxAge ||
		p.MaxMessages > 0 && active.Usage >= p.MaxMessages
}

// RotationReport counts what RotateDue did.
type RotationReport struct {
	Checked, Rotated int
	// RotatedByOther counts keys another process rotated first; they are
	// fresh all the same.
	RotatedByOther int
	// Failed counts keys that could not be read or rotated (the error
	// RotateDue returns says why for each).
	Failed int
}

// RotateDue rotates every branch key in the store whose active version is
// due under policy (at least policy.MaxAge old, or used at least
// policy.MaxMessages times). It is safe to run from several processes at
// once (a custodian job on each host, say): the store's conditional write
// lets one rotation per key win, and the others count it as
// RotatedByOther. Services write under the new version one propagation
// window later. A key it cannot read or rotate (a failing store, a key of
// a layout this phicrypt does not read) does not stop the others: its
// failure is counted in Failed and returned, joined with the rest, after
// every key has been checked; running it again retries them.
func (b *BranchKeys) RotateDue(ctx context.Context, policy RotationPolicy) (RotationReport, error) {
	var rep RotationReport
	if policy.MaxAge < 0 {
		return rep, errors.New("custody: RotationPolicy.MaxAge must not be negative")
	}
	if policy.MaxAge == 0 && policy.MaxMessages == 0 {
		return rep, errors.New("custody: RotationPolicy needs MaxAge, MaxMessages or both")
	}
	ids, err := b.cfg.Store.IDs(ctx)
	if err != nil {
		return rep, wrapStep(err, "listing branch keys")
	}
	var failures []error
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			failures = append(failures, err)
			break
		}
		rep.Checked++
		if err := b.rotateIfDue(ctx, id, policy, &rep); err != nil {
			rep.Failed++
			failures = append(failures, err)
		}
	}
	return rep, errors.Join(failures...)
}

// rotateIfDue rotates branch key id if policy says it is due, counting it.
func (b *BranchKeys) rotateIfDue(ctx context.Context, id string, policy RotationPolicy, rep *RotationReport) error {
	active, err := b.cfg.Store.Active(ctx, id)
	if errors.Is(err, keystore.ErrDestroyed) {
		return nil // crypto-shredded: nothing to rotate
	}
	if err != nil {
		return wrapStep(err, "reading the active version of %s", keystore.Fingerprint(id))
	}
	if !policy.due(active, b.cfg.Now()) {
		return nil
	}
	// Rotate from the version found due, so a key another process has
	// just rotated is not rotated again.
	_, err = b.rotateFrom(ctx, id, active.Version)
	switch {
	case errors.Is(err, keystore.ErrConflict):
		rep.RotatedByOther++
	case err != nil:
		return err
	default:
		rep.Rotated++
	}
	return nil
}

// SetMinDecryptionVersion retires every decrypt-only version of branch key
// id older than version (as Vault's min_decryption_version does): after a
// re-encryption moved all data to version or newer, nothing needs the older
// ones. version must exist and not be retired. It returns how many versions
// it retired; versions already retired, and version and newer ones, are
// left alone. Each retirement is a conditional write, so running it twice,
// or from two hosts, retires each version once. Processes stop using the
// retired versions within their hierarchical keyring's CacheTTL.
func (b *BranchKeys) SetMinDecryptionVersion(ctx context.Context, id, version string) (int, error) {
	if err := keystore.CheckKeyVersion(id, version); err != nil {
		return 0, err
	}
	all, err := b.cfg.Store.List(ctx, id)
	if err != nil {
		return 0, wrapStep(err, "listing the versions of %s", keystore.Fingerprint(id))
	}
	at := slices.IndexFunc(all, func(v keystore.BranchKeyVersion) bool { return v.Version == version })
	switch {
	case at < 0:
		return 0, keystore.VersionNotFoundError(id, version)
	case all[at].State == keystore.StateRetired || all[at].State == keystore.StateDestroyed:
		return 0, refuse(keystore.ErrInvalid, "version %s of %s is %v; the minimum decryption version must still decrypt", version, keystore.Fingerprint(id), all[at].State)
	}
	retired := 0
	for _, v := range all[:at] { // List is oldest first
		if v.State != keystore.StateDecryptOnly {
			continue
		}
		err := b.cfg.Store.SetState(ctx, id, v.Version, keystore.StateDecryptOnly, keystore.StateRetired)
		switch {
		case errors.Is(err, keystore.ErrConflict): // retired meanwhile by another run
		case err != nil:
			return retired, wrapStep(err, "retiring version %s of %s", v.Version, keystore.Fingerprint(id))
		default:
			retired++
		}
	}
	return retired, nil
}
