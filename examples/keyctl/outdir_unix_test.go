//go:build unix

package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEscrowInitRefusesSharedOutDir: escrow init writes the escrow key's
// shares to --out-dir, so it refuses a directory that others can write
// (group or world) or that another user owns, before it generates
// anything, and audits the refusal. A directory that does not exist is
// made private.
func TestEscrowInitRefusesSharedOutDir(t *testing.T) {
	w, _, _ := recoveryWorld(t)
	args := func(out string) []string {
		return []string{"escrow", "init", "--name", "escrow-2026", "--threshold", "2",
			"--custodian", "alice", "--custodian", "bob", "--custodian", "carol", "--out-dir", out}
	}
	before, _ := w.denials("escrow-init")
	refused := 0
	for _, mode := range []os.FileMode{0o777, 0o720, 0o702} {
		out := filepath.Join(w.dir, "shared-"+mode.String())
		require.NoError(t, os.Mkdir(out, 0o700))
		require.NoError(t, os.Chmod(out, mode))
		w.fails(1, "can be written by others", args(out)...)
		entries, err := os.ReadDir(out)
		require.NoError(t, err)
		require.Empty(t, entries, "mode %v: nothing is written", mode)
		refused++
	}
	// Root can give a directory away; anyone else cannot make one of
	// another user's, and the check above stands for them.
	if os.Geteuid() == 0 {
		out := filepath.Join(w.dir, "theirs")
		require.NoError(t, os.Mkdir(out, 0o700))
		require.NoError(t, os.Chown(out, 4242, 4343))
		w.fails(1, "belongs to user 4242", args(out)...)
		entries, err := os.ReadDir(out)
		require.NoError(t, err)
		require.Empty(t, entries)
		refused++
	}
	after, _ := w.denials("escrow-init")
	require.Equal(t, before+refused, after, "every refusal is audited")

	// The name is still free: a private directory, made here, takes it.
	out := filepath.Join(w.dir, "new", "escrow")
	w.ok(args(out)...)
	fi, err := os.Stat(out)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
}
