//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
)

// checkOutDir makes dir (mode 0700) if it does not exist, and refuses it
// unless only the user running keyctl can write to it: escrow init writes
// the shares of the escrow private key there, and whoever else may write
// to it could replace the public key file or a share file before its
// custodian takes it.
func checkOutDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("making --out-dir %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return usagef("--out-dir %s is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("--out-dir %s belongs to user %d, not to the user running keyctl (%d): choose a directory of your own that only you can write", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("--out-dir %s can be written by others (mode %v): chmod go-w it, or choose a directory only you can write", dir, fi.Mode().Perm())
	}
	return nil
}
