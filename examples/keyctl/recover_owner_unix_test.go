//go:build unix

package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/kmsmock"
)

// TestRecoverKeepsOwner: recover replaces each message file with a new
// one; it must keep the file's owner and group as well as its mode, or a
// service that owns its 0600 files cannot read them after a recovery run
// by another user (root, typically). Run as root the files belong to
// another user; otherwise (no chown) to the one running the test.
func TestRecoverKeepsOwner(t *testing.T) {
	l := kmsmock.StartTest(t, kmsmock.Config{})
	dir := t.TempDir()
	w := &world{t: t, dir: dir, kmsURL: l.URL, config: filepath.Join(dir, "keyctl", "config.json"), pubKeys: map[string]string{}}
	w.keyARN = w.createKMSKey()
	w.store = storeURL(t, dir)
	ids := w.initTeamOfThree()
	ctx := t.Context()

	escrowDir := filepath.Join(dir, "escrow")
	var made escrowView
	w.okJSON(&made, "escrow", "init", "--name", "escrow-2026", "--threshold", "2",
		"--custodian", "alice", "--custodian", "bob", "--custodian", "carol", "--out-dir", escrowDir)
	pub := readEscrowPublicKey(t, made.PublicKey)
	svc := kmsClient(w.kmsURL, servicePrincipal)
	k, err := svc.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("a service key, soon lost")})
	require.NoError(t, err)
	service := serviceEncryptor(t, svc, aws.ToString(k.KeyMetadata.Arn), pub, 0)
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
	w.ok("propose", "recover", "--escrow", "escrow-2026", "--to", k2, "-o", req)
	for _, who := range []string{"alice", "bob", "carol"} {
		w.ok("approve", req, "--identity", ids[who])
	}
	share := func(who string) string { return filepath.Join(escrowDir, "escrow-2026."+who+".share") }
	w.ok("recover", req, "--messages", msgDir, "--share", share("alice"), "--share", share("bob"))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	require.Equal(t, [2]int{uid, gid}, [2]int{int(st.Uid), int(st.Gid)}, "the recovered file keeps its owner and group")
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}
