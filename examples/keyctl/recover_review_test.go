package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// TestRecoverRefusesNoMessagesBeforeSpending: a --messages directory that
// lists no message (empty, or a symbolic link to the directory, which the
// walk does not follow) must be refused before the quorum-approved request
// is spent, not reported as a finished recovery of 0 messages.
func TestRecoverRefusesNoMessagesBeforeSpending(t *testing.T) {
	w, _, ids := recoveryWorld(t)
	dir := w.dir
	ctx := t.Context()

	escrowDir, pub := w.escrow2of3()

	svc := kmsClient(w.kmsURL, servicePrincipal)
	k, err := svc.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("a service key, soon lost")})
	require.NoError(t, err)
	kmsKeyring, err := keyring.NewKMS(keyring.KMSConfig{Client: svc, Generator: aws.ToString(k.KeyMetadata.Arn)})
	require.NoError(t, err)
	escrow, err := keyring.NewHPKEEscrow("escrow-2026", pub)
	require.NoError(t, err)
	both, err := keyring.NewMulti(kmsKeyring, escrow)
	require.NoError(t, err)
	service, err := phicrypt.New(phicrypt.Config{Keyring: both})
	require.NoError(t, err)

	msgDir := filepath.Join(dir, "messages")
	require.NoError(t, os.MkdirAll(msgDir, 0o700))
	ct, err := service.Encrypt(ctx, []byte("a discharge summary"), nil)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(msgDir, "a"), ct, 0o600))
	link := filepath.Join(dir, "messages-link")
	require.NoError(t, os.Symlink(msgDir, link))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.MkdirAll(empty, 0o700))

	k2 := w.createRecoveryKey()
	req := filepath.Join(dir, "recover.json")
	w.approvedRecover(ids, k2, req)
	share := func(who string) string { return filepath.Join(escrowDir, "escrow-2026."+who+".share") }
	for _, d := range []string{empty, link} {
		w.fails(2, "no message", "recover", req, "--messages", d, "--share", share("alice"), "--share", share("bob"))
	}
	// The request was not spent: the real directory recovers with it.
	w.ok("recover", req, "--messages", msgDir, "--share", share("alice"), "--share", share("bob"))
	k2Only, err := keyring.NewKMS(keyring.KMSConfig{Client: svc, Keys: []string{k2}})
	require.NoError(t, err)
	restored, err := phicrypt.New(phicrypt.Config{Keyring: k2Only})
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(msgDir, "a"))
	require.NoError(t, err)
	pt, _, err := restored.Decrypt(ctx, b, nil)
	require.NoError(t, err)
	require.Equal(t, "a discharge summary", string(pt))
}

// TestRecoverResumeDoesNotSkipNewMessages: a resume skips the messages
// done before the interruption, not every message whose name sorts before
// the last one done: a message that appeared since (or a --messages
// directory other than the first run's) is rewrapped, not counted as done.
func TestRecoverResumeDoesNotSkipNewMessages(t *testing.T) {
	w, _, ids := recoveryWorld(t)
	dir := w.dir
	ctx := t.Context()

	escrowDir, pub := w.escrow2of3()
	svc, _, service := w.serviceWithEscrow(pub)

	msgDir := filepath.Join(dir, "messages")
	plain := writeMessages(t, service, msgDir, "b", "d")
	require.NoError(t, os.WriteFile(filepath.Join(msgDir, "c"), []byte("not a message"), 0o600))
	k2 := w.createRecoveryKey()
	req := filepath.Join(dir, "recover.json")
	w.approvedRecover(ids, k2, req)
	share := func(who string) string { return filepath.Join(escrowDir, "escrow-2026."+who+".share") }
	run := []string{"recover", req, "--messages", msgDir, "--share", share("alice"), "--share", share("bob")}
	_, errOut, code := w.run(run...)
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, "message file:c")

	// Meanwhile the damaged file is set aside and a message "a" arrives.
	require.NoError(t, os.Remove(filepath.Join(msgDir, "c")))
	for name, p := range writeMessages(t, service, msgDir, "a") {
		plain[name] = p
	}
	var resumed recoverView
	w.okJSON(&resumed, run...)
	require.Equal(t, 3, resumed.Total)
	require.Equal(t, resumed.Total, resumed.Rewrapped+resumed.Resumed)

	k2Only, err := keyring.NewKMS(keyring.KMSConfig{Client: svc, Keys: []string{k2}})
	require.NoError(t, err)
	restored, err := phicrypt.New(phicrypt.Config{Keyring: k2Only})
	require.NoError(t, err)
	for name, msg := range readAll(t, msgDir, plain) {
		_, _, err := restored.Decrypt(ctx, msg, nil)
		require.NoError(t, err, "message %s was reported recovered but is not", name)
	}
}

// TestEscrowInitTakesACustodian: only a custodian of the "*" policy (by
// name and key) makes an escrow key: whoever runs escrow init holds every
// share for a moment and registers the name recover requests are
// proposed by, so a principal outside the policy, or a service, must not
// (nor squat the name the custodians meant to use). The refusal is
// audited.
func TestEscrowInitTakesACustodian(t *testing.T) {
	w, _, ids := recoveryWorld(t)
	dir := w.dir
	for _, who := range []string{"mallory", "svc"} {
		out := filepath.Join(dir, "escrow-"+who)
		w.fails(1, "custodian", "escrow", "init", "--name", "escrow-2026", "--threshold", "2",
			"--custodian", "alice", "--custodian", "bob", "--custodian", "carol", "--out-dir", out, "--identity", ids[who])
		_, err := os.Stat(out)
		require.ErrorIs(t, err, os.ErrNotExist, "nothing is written for a refused escrow init")
	}
	// The name is still free for the custodians.
	w.ok("escrow", "init", "--name", "escrow-2026", "--threshold", "2",
		"--custodian", "alice", "--custodian", "bob", "--custodian", "carol", "--out-dir", filepath.Join(dir, "escrow"))
	require.Contains(t, w.ok("audit", "verify", "--records", "-1"), "not-custodian")
}

// TestEscrowInitLeavesNothingOnFailure: an escrow init that cannot write
// one of its files (here a symbolic link already at carol's share path,
// which it must not follow) writes nothing it keeps: no public key and no
// share of a key the store never recorded, and a second run succeeds.
func TestEscrowInitLeavesNothingOnFailure(t *testing.T) {
	l := kmsmock.StartTest(t, kmsmock.Config{})
	dir := t.TempDir()
	w := &world{t: t, dir: dir, kmsURL: l.URL, config: filepath.Join(dir, "keyctl", "config.json"), pubKeys: map[string]string{}}
	w.keyARN = w.createKMSKey()
	w.store = storeURL(t, dir)
	w.initTeamOfThree()
	out := filepath.Join(dir, "escrow")
	require.NoError(t, os.MkdirAll(out, 0o700))
	target := filepath.Join(dir, "elsewhere")
	link := filepath.Join(out, "escrow-2026.carol.share")
	require.NoError(t, os.Symlink(target, link))
	args := []string{"escrow", "init", "--name", "escrow-2026", "--threshold", "2",
		"--custodian", "alice", "--custodian", "bob", "--custodian", "carol", "--out-dir", out}
	w.fails(1, "exists", args...)
	_, err := os.Lstat(target)
	require.ErrorIs(t, err, os.ErrNotExist, "the link was not followed")
	entries, err := os.ReadDir(out)
	require.NoError(t, err)
	require.Len(t, entries, 1, "only the link is left: no public key, no share")
	require.NoError(t, os.Remove(link))
	w.ok(args...)
}

// TestEscrowInitRefusalsAudited: an escrow init refused because a share
// would go to someone who is not a custodian (by name, or by key) lands
// in the audit log as a denial, as every refusal of break glass does.
func TestEscrowInitRefusalsAudited(t *testing.T) {
	l := kmsmock.StartTest(t, kmsmock.Config{})
	dir := t.TempDir()
	w := &world{t: t, dir: dir, kmsURL: l.URL, config: filepath.Join(dir, "keyctl", "config.json"), pubKeys: map[string]string{}}
	w.keyARN = w.createKMSKey()
	w.store = storeURL(t, dir)
	w.initTeamOfThree()
	w.fails(1, "not a custodian", "escrow", "init", "--name", "escrow-2026", "--threshold", "2",
		"--custodian", "alice", "--custodian", "mallory", "--out-dir", filepath.Join(dir, "escrow"))
	w.fails(1, "custodian bob", "escrow", "init", "--name", "escrow-2026", "--threshold", "2",
		"--custodian", "alice", "--custodian", "bob="+w.pubKeys["carol"], "--out-dir", filepath.Join(dir, "escrow"))
	records := w.ok("audit", "verify", "--records", "-1")
	require.Equal(t, 2, strings.Count(records, "escrow-init"), records)
	require.Equal(t, 2, strings.Count(records, "not-custodian"), records)
}

// TestRecoverUnwritablePositionDoesNotSpend: a position file that cannot
// be written is found out before the request is spent, so the same
// request still recovers once --position is fixed (and a recovery
// stopped right after its authorization has a position to resume from).
func TestRecoverUnwritablePositionDoesNotSpend(t *testing.T) {
	w, _, ids := recoveryWorld(t)
	dir := w.dir

	escrowDir, pub := w.escrow2of3()
	_, _, service := w.serviceWithEscrow(pub)
	msgDir := filepath.Join(dir, "messages")
	writeMessages(t, service, msgDir, "a")

	k2 := w.createRecoveryKey()
	req := filepath.Join(dir, "recover.json")
	w.approvedRecover(ids, k2, req)
	share := func(who string) string { return filepath.Join(escrowDir, "escrow-2026."+who+".share") }
	// A directory that is a dangling symbolic link: reading the position
	// finds none, writing it fails.
	dangling := filepath.Join(dir, "dangling")
	require.NoError(t, os.Symlink(filepath.Join(dir, "gone"), dangling))
	run := []string{"recover", req, "--messages", msgDir, "--share", share("alice"), "--share", share("bob")}
	w.fails(1, "position", append(run, "--position", filepath.Join(dangling, "recover.position"))...)
	var done recoverView
	w.okJSON(&done, run...)
	require.Equal(t, 1, done.Rewrapped)
}
