//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
)

// keepOwner gives f the owner and group of the file fi describes, so a
// file recover replaces stays readable by the service that owns it. It
// is refused (the message is left as it was) when the user running
// recover may not give the file away: run recover as the files' owner or
// as root.
func keepOwner(f *os.File, fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("keeping the file's owner %d and group %d (run recover as its owner or as root): %w", st.Uid, st.Gid, err)
	}
	return nil
}
