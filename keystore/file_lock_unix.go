//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package keystore

import (
	"errors"
	"os"
	"syscall"
)

// tryLockFile takes f's exclusive advisory lock without waiting; false if
// another holds it.
func tryLockFile(f *os.File) (bool, error) {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return false, nil
		}
		return false, err
	}
}

func unlockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }

// replaceFile renames tmp over path, atomically.
func replaceFile(tmp, path string) error { return os.Rename(tmp, path) }

// syncDirectory makes a rename in dir durable.
func syncDirectory(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
