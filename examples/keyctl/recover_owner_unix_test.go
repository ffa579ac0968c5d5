//go:build unix

package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRecoverKeepsOwner: recover replaces each message file with a new
// one; it must keep the file's owner and group as well as its mode, or a
// service that owns its 0600 files cannot read them after a recovery run
// by another user (root, typically). Run as root the files belong to
// another user; otherwise (no chown) to the one running the test.
func TestRecoverKeepsOwner(t *testing.T) {
	w, _, ids := recoveryWorld(t)
	dir := w.dir

	escrowDir, pub := w.escrow2of3()
	_, _, service := w.serviceWithEscrow(pub)
	msgDir := filepath.Join(dir, "messages")
	writeMessages(t, service, msgDir, "a")
	path := filepath.Join(msgDir, "a")
	uid, gid := os.Geteuid(), os.Getegid()
	if uid == 0 {
		uid, gid = 4242, 4343
		require.NoError(t, os.Chown(path, uid, gid))
	}

	k2 := w.createRecoveryKey()
	req := filepath.Join(dir, "recover.json")
	w.approvedRecover(ids, k2, req)
	share := func(who string) string { return filepath.Join(escrowDir, "escrow-2026."+who+".share") }
	w.ok("recover", req, "--messages", msgDir, "--share", share("alice"), "--share", share("bob"))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	require.Equal(t, [2]int{uid, gid}, [2]int{int(st.Uid), int(st.Gid)}, "the recovered file keeps its owner and group")
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}
