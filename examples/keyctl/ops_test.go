package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"
)

type listed struct {
	Keys []struct {
		Fingerprint   string `json:"fingerprint"`
		ActiveVersion string `json:"active_version"`
		KMSKeyARN     string `json:"kms_key_arn"`
		Versions      int    `json:"versions"`
	} `json:"keys"`
}

// TestRewrapResumesAndBackupRestores: rewrap resumes from a checkpoint and
// reports progress as lines off a terminal; backup and restore carry every
// key into an empty store.
func TestRewrapResumesAndBackupRestores(t *testing.T) {
	w := newWorld(t)
	w.initTeam()
	for _, id := range []string{"tenant-a", "tenant-b", "tenant-c"} {
		w.ok("create", id)
	}
	w.ok("rotate", "tenant-a")
	var first struct {
		Versions []versionJSON `json:"versions"`
	}
	w.okJSON(&first, "show", "tenant-a")
	require.Len(t, first.Versions, 2)

	// An interrupted rewrap left its position after tenant-a's first
	// version: the next run resumes after it.
	newARN := w.createKMSKey()
	cp, _ := json.Marshal(rewrapCheckpoint{To: newARN, BranchKeyID: "tenant-a", Version: first.Versions[0].Version})
	require.NoError(t, os.WriteFile(filepath.Join(w.dir, "keyctl", "rewrap.checkpoint"), cp, 0o600))
	out, errOut, code := w.run("rewrap", "--to", newARN, "--json", "--progress", "lines")
	require.Equal(t, 0, code, errOut)
	var rep struct {
		Total, Rewrapped, Resumed int
		AlreadyMoved              int `json:"already_moved"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Equal(t, 4, rep.Total)
	require.Equal(t, 1, rep.Resumed)
	require.Equal(t, 3, rep.Rewrapped)
	require.Contains(t, errOut, "rewrap: 4/4 versions\n")
	_, err := os.Stat(filepath.Join(w.dir, "keyctl", "rewrap.checkpoint"))
	require.ErrorIs(t, err, os.ErrNotExist, "a finished rewrap removes its checkpoint")
	// The skipped version moves on a full run; the others are not redone.
	w.okJSON(&rep, "rewrap", "--to", newARN, "--progress", "none")
	require.Equal(t, 1, rep.Rewrapped)
	require.Equal(t, 3, rep.AlreadyMoved)

	// New versions are made under the new key.
	w.ok("create", "tenant-d")
	var l listed
	w.okJSON(&l, "list")
	require.Len(t, l.Keys, 4)
	for _, k := range l.Keys {
		require.Equal(t, newARN, k.KMSKeyARN)
	}

	// Backup, then restore into an empty store.
	backup := filepath.Join(w.dir, "backup", "keys.bak")
	_, errOut, code = w.run("backup", backup, "--progress", "lines")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "backup: 4/4 keys\n")
	fi, err := os.Stat(backup)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	w.fails(1, "restore needs an empty store", "restore", backup)
	other := "sqlite:" + filepath.Join(w.dir, "restored.db")
	var restored struct{ Keys int }
	w.okJSON(&restored, "restore", backup, "--store", other, "--progress", "none")
	require.Equal(t, 4, restored.Keys)
	var l2 listed
	w.okJSON(&l2, "list", "--store", other)
	require.Equal(t, l, l2)

	// audit prove: an inclusion proof and a consistency proof, checked
	// by keyctl; audit verify --since an older checkpoint.
	var proof struct {
		Index  int64
		Record string
		Proof  []string
		Event  recordJSON
	}
	w.okJSON(&proof, "audit", "prove", "--index", "0")
	require.Equal(t, "init", proof.Event.Operation)
	require.NotEmpty(t, proof.Record)
	require.NotEmpty(t, proof.Proof)
	w.okJSON(&proof, "audit", "prove", "--old-size", "2")
	require.NotEmpty(t, proof.Proof)
	w.fails(2, "--index", "audit", "prove", "--index", "100000")
	older := filepath.Join(w.dir, "older-checkpoint")
	b, err := os.ReadFile(filepath.Join(w.dir, "keyctl", "audit-checkpoint"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(older, b, 0o600))
	w.ok("rotate", "tenant-b")
	require.Contains(t, w.ok("audit", "verify", "--since", older), "verified")
}

// TestDisableEnable: disabling the KMS key is a quorum change; while it is
// disabled nothing new is wrapped under it.
func TestDisableEnable(t *testing.T) {
	w := newWorld(t)
	w.sharedAuditLog = true // in PostgreSQL when there is one
	ids := w.initTeam()
	req := filepath.Join(w.dir, "disable.json")
	w.ok("disable", "-o", req, "--reason", "suspected compromise", "--identity", ids["carol"])
	w.ok("approve", req, "--identity", ids["carol"])
	w.ok("approve", req, "--identity", ids["alice"])
	var applied struct{ Approvers []string }
	w.okJSON(&applied, "apply", req)
	require.Equal(t, []string{"alice", "carol"}, applied.Approvers)
	md, err := kmsClient(w.kmsURL, custodianPrincipal).DescribeKey(t.Context(), &kms.DescribeKeyInput{KeyId: aws.String(w.keyARN)})
	require.NoError(t, err)
	require.Equal(t, types.KeyStateDisabled, md.KeyMetadata.KeyState)
	w.fails(1, "Disabled", "create", "tenant-x")

	req = filepath.Join(w.dir, "enable.json")
	w.ok("enable", "-o", req, "--identity", ids["bob"])
	w.ok("approve", req, "--identity", ids["bob"])
	w.ok("approve", req, "--identity", ids["carol"])
	w.ok("apply", req)
	w.ok("create", "tenant-x")

	var verified struct{ Records []recordJSON }
	w.okJSON(&verified, "audit", "verify")
	ops := []string{}
	for _, r := range verified.Records {
		ops = append(ops, r.Operation)
	}
	require.True(t, slices.Contains(ops, "disable kms key") && slices.Contains(ops, "enable kms key"), "%v", ops)
	require.False(t, slices.ContainsFunc(verified.Records, func(r recordJSON) bool { return strings.Contains(r.Reason, "tenant-x") }))
}
