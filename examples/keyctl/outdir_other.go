//go:build !unix

package main

import (
	"fmt"
	"os"
)

// checkOutDir makes dir if it does not exist. Systems without Unix
// owners and modes are not checked further: keep the directory private
// by their own means.
func checkOutDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("making --out-dir %s: %w", dir, err)
	}
	return nil
}
