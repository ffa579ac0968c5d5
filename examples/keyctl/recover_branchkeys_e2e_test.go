package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// bkRow is a row with one PHI column.
type bkRow struct {
	ID   string                  `phi:"rowid"`
	Name fieldenc.Sealed[string] `phi:"encrypt"`
}

// The branch-key break-glass drill of docs/OPERATIONS.md, end to end:
// services write messages and fields through hierarchical keyrings with
// Escrow set; escrow status finds the one version no service used, which a
// backfill escrows; the KMS keys are deleted; one approval short is
// refused and audited; recover --branch-keys --messages, stopped midway
// by a damaged escrow record, resumes under the same authorization and
// moves every version to the new key, on which the custodian may only
// Encrypt and make new versions, and rotates the recovered keys; every
// message and field decrypts again through keyrings on the new key; the
// audit log verifies and shows the approvals.
func TestBreakGlassRecoverBranchKeys(t *testing.T) {
	w, l, ids := recoveryWorld(t)
	ctx := t.Context()
	escrowDir, pub := w.escrow2of3()
	share := func(who string) string { return filepath.Join(escrowDir, "escrow-2026."+who+".share") }
	for _, id := range []string{"tenant-a", "tenant-b", "tenant-c"} {
		w.ok("create", id)
	}

	// The services: hierarchical keyrings on the branch keys with the
	// escrow public key; messages for tenant-a, fields for tenant-b, and
	// a message under a KMS key of their own, for --messages.
	store := w.serviceStore()
	svc := kmsClient(w.kmsURL, servicePrincipal)
	esc, err := keyring.NewHPKEEscrow("escrow-2026", pub)
	require.NoError(t, err)
	h := bkServiceKeyring(t, store, svc, w.keyARN, esc)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: h})
	require.NoError(t, err)
	messages := map[string][]byte{}
	for i := range 3 {
		pt := fmt.Sprintf("patient %d: discharge summary", i)
		ct, err := enc.Encrypt(ctx, []byte(pt), map[string]string{"tenant": "tenant-a"})
		require.NoError(t, err)
		messages[pt] = ct
	}
	fields := map[string]any{}
	for _, name := range []string{"Jane Roe", "John Doe"} {
		fields[name] = bkSeal(t, h, name)
	}
	_, k, kmsService := w.serviceWithEscrow(pub)
	msgDir := filepath.Join(w.dir, "messages")
	plain := writeMessages(t, kmsService, msgDir, "m1", "m2")

	// escrow status: tenant-c was never used, so it has no copy; a
	// service-side backfill makes one.
	calls := l.Calls("Decrypt") + l.Calls("GenerateDataKeyWithoutPlaintext") + l.Calls("ReEncrypt")
	st := w.escrowStatus(1)
	require.Equal(t, calls, l.Calls("Decrypt")+l.Calls("GenerateDataKeyWithoutPlaintext")+l.Calls("ReEncrypt"), "escrow status unwraps nothing")
	require.Equal(t, escrowStatusView{Escrow: st.Escrow, Total: 3, Escrowed: 2, Missing: 1, Versions: st.Versions}, st)
	missing := ""
	for _, v := range st.Versions {
		if !v.Escrowed {
			missing = v.Fingerprint
		}
	}
	require.Equal(t, keystore.Fingerprint("tenant-c"), missing)
	_, errOut, _ := w.run("escrow", "status", "escrow-2026")
	require.Contains(t, errOut, "1 live branch key version(s) have no escrow copy")
	require.NotContains(t, errOut, "tenant-c")
	svcKeys, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: svc, KMSKeyARN: w.keyARN, LogicalStoreName: "phicrypt"})
	require.NoError(t, err)
	backfill, err := svcKeys.Escrow(ctx, esc, "")
	require.NoError(t, err)
	require.Equal(t, keyring.EscrowReport{Versions: 3, Escrowed: 1, Already: 2}, backfill)
	require.Equal(t, 3, w.escrowStatus(0).Escrowed)

	// The KMS keys are deleted: nothing decrypts.
	for _, arn := range []string{w.keyARN, aws.ToString(k.KeyMetadata.Arn)} {
		_, err = kmsClient(w.kmsURL, custodianPrincipal).ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(arn), PendingWindowInDays: aws.Int32(7)})
		require.NoError(t, err)
	}
	l.Advance(8 * 24 * time.Hour)
	lost, err := phicrypt.New(phicrypt.Config{Keyring: bkServiceKeyring(t, store, svc, w.keyARN, nil)})
	require.NoError(t, err)
	_, _, err = lost.Decrypt(ctx, messages["patient 0: discharge summary"], nil)
	require.Error(t, err)

	// The new key: the custodian may Encrypt and make new versions, never
	// decrypt.
	k2 := w.createBranchKeyRecoveryKey()
	req := filepath.Join(w.dir, "recover.json")
	w.ok("propose", "recover", "--escrow", "escrow-2026", "--to", k2, "-o", req)
	w.ok("approve", req)
	w.ok("approve", req, "--identity", ids["bob"])
	run := []string{"recover", req, "--branch-keys", "--messages", msgDir, "--share", share("bob"), "--share", share("carol"), "--progress", "lines"}
	w.fails(1, "too few custodians approved", run...)
	w.ok("approve", req, "--identity", ids["carol"])

	// tenant-b's escrow record is damaged: the recovery goes on with the
	// others, names it, and ends with an error and the position saved.
	recs := store.(keystore.Records)
	name := keyring.BranchKeyEscrowRecordName("tenant-b", bkActive(t, store, "tenant-b"))
	good, err := recs.GetRecord(ctx, keyring.BranchKeyEscrowRecordKind, name)
	require.NoError(t, err)
	_, err = recs.PutRecord(ctx, keyring.BranchKeyEscrowRecordKind, name, []byte{9, 9}, good.Revision)
	require.NoError(t, err)
	_, errOut, code := w.run(run...)
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, "recover: 3/3 branch key versions", "progress past the damaged record")
	require.Contains(t, errOut, "0 branch key version(s) have no escrow copy and 1 a copy that does not open")
	require.Contains(t, errOut, "run the same keyctl recover again to resume")
	require.NotContains(t, errOut, "tenant-b")
	cur, err := recs.GetRecord(ctx, keyring.BranchKeyEscrowRecordKind, name)
	require.NoError(t, err)
	_, err = recs.PutRecord(ctx, keyring.BranchKeyEscrowRecordKind, name, good.Value, cur.Revision)
	require.NoError(t, err)

	// The same command resumes under the same authorization.
	var got recoverView
	w.okJSON(&got, run...)
	require.Equal(t, []string{"alice", "bob", "carol"}, got.Approvers)
	// The first run recovered and rotated tenant-a and tenant-c (their
	// fresh versions are under K2); this one recovers tenant-b and rotates
	// it.
	require.Equal(t, &branchKeyRecoveryView{Total: 5, Recovered: 1, AlreadyMoved: 4, Rotated: 1}, got.BranchKeys)
	require.Equal(t, 2, got.Total, "the messages follow the branch keys")
	require.Equal(t, 2, got.Resumed, "the first run rewrapped them after the branch keys it could recover")
	w.fails(1, "replayed", run...)
	cfg, err := loadConfig(w.config)
	require.NoError(t, err)
	require.Equal(t, k2, cfg.KMSKeyARN, "new branch keys are made under the new key")

	// Every message and field decrypts through keyrings on the new key.
	restored := bkServiceKeyring(t, store, svc, k2, nil)
	dec, err := phicrypt.New(phicrypt.Config{Keyring: restored})
	require.NoError(t, err)
	for pt, ct := range messages {
		got, _, err := dec.Decrypt(ctx, ct, nil)
		require.NoError(t, err)
		require.Equal(t, pt, string(got))
	}
	for name, stored := range fields {
		require.Equal(t, name, bkOpen(t, restored, name, stored))
	}
	k2Only, err := keyring.NewKMS(keyring.KMSConfig{Client: svc, Keys: []string{k2}})
	require.NoError(t, err)
	restoredMessages, err := phicrypt.New(phicrypt.Config{Keyring: k2Only})
	require.NoError(t, err)
	for n, want := range plain {
		pt, _, err := restoredMessages.Decrypt(ctx, readAll(t, msgDir, plain)[n], nil)
		require.NoError(t, err)
		require.Equal(t, want, string(pt))
	}
	w.requireCustodianCannotDecrypt(k2)

	// After the rotation the fresh active versions have no escrow copy
	// until a service with Escrow set uses them (or a backfill).
	st = w.escrowStatus(1)
	require.Equal(t, 6, st.Total)
	require.Equal(t, 3, st.Missing)
	newKeys, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: svc, KMSKeyARN: k2, LogicalStoreName: "phicrypt"})
	require.NoError(t, err)
	_, err = newKeys.Escrow(ctx, esc, "")
	require.NoError(t, err)
	require.Equal(t, 6, w.escrowStatus(0).Escrowed)

	// The audit log verifies and shows the approvals and the refusal.
	var verified struct {
		Verified bool         `json:"verified"`
		Records  []recordJSON `json:"records"`
	}
	w.okJSON(&verified, "audit", "verify", "--records", "-1")
	require.True(t, verified.Verified)
	var ops, denials, reasons []string
	for _, r := range verified.Records {
		switch r.Kind {
		case "admin-change":
			ops = append(ops, r.Operation)
			if strings.HasPrefix(r.Operation, "recover: branch key") {
				require.Equal(t, []string{"alice", "bob", "carol"}, r.Approvers, "record %q", r.Operation)
			}
			if r.Operation == "recover: branch key versions rewrapped from escrow" {
				reasons = append(reasons, r.Reason)
			}
		case "denial":
			if strings.Contains(r.Operation, "recover") {
				denials = append(denials, r.Reason)
			}
		}
	}
	for _, want := range []string{"recover: escrow key reassembled", "recover: interrupted, escrow key dropped",
		"recover: resumed, escrow key reassembled", "recover: branch key versions rewrapped from escrow", "recover: data keys rewrapped, escrow key dropped"} {
		require.Contains(t, ops, want)
	}
	require.Len(t, reasons, 2, "one record per run")
	require.Contains(t, reasons[0], "2 of 3 versions recovered, 0 already moved, 0 missing an escrow copy, 1 with a damaged copy, 0 destroyed, 2 keys rotated, to "+kmsKeyID(k2))
	require.Contains(t, reasons[1], "1 of 5 versions recovered, 4 already moved, 0 missing an escrow copy, 0 with a damaged copy, 0 destroyed, 1 keys rotated, to "+kmsKeyID(k2))
	require.Contains(t, denials, "too-few-approvals")
}

// --branch-key limits the recovery to one key, and a version without an
// escrow copy is named, keeps the request open, and lets the rest finish;
// while its KMS key still answers to a service (here it is not deleted), a
// backfill and the same command finish the recovery.
func TestRecoverOneBranchKeyAndMissingCopies(t *testing.T) {
	w, _, ids := recoveryWorld(t)
	ctx := t.Context()
	escrowDir, pub := w.escrow2of3()
	share := func(who string) string { return filepath.Join(escrowDir, "escrow-2026."+who+".share") }
	for _, id := range []string{"tenant-a", "tenant-b"} {
		w.ok("create", id)
	}
	store := w.serviceStore()
	svc := kmsClient(w.kmsURL, servicePrincipal)
	esc, err := keyring.NewHPKEEscrow("escrow-2026", pub)
	require.NoError(t, err)
	bkSeal(t, bkServiceKeyring(t, store, svc, w.keyARN, esc), "Jane Roe") // escrows tenant-b only
	k2 := w.createBranchKeyRecoveryKey()
	propose := func(out string) string {
		w.ok("propose", "recover", "--escrow", "escrow-2026", "--to", k2, "-o", out)
		for _, who := range []string{"alice", "bob", "carol"} {
			w.ok("approve", out, "--identity", ids[who])
		}
		return out
	}

	req := propose(filepath.Join(w.dir, "one.json"))
	w.fails(2, "the store holds no branch key "+keystore.Fingerprint("tenant-zz"), "recover", req, "--branch-key", "tenant-zz", "--share", share("alice"), "--share", share("bob"))
	var one recoverView
	w.okJSON(&one, "recover", req, "--branch-key", "tenant-b", "--no-rotate", "--share", share("alice"), "--share", share("bob"))
	require.Equal(t, &branchKeyRecoveryView{Total: 1, Recovered: 1}, one.BranchKeys)
	cfg, err := loadConfig(w.config)
	require.NoError(t, err)
	require.Equal(t, w.keyARN, cfg.KMSKeyARN, "one key recovered: the configuration keeps its key")

	req = propose(filepath.Join(w.dir, "all.json"))
	run := []string{"recover", req, "--branch-keys", "--share", share("alice"), "--share", share("bob")}
	out, errOut, code := w.run(run...)
	require.Equal(t, 1, code, errOut)
	require.Contains(t, out, "branch key versions: 0 recovered, 1 already under the key, 1 without an escrow copy, 0 with a damaged copy, 0 destroyed, of 2; 1 key(s) rotated")
	require.Contains(t, errOut, keystore.Fingerprint("tenant-a"))
	require.NotContains(t, errOut, "tenant-a")
	require.Contains(t, errOut, "run the same keyctl recover again to resume")
	out, errOut, code = w.run(run...)
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, keystore.Fingerprint("tenant-a")+" version "+bkActive(t, store, "tenant-a"))
	require.Contains(t, out, "0 recovered, 2 already under the key, 1 without an escrow copy, 0 with a damaged copy, 0 destroyed, of 3; 0 key(s) rotated", "tenant-b was rotated by the first run")

	svcKeys, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: svc, KMSKeyARN: w.keyARN, LogicalStoreName: "phicrypt"})
	require.NoError(t, err)
	backfill, err := svcKeys.Escrow(ctx, esc, "tenant-a")
	require.NoError(t, err)
	require.Equal(t, 1, backfill.Escrowed)
	out = w.ok(run...)
	require.Contains(t, out, "branch key versions: 1 recovered, 2 already under the key, 0 without an escrow copy, 0 with a damaged copy, 0 destroyed, of 3; 1 key(s) rotated")
	w.fails(1, "replayed", run...)
}

// createBranchKeyRecoveryKey makes a KMS key the custodian may Encrypt
// under (recovered versions) and make new versions under (the rotation),
// never decrypt; the service uses it.
func (w *world) createBranchKeyRecoveryKey() string {
	doc := `{"Version":"2012-10-17","Statement":[
 {"Sid":"custodian-wraps","Effect":"Allow","Principal":{"AWS":"` + user(custodianPrincipal) + `"},"Action":["kms:Encrypt","kms:GenerateDataKeyWithoutPlaintext","kms:DescribeKey"],"Resource":"*"},
 {"Sid":"service-uses","Effect":"Allow","Principal":{"AWS":"` + user(servicePrincipal) + `"},"Action":["kms:Decrypt","kms:Encrypt","kms:GenerateDataKey","kms:DescribeKey"],"Resource":"*"}]}`
	out, err := kmsClient(w.kmsURL, servicePrincipal).CreateKey(w.t.Context(), &kms.CreateKeyInput{Policy: aws.String(doc), BypassPolicyLockoutSafetyCheck: true})
	require.NoError(w.t, err)
	return aws.ToString(out.KeyMetadata.Arn)
}

// serviceStore opens keyctl's store as a service does.
func (w *world) serviceStore() keystore.Store {
	s := &session{cfg: &config{Store: w.store}}
	require.NoError(w.t, s.openStore(w.t.Context()))
	w.t.Cleanup(func() { s.Close() })
	return s.store
}

// escrowStatus runs escrow status escrow-2026 --json, requiring exit code.
func (w *world) escrowStatus(code int) escrowStatusView {
	w.t.Helper()
	out, errOut, got := w.run("escrow", "status", "escrow-2026", "--json")
	require.Equal(w.t, code, got, errOut)
	var v escrowStatusView
	require.NoError(w.t, json.Unmarshal([]byte(out), &v))
	return v
}

func bkActive(t *testing.T, store keystore.Store, id string) string {
	v, err := store.Active(t.Context(), id)
	require.NoError(t, err)
	return v.Version
}

// bkServiceKeyring is a service's hierarchical keyring: branch key by the
// "tenant" context key, escrowing to esc when set.
func bkServiceKeyring(t *testing.T, store keystore.Store, client *kms.Client, arn string, esc *keyring.HPKEEscrow) *keyring.Hierarchical {
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: client, KMSKeyARN: arn, LogicalStoreName: "phicrypt"})
	require.NoError(t, err)
	h, err := keyring.NewHierarchical(keyring.HierarchicalConfig{
		BranchKeys: bk, CacheTTL: time.Minute, Escrow: esc, MaxUsesPerVersion: keyring.MaxUsesPerVersionLimit,
		BranchKeyIDSupplier: func(ec map[string]string) (string, error) { return ec["tenant"], nil },
	})
	require.NoError(t, err)
	return h
}

func bkTable(t *testing.T, h *keyring.Hierarchical) *fieldenc.Codec[bkRow] {
	table, err := fieldenc.New(fieldenc.Config{Keys: h, BranchKeyID: "tenant-b", Table: "patients"})
	require.NoError(t, err)
	codec, err := fieldenc.NewCodec[bkRow](table)
	require.NoError(t, err)
	return codec
}

// bkSeal seals name under tenant-b and returns the stored column value.
func bkSeal(t *testing.T, h *keyring.Hierarchical, name string) any {
	r := bkRow{ID: "row-" + name, Name: fieldenc.Of(name)}
	require.NoError(t, bkTable(t, h).Seal(context.Background(), &r))
	v, err := r.Name.Value()
	require.NoError(t, err)
	return v
}

func bkOpen(t *testing.T, h *keyring.Hierarchical, name string, stored any) string {
	r := bkRow{ID: "row-" + name}
	require.NoError(t, r.Name.Scan(stored))
	require.NoError(t, bkTable(t, h).Open(context.Background(), &r))
	got, _ := r.Name.Get()
	return got
}
