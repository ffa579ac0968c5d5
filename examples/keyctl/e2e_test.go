package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
)

// everyCommand is what keyctl --help must list.
var everyCommand = []string{"init", "create", "list", "show", "rotate", "retire", "rewrap", "propose", "approve", "apply",
	"disable", "enable", "destroy", "policy", "policy generate", "policy check", "audit", "audit verify", "audit prove",
	"backup", "restore", "escrow", "escrow init", "recover"}

// TestHelpListsEveryCommand: keyctl --help names every command, and there is
// no decrypt command.
func TestHelpListsEveryCommand(t *testing.T) {
	w := &world{t: t, dir: t.TempDir()}
	w.config = filepath.Join(w.dir, "none.json")
	out := w.ok("--help")
	lines := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "   ") {
			name, _, _ := strings.Cut(strings.TrimSpace(l), "  ")
			lines[name] = true
		}
	}
	for _, c := range everyCommand {
		if !lines[c] {
			t.Errorf("keyctl --help does not list %q:\n%s", c, out)
		}
	}
	w.fails(2, `unknown command "decrypt"`, "decrypt")
	w.fails(2, "unknown flag", "list", "--no-such-flag")
	w.fails(2, "want one branch key ID", "create")
	w.fails(2, "want auto, bar, lines or none", "list", "--progress", "weird")
	w.fails(2, "--max-age must not be negative", "rotate", "--due", "--max-age", "-1h")
	require.NotContains(t, strings.ToLower(out), "\n  decrypt")
}

// TestEndToEnd: init, create, rotate, list, a change proposed and approved
// by 2 of 3 custodians and applied, refusals of a non-custodian, a single
// approval, a forgery and a replay, then audit verify shows the approvers.
func TestEndToEnd(t *testing.T) {
	w := newWorld(t)
	ids := w.initTeam()
	const id = "patient-0001"
	var created, rotated struct {
		Fingerprint string `json:"fingerprint"`
		Version     string `json:"version"`
		State       string `json:"state"`
		KMSKeyARN   string `json:"kms_key_arn"`
	}
	w.okJSON(&created, "create", id)
	require.Equal(t, keystore.Fingerprint(id), created.Fingerprint)
	require.Equal(t, "active", created.State)
	require.Equal(t, w.keyARN, created.KMSKeyARN)
	w.ok("create", "patient-0002")
	w.fails(1, "exists", "create", id)
	w.okJSON(&rotated, "rotate", id)
	require.NotEqual(t, created.Version, rotated.Version)

	// list: fingerprints, no ids unless asked.
	var list struct {
		Keys []struct {
			Fingerprint   string         `json:"fingerprint"`
			ID            string         `json:"id"`
			ActiveVersion string         `json:"active_version"`
			KMSKeyARN     string         `json:"kms_key_arn"`
			Versions      int            `json:"versions"`
			States        map[string]int `json:"states"`
		} `json:"keys"`
	}
	out := w.ok("list", "--json")
	require.NotContains(t, out, "patient-000", "list must not print branch key ids unless asked")
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	require.Len(t, list.Keys, 2)
	k := list.Keys[slices.IndexFunc(list.Keys, func(k struct {
		Fingerprint   string         `json:"fingerprint"`
		ID            string         `json:"id"`
		ActiveVersion string         `json:"active_version"`
		KMSKeyARN     string         `json:"kms_key_arn"`
		Versions      int            `json:"versions"`
		States        map[string]int `json:"states"`
	}) bool {
		return k.Fingerprint == keystore.Fingerprint(id)
	})]
	require.Equal(t, rotated.Version, k.ActiveVersion)
	require.Equal(t, 2, k.Versions)
	require.Equal(t, map[string]int{"active": 1, "decrypt_only": 1}, k.States)
	require.Equal(t, w.keyARN, k.KMSKeyARN)
	require.Contains(t, w.ok("list", "--show-ids"), id)

	// A change: proposed by alice, refused until 2 of the 3 custodians sign.
	req := filepath.Join(w.dir, "change.json")
	kind, propose := changeUnderTest(id, created.Version, rotated.Version, req)
	w.ok(propose...)
	fi, err := os.Stat(req)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "a change file names a branch key id: it must be private")

	w.fails(1, "not a custodian", "approve", req, "--identity", ids["mallory"])
	w.fails(1, "not a custodian", "approve", req, "--identity", ids["svc"])
	w.fails(1, "too few custodians", "apply", req)
	w.ok("approve", req, "--identity", ids["alice"])
	w.fails(1, "appears twice", "approve", req, "--identity", ids["alice"])
	w.fails(1, "too few custodians approved the change", "apply", req)

	// A forgery: alice's signature presented as bob's.
	forged := forgeApproval(t, req, filepath.Join(w.dir, "forged.json"), "bob")
	w.fails(1, "does not verify", "apply", forged)
	// mallory's own signature added to the file by hand: not a custodian.
	signedByMallory := addForeignApproval(t, req, filepath.Join(w.dir, "mallory.json"), ids["mallory"])
	w.fails(1, "not a custodian", "apply", signedByMallory)

	// bob signs a copy of his own; apply merges the two.
	bobCopy := filepath.Join(w.dir, "change-bob.json")
	w.ok("approve", req, "--identity", ids["bob"], "--out", bobCopy)
	var applied struct {
		Action    string   `json:"action"`
		Approvers []string `json:"approvers"`
		Request   string   `json:"request"`
	}
	w.okJSON(&applied, "apply", bobCopy)
	require.Equal(t, kind, applied.Action)
	require.Equal(t, []string{"alice", "bob"}, applied.Approvers)
	w.fails(1, "replayed", "apply", bobCopy)

	checkChangeApplied(t, w, kind, id, created.Version)

	// The audit log verifies and shows the change with its approvers and
	// the refusals.
	var verified struct {
		Verified bool         `json:"verified"`
		Records  []recordJSON `json:"records"`
	}
	w.okJSON(&verified, "audit", "verify", "--records", "-1")
	require.True(t, verified.Verified)
	var authorized, destroyed bool
	var denials, refusedApprovals []string
	for _, r := range verified.Records {
		if r.Operation == kind && r.Kind == "admin-change" {
			authorized = true
			require.Equal(t, []string{"alice", "bob"}, r.Approvers)
		}
		if r.Kind == "destruction" {
			destroyed = true
			require.Equal(t, "destroy version "+created.Version, r.Operation)
			require.Equal(t, []string{"alice", "bob"}, r.Approvers)
		}
		if r.Kind == "denial" {
			denials = append(denials, r.Reason)
			if strings.HasPrefix(r.Operation, "approve ") {
				refusedApprovals = append(refusedApprovals, r.Actor)
			}
		}
		require.NotContains(t, r.Operation+r.Reason, "patient-000", "the audit log must not hold branch key ids")
	}
	require.True(t, authorized && destroyed, "audit verify does not show the authorized change and the destruction: %+v", verified.Records)
	for _, want := range []string{"too-few-approvals", "forged-approval", "not-custodian", "replayed"} {
		require.True(t, slices.ContainsFunc(denials, func(d string) bool { return strings.HasSuffix(d, want) }), "no denial %q in %v", want, denials)
	}
	require.Contains(t, refusedApprovals, "mallory", "a refused approval is audited too")
	require.Contains(t, w.ok("audit", "verify"), "approvers:alice,bob")
	// An auditor needs no configuration and no secret: the log, the
	// verifier key and a checkpoint.
	cfgDir := filepath.Join(w.dir, "keyctl")
	auditor := []string{"--config", filepath.Join(w.dir, "none.json"), "--log", "file:" + filepath.Join(cfgDir, "audit"),
		"--verifier-key", filepath.Join(cfgDir, "audit-verifier.pub"), "--checkpoint", filepath.Join(cfgDir, "audit-checkpoint")}
	require.Contains(t, w.ok(append([]string{"audit", "verify"}, auditor...)...), "verified")
	w.ok(append([]string{"audit", "prove", "--index", "1"}, auditor...)...)

	// The custodian's KMS principal is refused Decrypt of the branch key
	// it made; the service's unwraps it.
	s := &session{cfg: &config{Store: w.store}}
	require.NoError(t, s.openStore(t.Context()))
	defer s.Close()
	bk, err := custody.NewBranchKeys(keyring.BranchKeysConfig{Store: s.store, Client: kmsClient(w.kmsURL, custodianPrincipal), KMSKeyARN: w.keyARN, LogicalStoreName: "phicrypt"})
	require.NoError(t, err)
	active, err := s.store.Get(t.Context(), id, rotated.Version)
	require.NoError(t, err)
	decrypt := &kms.DecryptInput{CiphertextBlob: active.Ciphertext, KeyId: aws.String(active.KMSKeyARN), EncryptionContext: bk.EncryptionContext(active)}
	_, err = kmsClient(w.kmsURL, custodianPrincipal).Decrypt(t.Context(), decrypt)
	require.ErrorContains(t, err, "AccessDenied")
	pt, err := kmsClient(w.kmsURL, servicePrincipal).Decrypt(t.Context(), decrypt)
	require.NoError(t, err)
	require.Len(t, pt.Plaintext, 32)

	// The key's policy passes policy check; one that lets the custodian
	// decrypt does not.
	var check struct {
		OK         bool            `json:"ok"`
		Violations []violationJSON `json:"violations"`
	}
	w.okJSON(&check, "policy", "check", "--custodian-arn", user(custodianPrincipal), "--service-arn", user(servicePrincipal), "--allow-cross-key-reencrypt")
	require.True(t, check.OK, "%+v", check.Violations)
	// The same principals, from the signed trust policy.
	w.okJSON(&check, "policy", "check", "--allow-cross-key-reencrypt")
	require.True(t, check.OK, "%+v", check.Violations)
	require.Equal(t, w.ok("policy", "generate", "--allow-cross-key-reencrypt"),
		w.ok("policy", "generate", "--custodian-arn", user(custodianPrincipal), "--service-arn", user(servicePrincipal), "--allow-cross-key-reencrypt"))
	bad := filepath.Join(w.dir, "bad-policy.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"Version":"2012-10-17","Statement":[{"Sid":"oops","Effect":"Allow",
 "Principal":{"AWS":"`+user(custodianPrincipal)+`"},"Action":["kms:Decrypt","kms:DescribeKey"],"Resource":"*"}]}`), 0o600))
	out, errOut, code := w.run("policy", "check", "--file", bad, "--custodian-arn", user(custodianPrincipal), "--service-arn", user(servicePrincipal), "--json")
	require.Equal(t, 1, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &check))
	require.False(t, check.OK)
	require.True(t, slices.ContainsFunc(check.Violations, func(v violationJSON) bool { return v.Code == "custodian-decrypt" && v.Sid == "oops" }), "%+v", check.Violations)

	// An edited audit log fails verification.
	tampered := filepath.Join(w.dir, "tampered")
	copyDir(t, filepath.Join(w.dir, "keyctl", "audit"), tampered)
	editRecord(t, filepath.Join(tampered, "records"), "bob", "Bob")
	w.ok("audit", "verify", "--log", filepath.Join(w.dir, "keyctl", "audit"))
	w.fails(1, "edited", "audit", "verify", "--log", tampered)
}

// changeUnderTest is the change the quorum test proposes.
func changeUnderTest(id, first, second, out string) (kind string, args []string) {
	return "destroy-version", []string{"destroy", id, "--version", first, "-o", out}
}

// wantState is the state of the first version after the change.
const wantState = "destroyed"

func checkChangeApplied(t *testing.T, w *world, kind, id, firstVersion string) {
	var show struct {
		Versions []versionJSON `json:"versions"`
	}
	w.okJSON(&show, "show", id)
	require.Len(t, show.Versions, 2)
	require.Equal(t, firstVersion, show.Versions[0].Version)
	require.Equal(t, wantState, show.Versions[0].State)
}

// forgeApproval copies the change file in path to out with its one
// approval presented also as signer's.
func forgeApproval(t *testing.T, path, out, signer string) string {
	f, err := readChangeFile(path)
	require.NoError(t, err)
	require.Len(t, f.Approvals, 1)
	forged := f.Approvals[0]
	forged.Signer = signer
	f.Approvals = append(f.Approvals, forged)
	require.NoError(t, f.write(out))
	return out
}

// addForeignApproval copies the change file with an approval signed by the
// identity in idPath added by hand (approve refuses to make it).
func addForeignApproval(t *testing.T, path, out, idPath string) string {
	f, err := readChangeFile(path)
	require.NoError(t, err)
	id, err := loadIdentity(idPath)
	require.NoError(t, err)
	signer, err := id.signer()
	require.NoError(t, err)
	ap, err := signer.Approve(f.Request)
	require.NoError(t, err)
	f.Approvals = append(f.Approvals, ap)
	require.NoError(t, f.write(out))
	return out
}

func copyDir(t *testing.T, from, to string) {
	require.NoError(t, os.MkdirAll(to, 0o700))
	entries, err := os.ReadDir(from)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(to, e.Name()), b, 0o600))
	}
}

// editRecord replaces old with new in the first record of a FileSink
// records file that holds it, and recomputes that entry's CRC-32C (of the
// length prefix and the record), as someone covering their tracks would.
func editRecord(t *testing.T, path, old, new string) {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	for off := 0; off+4 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[off:]))
		rec := b[off+4 : off+4+n]
		if i := bytes.Index(rec, []byte(old)); i >= 0 {
			copy(rec[i:], new)
			crc := crc32.Checksum(b[off:off+4+n], crc32.MakeTable(crc32.Castagnoli))
			binary.BigEndian.PutUint32(b[off+4+n:], crc)
			require.NoError(t, os.WriteFile(path, b, 0o600))
			return
		}
		off += 4 + n + 4
	}
	t.Fatalf("no record holds %q", old)
}
