package custody

import (
	"context"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
)

// DestroyVersion crypto-shreds one version of branch key id
// (keystore.Store.Destroy): its wrapped material is erased from the store
// and the record stays as a tombstone, so everything encrypted under the
// version fails to decrypt with keyring.ErrKeyDestroyed, in every process,
// from then on. The active version cannot be destroyed alone
// (keystore.ErrConflict): rotate first, or destroy the whole key. A
// version already destroyed is not an error, so a retry is safe.
//
// The version's branch-key escrow record (keyring.ShredBranchKeyEscrow)
// is shredded with it, so the escrow key cannot bring it back.
//
// It cannot be undone. Processes that cached the version keep it for at
// most their keyring's CacheTTL; in this process call
// keyring.Hierarchical.Forget (and phicrypt.Cache.ForgetBranchKey) to end
// it at once. Backups made before still hold the material: see
// docs/OPERATIONS.md "Crypto-shredding".
func (b *BranchKeys) DestroyVersion(ctx context.Context, id, version string) error {
	if err := keystore.CheckKeyVersion(id, version); err != nil {
		return err
	}
	if err := b.cfg.Store.Destroy(ctx, id, version); err != nil {
		return wrapStep(err, "destroying version %s of %s", version, keystore.Fingerprint(id))
	}
	return keyring.ShredBranchKeyEscrow(ctx, b.cfg.Store, id, version)
}

// DestroyKey crypto-shreds every version of branch key id, the active one
// included (keystore.Store.DestroyKey): nothing can be encrypted or
// decrypted under it again (keyring.ErrKeyDestroyed), and its id is never
// reused. With one branch key per subject (a patient, through the
// hierarchical keyring's BranchKeyIDSupplier), this is "forget this
// patient" in one call: their messages and fields no longer decrypt, and
// their blind-index terms no longer match. A destroyed key is not an
// error, so a retry (after a crash midway, say) is safe and finishes it.
// The same bounds as DestroyVersion apply.
func (b *BranchKeys) DestroyKey(ctx context.Context, id string) error {
	if err := keystore.CheckID(id); err != nil {
		return err
	}
	if err := b.cfg.Store.DestroyKey(ctx, id); err != nil {
		return wrapStep(err, "destroying %s", keystore.Fingerprint(id))
	}
	return b.shredEscrow(ctx, id)
}

// shredEscrow shreds the escrow record of every version of branch key id
// (keyring.ShredBranchKeyEscrow), so no escrow copy outlives the key.
func (b *BranchKeys) shredEscrow(ctx context.Context, id string) error {
	vs, err := b.cfg.Store.List(ctx, id)
	if err != nil {
		return wrapStep(err, "listing the versions of %s to shred their escrow copies", keystore.Fingerprint(id))
	}
	for _, v := range vs {
		if err := keyring.ShredBranchKeyEscrow(ctx, b.cfg.Store, id, v.Version); err != nil {
			return err
		}
	}
	return nil
}
