//go:build windows

package keystore

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/windows"
)

// tryLockFile takes an exclusive lock on f's first byte without waiting;
// false if another handle holds it.
func tryLockFile(f *os.File) (bool, error) {
	var ol windows.Overlapped
	err := windows.LockFileEx(windows.Handle(f.Fd()),
		windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, windows.ERROR_LOCK_VIOLATION):
		return false, nil
	}
	return false, err
}

func unlockFile(f *os.File) error {
	var ol windows.Overlapped
	return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, &ol)
}

// replaceFile renames tmp over path (MoveFileEx with replace). A reader
// that has path open at that moment makes Windows refuse with a sharing or
// access error; readers hold it only while reading, so retry briefly.
func replaceFile(tmp, path string) error {
	var err error
	for wait := time.Millisecond; wait <= 256*time.Millisecond; wait *= 2 {
		if err = os.Rename(tmp, path); err == nil {
			return nil
		}
		if !errors.Is(err, windows.ERROR_SHARING_VIOLATION) && !errors.Is(err, windows.ERROR_ACCESS_DENIED) {
			return err
		}
		time.Sleep(wait)
	}
	return err
}

// syncDirectory: Windows cannot fsync a directory; NTFS journals the
// rename's metadata.
func syncDirectory(string) error { return nil }
