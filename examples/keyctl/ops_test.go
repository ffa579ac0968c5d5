package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/kmsmock"
)

type listedKey struct {
	Fingerprint   string `json:"fingerprint"`
	ActiveVersion string `json:"active_version"`
	KMSKeyARN     string `json:"kms_key_arn"`
	Versions      int    `json:"versions"`
}

type listed struct {
	Keys []listedKey `json:"keys"`
}

// TestRewrapResumesAndBackupRestores: a rewrap stopped midway (a KMS key
// whose policy does not yet allow ReEncrypt to another key) resumes from its
// checkpoint under the same authorization and reports progress as lines off
// a terminal; backup and restore carry every key into an empty store.
func TestRewrapResumesAndBackupRestores(t *testing.T) {
	w := newWorld(t)
	w.initTeam("--quorum-for", "rewrap=1")
	for _, id := range []string{"tenant-a", "tenant-b"} {
		w.ok("create", id)
	}
	w.ok("rotate", "tenant-a")
	// tenant-c's version is under a KMS key whose policy refuses
	// custodians ReEncrypt to any other key.
	strict := w.createKMSKeyWith(false)
	w.ok("create", "tenant-c", "--kms-key", strict)

	newARN := w.createKMSKey()
	out, errOut, code := w.run("rewrap", "--to", newARN, "--progress", "lines")
	require.Equal(t, 1, code, out)
	require.Contains(t, errOut, "AccessDenied")
	require.Contains(t, errOut, "rewrap: 3/4 versions\n")
	cpPath := filepath.Join(w.dir, "keyctl", "rewrap.checkpoint")
	var cp rewrapCheckpoint
	b, err := os.ReadFile(cpPath)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &cp))
	require.Equal(t, "tenant-b", cp.BranchKeyID)

	// A checkpoint cannot authorize a rewrap: one naming a request the
	// store never applied is refused.
	forged := cp
	forged.Request = forgedRewrapRequest(t, newARN)
	fb, _ := json.Marshal(forged)
	require.NoError(t, os.WriteFile(cpPath, fb, 0o600))
	w.fails(1, "never authorized", "rewrap", "--to", newARN, "--progress", "none")
	require.NoError(t, os.WriteFile(cpPath, b, 0o600))

	// Someone who names themselves after a custodian, with a key of their
	// own, cannot resume it: a custodian proves it by name and key.
	fake := filepath.Join(w.dir, "fake-alice.key")
	w.ok("init", "identity", "--name", "alice", "--out", fake)
	w.fails(1, "takes a custodian of its policy", "rewrap", "--to", newARN, "--progress", "none", "--identity", fake)

	// The strict key's policy is widened (a reviewed change of the KMS
	// key policy); the rewrap resumes after tenant-b.
	doc := w.ok("policy", "generate", "--account", kmsmock.DefaultAccount, "--custodian-arn", user(custodianPrincipal),
		"--service-arn", user(servicePrincipal), "--allow-cross-key-reencrypt")
	_, err = kmsClient(w.kmsURL, custodianPrincipal).PutKeyPolicy(t.Context(), &kms.PutKeyPolicyInput{KeyId: aws.String(strict), Policy: aws.String(doc)})
	require.NoError(t, err)
	out, errOut, code = w.run("rewrap", "--to", newARN, "--json", "--progress", "lines")
	require.Equal(t, 0, code, errOut)
	var rep struct {
		Total, Rewrapped, Resumed int
		AlreadyMoved              int `json:"already_moved"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Equal(t, 4, rep.Total)
	require.Equal(t, 3, rep.Resumed)
	require.Equal(t, 1, rep.Rewrapped)
	require.Contains(t, errOut, "rewrap: 4/4 versions\n")
	_, err = os.Stat(cpPath)
	require.ErrorIs(t, err, os.ErrNotExist, "a finished rewrap removes its checkpoint")
	// Nor can a kept (or rewritten) checkpoint of a finished rewrap run
	// its approved request again: the store records it as finished.
	require.NoError(t, os.WriteFile(cpPath, b, 0o600))
	w.fails(1, "has finished", "rewrap", "--to", newARN, "--progress", "none")
	require.NoError(t, os.Remove(cpPath))
	// A new rewrap is a new change: everything is under the key already.
	w.okJSON(&rep, "rewrap", "--to", newARN, "--progress", "none")
	require.Equal(t, 0, rep.Rewrapped)
	require.Equal(t, 4, rep.AlreadyMoved)

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
	w.fails(2, "never overwrites", "backup", backup)
	// A symbolic link at the partial file's name is not written through.
	victim := filepath.Join(w.dir, "victim")
	require.NoError(t, os.WriteFile(victim, []byte("not a backup"), 0o644))
	second := filepath.Join(w.dir, "backup", "second.bak")
	require.NoError(t, os.Symlink(victim, second+".partial"))
	w.ok("backup", second, "--progress", "none")
	got, err := os.ReadFile(victim)
	require.NoError(t, err)
	require.Equal(t, "not a backup", string(got))
	fi, err = os.Lstat(second)
	require.NoError(t, err)
	require.True(t, fi.Mode().IsRegular())
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	w.fails(1, "restore needs an empty store", "restore", backup)
	other := "sqlite:" + filepath.Join(w.dir, "restored.db")
	var restored struct{ Keys int }
	w.okJSON(&restored, "restore", backup, "--store", other, "--progress", "none")
	require.Equal(t, 4, restored.Keys)
	var l2 listed
	w.okJSON(&l2, "list", "--store", other)
	require.Equal(t, l, l2)
	// The backup carries the governance too: the trust policy is in force
	// in the restored store, so nobody outside it can install their own.
	var pol, pol2 struct {
		Policies []policyJSON `json:"policies"`
	}
	w.okJSON(&pol, "policy", "show")
	w.okJSON(&pol2, "policy", "show", "--store", other)
	require.NotEmpty(t, pol.Policies)
	require.Equal(t, pol, pol2)

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
	b, err = os.ReadFile(filepath.Join(w.dir, "keyctl", "audit-checkpoint"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(older, b, 0o600))
	w.ok("rotate", "tenant-b")
	require.Contains(t, w.ok("audit", "verify", "--since", older), "verified")

	// Rotation by age: a custodian's own use; the service may not.
	var due struct{ Checked, Rotated int }
	w.okJSON(&due, "rotate", "--due", "--max-age", "1ns")
	require.Equal(t, 4, due.Checked)
	require.Equal(t, 4, due.Rotated)
	w.fails(1, "not permit", "rotate", "--due", "--max-age", "1ns", "--identity", filepath.Join(w.dir, "svc.key"))

	// One key's rewrap moves only its versions and leaves the configured
	// KMS key alone.
	third := w.createKMSKey()
	w.okJSON(&rep, "rewrap", "tenant-a", "--to", third, "--progress", "none")
	require.Equal(t, 3, rep.Total)
	require.Equal(t, 3, rep.Rewrapped)
	w.okJSON(&l, "list")
	for _, k := range l.Keys {
		want := newARN
		if k.Versions == 3 && k.Fingerprint == keystore.Fingerprint("tenant-a") {
			want = third
		}
		require.Equal(t, want, k.KMSKeyARN, k.Fingerprint)
	}
	var made struct {
		KMSKeyARN string `json:"kms_key_arn"`
	}
	w.okJSON(&made, "create", "tenant-e")
	require.Equal(t, newARN, made.KMSKeyARN)
}

// TestDisableEnableDestroyKey: disabling the KMS key that wraps a branch
// key is a quorum change; while it is disabled nothing new is wrapped under
// it, and enabling it restores that. Destroying the whole key shreds every
// version.
func TestDisableEnableDestroyKey(t *testing.T) {
	w := newWorld(t)
	w.sharedAuditLog = true // in PostgreSQL when there is one
	ids := w.initTeam()
	w.ok("create", "tenant-x")
	w.ok("rotate", "tenant-x")
	var shown struct{ Versions []versionJSON }
	// Under this policy a rewrap needs two custodians: it is proposed.
	w.fails(1, "needs 2 custodians' approvals", "rewrap", "--to", w.keyARN)
	req := filepath.Join(w.dir, "rewrap.json")
	w.ok("propose", "rewrap", "--to", w.keyARN, "-o", req)
	w.ok("approve", req)
	w.ok("approve", req, "--identity", ids["bob"])
	_, errOut, code := w.run("apply", req, "--progress", "lines")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "rewrap: 2/2 versions\n")

	req = filepath.Join(w.dir, "disable.json")
	w.ok("disable", "tenant-x", "-o", req, "--identity", ids["carol"])
	w.ok("approve", req, "--identity", ids["carol"])
	w.ok("approve", req, "--identity", ids["alice"])
	var applied struct{ Approvers []string }
	w.okJSON(&applied, "apply", req)
	require.Equal(t, []string{"alice", "carol"}, applied.Approvers)
	md, err := kmsClient(w.kmsURL, custodianPrincipal).DescribeKey(t.Context(), &kms.DescribeKeyInput{KeyId: aws.String(w.keyARN)})
	require.NoError(t, err)
	require.Equal(t, types.KeyStateDisabled, md.KeyMetadata.KeyState)
	w.fails(1, "Disabled", "create", "tenant-y")

	req = filepath.Join(w.dir, "enable.json")
	w.ok("enable", "tenant-x", "-o", req, "--identity", ids["bob"])
	w.ok("approve", req, "--identity", ids["bob"])
	w.ok("approve", req, "--identity", ids["carol"])
	w.ok("apply", req)
	w.ok("create", "tenant-y")

	// The trust policy shows in policy show; services cannot propose.
	var pol struct {
		Policies []policyJSON `json:"policies"`
	}
	w.okJSON(&pol, "policy", "show")
	require.Len(t, pol.Policies, 1)
	require.Equal(t, "*", pol.Policies[0].Scope)
	require.Equal(t, 2, pol.Policies[0].Quorum["destroy-key"])
	require.Equal(t, 1, pol.Policies[0].Quorum["create"])
	require.Len(t, pol.Policies[0].Custodians, 3)
	for _, c := range pol.Policies[0].Custodians {
		require.Regexp(t, "^[0-9a-f]{64}$", c.PublicKey, "the whole Ed25519 key, to compare with the custodians' own")
		require.NotEmpty(t, c.Name)
		require.NotEmpty(t, c.KeyFingerprint)
	}
	require.False(t, pol.Policies[0].ServicesMayRotate.ByAge)
	w.fails(1, "not permit", "create", "tenant-y", "--identity", ids["svc"])

	// Destroying the whole key: every version is crypto-shredded.
	req = filepath.Join(w.dir, "destroy-key.json")
	w.ok("destroy", "tenant-x", "-o", req)
	w.ok("approve", req)
	w.ok("approve", req, "--identity", ids["carol"])
	w.ok("apply", req)
	w.okJSON(&shown, "show", "tenant-x")
	require.Len(t, shown.Versions, 2)
	for _, v := range shown.Versions {
		require.Equal(t, "destroyed", v.State)
		require.Zero(t, v.WrappedBytes, "a destroyed version keeps no wrapped key")
	}
	var l listed
	w.okJSON(&l, "list")
	require.Len(t, l.Keys, 2)
	require.Empty(t, l.Keys[slices.IndexFunc(l.Keys, func(k listedKey) bool { return k.Versions == 2 })].ActiveVersion)
	w.fails(1, "destroyed", "rotate", "tenant-x")

	var verified struct{ Records []recordJSON }
	w.okJSON(&verified, "audit", "verify", "--records", "-1")
	ops := []string{}
	for _, r := range verified.Records {
		ops = append(ops, r.Operation)
	}
	for _, op := range []string{"set-policy", "create", "rotate", "disable", "enable", "destroy-key", "destroy key"} {
		require.Contains(t, ops, op)
	}

	// A second custodian's keyctl, configured on the same store and log
	// with the log's keys: its records join the same verifiable log.
	var cfg config
	b, err := os.ReadFile(w.config)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &cfg))
	bobConfig := filepath.Join(w.dir, "bob", "config.json")
	w.ok("--config", bobConfig, "init", "--store", w.store, "--kms-key", w.keyARN, "--kms-endpoint", w.kmsURL,
		"--audit", cfg.Audit.Log, "--audit-table", cfg.Audit.Table, "--audit-keys", filepath.Dir(w.config))
	w.ok("--config", bobConfig, "create", "tenant-z", "--identity", ids["bob"])
	var both struct {
		CheckpointSize int64 `json:"checkpoint_size"`
		LogSize        int64 `json:"log_size"`
	}
	w.okJSON(&both, "audit", "verify", "--checkpoint", filepath.Join(w.dir, "bob", "audit-checkpoint"))
	require.Equal(t, both.LogSize, both.CheckpointSize, "bob's checkpoint covers the whole shared log")
	require.Greater(t, both.LogSize, int64(len(verified.Records)))
}

// forgedRewrapRequest is a well-formed rewrap request no one authorized.
func forgedRewrapRequest(t *testing.T, to string) string {
	r := &custody.Request{Change: custody.Change{Action: custody.ActionRewrap, KMSKeyARN: to}, Proposer: "mallory", Expiry: time.Now().Add(time.Hour).Truncate(time.Second)}
	raw, err := r.MarshalBinary()
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(raw)
}
