package fieldenc

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
)

// Crypto-shredding: a branch key version destroyed by a custodian
// (custody.BranchKeys.DestroyVersion, DestroyKey) takes every field sealed
// under it with it. Open of such a value fails with keyring.ErrKeyDestroyed
// (errors.Is), not ErrWrongField or ErrUnknownKey; the search terms of a
// blind index or deterministic field (IndexValues, EqualValues) leave the
// destroyed version out, so rows sealed under it stop matching; and once
// the whole key is destroyed, Seal, Open and the search terms all fail
// with keyring.ErrKeyDestroyed. A table that had the keys cached sees the
// destroy within the keyring's CacheTTL, or at once after Forget.

// readVersions reads the table's branch key versions: the live ones,
// active first, then decrypt-only newest first (as
// keyring.Hierarchical.LiveVersions orders them), and the destroyed ones.
// keyring.ErrKeyDestroyed when none is live: the key is destroyed.
func (t *Table) readVersions(ctx context.Context) (*liveSet, error) {
	vs, err := t.cfg.Keys.Versions(ctx, t.cfg.BranchKeyID)
	if err != nil {
		return nil, fmt.Errorf("fieldenc: reading the live branch key versions: %w", err)
	}
	ls := &liveSet{readAt: time.Now()}
	for _, v := range slices.Backward(vs) {
		ref, err := refOf(v.Version)
		if err != nil {
			return nil, err
		}
		lv := liveVersion{version: v.Version, ref: ref}
		switch v.State {
		case keystore.StateActive:
			ls.versions = slices.Insert(ls.versions, 0, lv)
		case keystore.StateDecryptOnly:
			ls.versions = append(ls.versions, lv)
		case keystore.StateDestroyed:
			ls.destroyed = append(ls.destroyed, lv)
		}
	}
	if len(ls.versions) == 0 {
		return nil, fmt.Errorf("fieldenc: reading the live branch key versions: %w: %s", keyring.ErrKeyDestroyed, keystore.Fingerprint(t.cfg.BranchKeyID))
	}
	return ls, nil
}

// destroyedError is keyring.ErrKeyDestroyed for a value whose key
// reference names a destroyed version of ls, or nil.
func (ls *liveSet) destroyedError(ref keyRef) error {
	for _, lv := range ls.destroyed {
		if lv.ref == ref {
			return fmt.Errorf("fieldenc: the value's branch key version %s: %w", lv.version, keyring.ErrKeyDestroyed)
		}
	}
	return nil
}

// Forget drops every branch key version the table knows and every key it
// derived from one, so the next operation asks the keyring again. Call it
// with keyring.Hierarchical.Forget after a destroy (custody.BranchKeys.
// DestroyVersion or DestroyKey) that must take effect in this process at
// once; otherwise it does within the keyring's CacheTTL.
func (t *Table) Forget() { t.dropKeys() }
