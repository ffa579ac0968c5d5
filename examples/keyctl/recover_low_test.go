package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
)

// auditRecords returns every record of the audit log, verified.
func (w *world) auditRecords() []recordJSON {
	var v struct {
		Verified bool         `json:"verified"`
		Records  []recordJSON `json:"records"`
	}
	w.okJSON(&v, "audit", "verify", "--records", "-1")
	require.True(w.t, v.Verified)
	return v.Records
}

// denials counts the denial records of operation op, and the reasons
// given.
func (w *world) denials(op string) (int, []string) {
	n, reasons := 0, []string(nil)
	for _, r := range w.auditRecords() {
		if r.Kind == "denial" && r.Operation == op {
			n++
			reasons = append(reasons, r.Reason)
		}
	}
	return n, reasons
}

// TestRecoverResumeRefusedUnderNewPolicy: a recovery interrupted midway
// resumes only while the policies in force would still authorize it. A
// prefix policy installed meanwhile (by the normal quorum flow) whose
// custodian did not approve the recovery stops the resume, with the error
// a fresh authorization gives (too few approvals), and the refusal is
// audited as a denial.
func TestRecoverResumeRefusedUnderNewPolicy(t *testing.T) {
	w, _, ids := recoveryWorld(t)
	dir := w.dir

	escrowDir, pub := w.escrow2of3()
	_, _, service := w.serviceWithEscrow(pub)
	msgDir := filepath.Join(dir, "messages")
	writeMessages(t, service, msgDir, "a", "c")
	require.NoError(t, os.WriteFile(filepath.Join(msgDir, "b"), []byte("not a message"), 0o600))

	k2 := w.createRecoveryKey()
	req := filepath.Join(dir, "recover.json")
	w.approvedRecover(ids, k2, req)
	share := func(who string) string { return filepath.Join(escrowDir, "escrow-2026."+who+".share") }
	run := []string{"recover", req, "--messages", msgDir, "--share", share("alice"), "--share", share("bob")}
	_, errOut, code := w.run(run...)
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, "run the same keyctl recover again to resume")
	require.NoError(t, os.Remove(filepath.Join(msgDir, "b")))

	// A policy for the keys under "tenant-" that adds dave and needs all
	// four for every change, recover included; approved by the "*"
	// policy's quorum and its own.
	ids["dave"] = w.identity("dave")
	policy := filepath.Join(dir, "tenant-policy.json")
	w.ok("propose", "set-policy", "--scope", "tenant-*", "-o", policy,
		"--custodian", "alice="+w.pubKeys["alice"], "--custodian", "bob="+w.pubKeys["bob"], "--custodian", "carol="+w.pubKeys["carol"],
		"--custodian", "dave="+w.pubKeys["dave"], "--quorum", "4")
	for _, who := range []string{"alice", "bob", "carol", "dave"} {
		w.ok("approve", policy, "--identity", ids[who])
	}
	w.ok("apply", policy)

	before, _ := w.denials("resume recover")
	w.fails(1, "too few custodians approved", run...)
	after, reasons := w.denials("resume recover")
	require.Equal(t, before+1, after, "the refused resume is audited")
	require.Equal(t, "too-few-approvals", reasons[len(reasons)-1])
}

// TestRecoverRefusalsAudited: every refusal of keyctl recover once its
// change files parse lands in the audit log as a denial: usage errors (no
// --share, neither --messages nor --s3, too many shares, a change file
// of another action) and a position file of another request. None of
// them spends the request: it recovers afterwards.
func TestRecoverRefusalsAudited(t *testing.T) {
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
	shares := []string{"--share", share("alice"), "--share", share("bob")}

	tooMany := []string{"recover", req, "--messages", msgDir}
	for i := range custody.MaxEscrowShares + 1 {
		tooMany = append(tooMany, "--share", filepath.Join(dir, "s"+strconv.Itoa(i)))
	}
	position := filepath.Join(dir, "other.position")
	require.NoError(t, os.WriteFile(position, []byte(`{"request":"`+strings.Repeat("ab", 32)+`","done":0}`), 0o600))
	cases := []struct {
		want string
		args []string
	}{
		{"needs --share", []string{"recover", req, "--messages", msgDir}},
		{"--messages DIR, --s3 s3://BUCKET/PREFIX or --branch-keys", append([]string{"recover", req}, shares...)},
		{"at most", tooMany},
		{"not recover", append([]string{"recover", filepath.Join(dir, "policy.json"), "--messages", msgDir}, shares...)},
		{"another recovery", append([]string{"recover", req, "--messages", msgDir, "--position", position}, shares...)},
	}
	for _, c := range cases {
		before, _ := w.denials("recover")
		w.fails(2, c.want, c.args...)
		after, reasons := w.denials("recover")
		require.Equal(t, before+1, after, "keyctl %s: the refusal is audited", strings.Join(c.args, " "))
		require.Equal(t, "failed", reasons[len(reasons)-1])
	}
	// No record holds a share file's path or contents.
	for _, r := range w.auditRecords() {
		require.NotContains(t, r.Reason, escrowDir)
		require.NotContains(t, r.Reason, position)
	}
	var done recoverView
	w.okJSON(&done, append([]string{"recover", req, "--messages", msgDir}, shares...)...)
	require.Equal(t, 1, done.Rewrapped)
}

// TestEscrowInitAuditsBeforeStore: escrow init writes its audit record
// before it records the escrow key in the store, so a key the store knows
// is always audited. With the audit log failing (its checkpoint path
// taken by a directory), the init fails, leaves no file, and the store
// does not hold the key: the same name is free once the log works again.
func TestEscrowInitAuditsBeforeStore(t *testing.T) {
	w, _, _ := recoveryWorld(t)
	checkpoint := filepath.Join(filepath.Dir(w.config), "audit-checkpoint")
	saved, err := os.ReadFile(checkpoint)
	require.NoError(t, err)
	require.NoError(t, os.Remove(checkpoint))
	require.NoError(t, os.MkdirAll(filepath.Join(checkpoint, "blocked"), 0o700))

	out := filepath.Join(w.dir, "escrow")
	args := []string{"escrow", "init", "--name", "escrow-2026", "--threshold", "2",
		"--custodian", "alice", "--custodian", "bob", "--custodian", "carol", "--out-dir", out}
	w.fails(1, "auditing escrow key escrow-2026", args...)
	entries, err := os.ReadDir(out)
	require.NoError(t, err)
	require.Empty(t, entries, "no public key or share of an unrecorded key is left")

	require.NoError(t, os.RemoveAll(checkpoint))
	require.NoError(t, os.WriteFile(checkpoint, saved, 0o644))
	var made escrowView
	w.okJSON(&made, args...)
	inits, this := 0, 0
	for _, r := range w.auditRecords() {
		if r.Kind == "admin-change" && r.Operation == "escrow-init" {
			inits++
			if strings.Contains(r.Reason, "sha256:"+made.SHA256) {
				this++
			}
		}
	}
	require.Equal(t, 1, this, "the escrow key in the store is audited")
	// The failed init's record reached the log before its checkpoint
	// failed: the audit record was written first.
	require.Equal(t, 2, inits)
}
