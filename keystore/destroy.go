package keystore

import "fmt"

// Crypto-shredding (NIST SP 800-88 "cryptographic erase"): Store.Destroy
// and Store.DestroyKey erase a version's wrapped material and keep a
// tombstone. These helpers keep the rules in one place for every back end.

// checkMaterial checks the wrapped key of a record: present (CheckWrapped)
// for a live version, absent for a tombstone, whose KMS key ARN is kept
// (it says which key once wrapped the material).
func checkMaterial(v BranchKeyVersion) error {
	if v.State != StateDestroyed {
		return CheckWrapped(v.KMSKeyARN, v.Ciphertext)
	}
	if len(v.Ciphertext) != 0 {
		return fmt.Errorf("%w: a destroyed version holds no wrapped key", ErrInvalid)
	}
	return CheckWrapped(v.KMSKeyARN, []byte{0})
}

// Tombstone is v as Destroy leaves it: state StateDestroyed, no
// Ciphertext, everything else kept.
func (v BranchKeyVersion) Tombstone() BranchKeyVersion {
	v.State = StateDestroyed
	v.Ciphertext = nil
	return v
}

// DestroyedError is ErrDestroyed for one version of branch key id (for
// Rewrap, AddUsage, and readers of the version).
func DestroyedError(id, version string) error {
	return fmt.Errorf("%w: %s version %s", ErrDestroyed, Fingerprint(id), version)
}

// KeyDestroyedError is ErrDestroyed for branch key id as a whole (for
// Active and Rotate on a destroyed key).
func KeyDestroyedError(id string) error {
	return fmt.Errorf("%w: %s has no active version; every version is destroyed", ErrDestroyed, Fingerprint(id))
}

// ActiveDestroyError is the ErrConflict Destroy returns for the active
// version.
func ActiveDestroyError(id, version string) error {
	return fmt.Errorf("%w: %s version %s is the active version: rotate first, or destroy the whole key (DestroyKey)",
		ErrConflict, Fingerprint(id), version)
}
