//go:build windows

package audit

import (
	"errors"
	"os"
	"syscall"
)

// errorSharingViolation is ERROR_SHARING_VIOLATION, which the syscall
// package does not name.
const errorSharingViolation = syscall.Errno(32)

// lockDir opens path (creating it) with no sharing: while this handle is
// open, Windows refuses every other open of the file, so the open itself
// is the lock (errDirLocked when another handle holds it). Closing the
// file releases it.
func lockDir(path string) (*os.File, error) {
	p, err := syscall.UTF16PtrFromString(path)
	if err != nil {
		return nil, err
	}
	h, err := syscall.CreateFile(p, syscall.GENERIC_READ|syscall.GENERIC_WRITE, 0, nil,
		syscall.OPEN_ALWAYS, syscall.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		if errors.Is(err, errorSharingViolation) {
			return nil, errDirLocked
		}
		return nil, err
	}
	return os.NewFile(uintptr(h), path), nil
}
