//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly || windows

package keystore

import "context"

// Destroy implements Store. The branch key's document is rewritten without
// the version's wrapped key, as every write is (a new file renamed over the
// old one, under the lock), so the erasure is atomic and durable once
// Destroy returns. What the file store cannot reach: the blocks of the
// replaced document (and of every earlier rewrite of it: each rotation and
// usage reservation rewrites it) are freed by the file system, not
// overwritten, and stay readable on the raw device until reused; use an
// encrypted file system, and see docs/OPERATIONS.md "Crypto-shredding".
func (s *FileStore) Destroy(ctx context.Context, id, version string) error {
	if err := CheckKeyVersion(id, version); err != nil {
		return err
	}
	return s.modify(ctx, id, func(d *fileDocument) error {
		i := d.find(version)
		if i < 0 {
			return VersionNotFoundError(id, version)
		}
		switch d.Versions[i].State {
		case StateDestroyed:
			return errUnchanged
		case StateActive:
			return ActiveDestroyError(id, version)
		}
		d.Versions[i].destroy()
		return nil
	})
}

// DestroyKey implements Store: every version in one rewrite of the
// document, so it is atomic: a crash leaves the key whole or destroyed.
func (s *FileStore) DestroyKey(ctx context.Context, id string) error {
	if err := CheckID(id); err != nil {
		return err
	}
	return s.modify(ctx, id, func(d *fileDocument) error {
		changed := false
		for i := range d.Versions {
			if d.Versions[i].State != StateDestroyed {
				d.Versions[i].destroy()
				changed = true
			}
		}
		if !changed {
			return errUnchanged
		}
		return nil
	})
}

func (v *fileVersion) destroy() {
	clear(v.Ciphertext)
	v.Ciphertext = nil
	v.State = StateDestroyed
}
