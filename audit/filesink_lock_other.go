//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || windows)

package audit

import (
	"errors"
	"os"
	"runtime"
)

// lockDir refuses: on this system FileSink has no lock that keeps a second
// writer out, and two writers would tear the log.
func lockDir(string) (*os.File, error) {
	return nil, errors.New("FileSink cannot lock a directory on " + runtime.GOOS + ": use another Sink")
}
