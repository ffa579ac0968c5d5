//go:build unix

package main

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on path (created if need be), waiting
// for another keyctl that holds it; the function returned releases it.
func lockFile(path string) (func() error, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return f.Close, nil
}
