package main

// An outside review of keyctl escrow status and recover --branch-keys
// through the built binary, as the runbook (docs/OPERATIONS.md, "Break
// glass for branch keys") has them.

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/phicrypt"
)

const reviewBKCanary = "CANARYk5v2"

// escrow status names versions by fingerprint only, tells escrowed,
// MISSING and destroyed apart in text and --json, exits 0 when every live
// version has a copy and 1 when one lacks it, and fails (without naming
// the id) on a malformed escrow record and on an unknown escrow key.
func TestReviewEscrowStatusStates(t *testing.T) {
	w, l, ids := recoveryWorld(t)
	ctx := t.Context()
	_, pub := w.escrow2of3()
	a, b, c := "tenant-a-"+reviewBKCanary, "tenant-b-"+reviewBKCanary, "tenant-c-"+reviewBKCanary
	for _, id := range []string{a, b, c} {
		w.ok("create", id)
	}
	store := w.serviceStore()
	svc := kmsClient(w.kmsURL, servicePrincipal)
	esc, err := keyring.NewHPKEEscrow("escrow-2026", pub)
	require.NoError(t, err)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: bkServiceKeyring(t, store, svc, w.keyARN, esc)})
	require.NoError(t, err)
	for _, id := range []string{a, b} {
		_, err := enc.Encrypt(ctx, []byte("x"), map[string]string{"tenant": id})
		require.NoError(t, err)
	}
	admin, err := custody.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: kmsClient(w.kmsURL, custodianPrincipal), KMSKeyARN: w.keyARN, LogicalStoreName: "phicrypt"})
	require.NoError(t, err)
	require.NoError(t, admin.DestroyKey(ctx, c))

	kmsCalls := func() (n int64) {
		for _, op := range []string{"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncrypt", "DescribeKey", "ListKeys", "ListAliases", "GetPublicKey"} {
			n += l.Calls(op)
		}
		return n
	}
	calls := kmsCalls()
	out, errOut, code := w.run("escrow", "status", "escrow-2026")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, calls, kmsCalls(), "escrow status calls no KMS")
	require.NotContains(t, out+errOut, reviewBKCanary)
	require.Contains(t, out, keystore.Fingerprint(c)+" version "+"")
	require.Contains(t, out, "(destroyed): destroyed")
	require.Equal(t, 2, strings.Count(out, "(active): escrowed"), out)
	require.Contains(t, out, "3 version(s), 2 escrowed, 0 missing, 0 damaged, 1 destroyed")
	st := w.escrowStatus(0)
	require.Equal(t, 3, st.Total)
	require.Equal(t, 2, st.Escrowed)
	require.Equal(t, 1, st.Destroyed)
	require.Equal(t, 0, st.Missing)
	for _, v := range st.Versions {
		require.Equal(t, v.Fingerprint != keystore.Fingerprint(c), v.Escrowed)
		if v.Fingerprint == keystore.Fingerprint(c) {
			require.Equal(t, "destroyed", v.State)
		}
	}
	js, _, _ := w.run("escrow", "status", "escrow-2026", "--json")
	require.NotContains(t, js, reviewBKCanary)

	// A rotation makes a version with no copy: MISSING, exit 1.
	reviewRotate(w, ids, a)
	out, errOut, code = w.run("escrow", "status", "escrow-2026")
	require.Equal(t, 1, code, errOut)
	require.Contains(t, out, ": MISSING")
	require.NotContains(t, out+errOut, reviewBKCanary)
	st = w.escrowStatus(1)
	require.Equal(t, 1, st.Missing)

	// A malformed record: an error, no id.
	recs := store.(keystore.Records)
	name := keyring.BranchKeyEscrowRecordName(b, bkActive(t, store, b))
	cur, err := recs.GetRecord(ctx, keyring.BranchKeyEscrowRecordKind, name)
	require.NoError(t, err)
	_, err = recs.PutRecord(ctx, keyring.BranchKeyEscrowRecordKind, name, []byte{1, 200, 0}, cur.Revision)
	require.NoError(t, err)
	// Shown as damaged (exit 1), named by fingerprint only.
	st = w.escrowStatus(1)
	require.Equal(t, 1, st.Damaged)
	for _, v := range st.Versions {
		if v.Fingerprint == keystore.Fingerprint(b) && v.State == "active" {
			require.True(t, v.Damaged)
		}
	}
	out, errOut, code = w.run("escrow", "status", "escrow-2026")
	require.Equal(t, 1, code)
	require.Contains(t, out, "DAMAGED")
	require.Contains(t, errOut, "1 an unreadable escrow record")
	require.NotContains(t, out+errOut, reviewBKCanary)

	// An escrow key that does not exist.
	_, errOut, code = w.run("escrow", "status", "escrow-1999")
	require.NotEqual(t, 0, code)
	require.NotContains(t, errOut, reviewBKCanary)
}

// The runbook's --no-rotate path: recover --branch-keys --no-rotate
// (verbatim flags) leaves the recovered versions active, and "rotate
// later with keyctl rotate ID" works as written, with the custodian's
// rights on K2 that step 1 lists, making the recovered version
// decrypt-only; the recovery's JSON output counts it all.
func TestReviewRecoverNoRotateThenKeyctlRotate(t *testing.T) {
	w, l, ids := recoveryWorld(t)
	ctx := t.Context()
	escrowDir, pub := w.escrow2of3()
	share := func(who string) string { return filepath.Join(escrowDir, "escrow-2026."+who+".share") }
	w.ok("create", "tenant-a")
	store := w.serviceStore()
	svc := kmsClient(w.kmsURL, servicePrincipal)
	esc, err := keyring.NewHPKEEscrow("escrow-2026", pub)
	require.NoError(t, err)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: bkServiceKeyring(t, store, svc, w.keyARN, esc)})
	require.NoError(t, err)
	msg, err := enc.Encrypt(ctx, []byte("discharge summary"), map[string]string{"tenant": "tenant-a"})
	require.NoError(t, err)
	recovered := bkActive(t, store, "tenant-a")
	_, err = kmsClient(w.kmsURL, custodianPrincipal).ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(w.keyARN), PendingWindowInDays: aws.Int32(7)})
	require.NoError(t, err)
	l.Advance(8 * 24 * time.Hour)

	k2 := w.createBranchKeyRecoveryKey()
	req := filepath.Join(w.dir, "recover.json")
	w.ok("propose", "recover", "--escrow", "escrow-2026", "--to", k2, "-o", req)
	w.ok("approve", req)
	w.ok("approve", req, "--identity", ids["bob"])
	w.ok("approve", req, "--identity", ids["carol"])
	out := w.ok("recover", req, "--branch-keys", "--no-rotate", "--share", share("bob"), "--share", share("carol"), "--json")
	var got recoverView
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Equal(t, &branchKeyRecoveryView{Total: 1, Recovered: 1}, got.BranchKeys)
	require.Equal(t, recovered, bkActive(t, store, "tenant-a"), "--no-rotate leaves the recovered version active")

	// "rotate later with keyctl rotate ID": under the runbook's own trust
	// policy (rotate keeps the default quorum of 3) it is refused, as
	// checked here; it takes propose, approve and apply.
	w.fails(1, "keyctl propose rotate", "rotate", "tenant-a")
	reviewRotate(w, ids, "tenant-a")
	now, err := store.Active(ctx, "tenant-a")
	require.NoError(t, err)
	require.NotEqual(t, recovered, now.Version)
	require.Equal(t, k2, now.KMSKeyARN)
	prev, err := store.Get(ctx, "tenant-a", recovered)
	require.NoError(t, err)
	require.Equal(t, keystore.StateDecryptOnly, prev.State)
	dec, err := phicrypt.New(phicrypt.Config{Keyring: bkServiceKeyring(t, store, svc, k2, nil)})
	require.NoError(t, err)
	pt, _, err := dec.Decrypt(ctx, msg, nil)
	require.NoError(t, err)
	require.Equal(t, "discharge summary", string(pt))
}

// reviewRotate rotates branch key id through propose, approve (by the
// three custodians) and apply.
func reviewRotate(w *world, ids map[string]string, id string) {
	w.t.Helper()
	f := filepath.Join(w.dir, "rotate-"+keystore.Fingerprint(id)[1:]+".json")
	w.ok("propose", "rotate", id, "-o", f)
	for _, who := range []string{"alice", "bob", "carol"} {
		w.ok("approve", f, "--identity", ids[who])
	}
	w.ok("apply", f)
}

// An expired recover request is refused for --branch-keys before any
// version is touched, and the refusal is audited.
func TestReviewRecoverBranchKeysExpiredRequest(t *testing.T) {
	w, _, ids := recoveryWorld(t)
	escrowDir, pub := w.escrow2of3()
	share := func(who string) string { return filepath.Join(escrowDir, "escrow-2026."+who+".share") }
	w.ok("create", "tenant-a")
	store := w.serviceStore()
	svc := kmsClient(w.kmsURL, servicePrincipal)
	esc, err := keyring.NewHPKEEscrow("escrow-2026", pub)
	require.NoError(t, err)
	svcKeys, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: svc, KMSKeyARN: w.keyARN, LogicalStoreName: "phicrypt"})
	require.NoError(t, err)
	_, err = svcKeys.Escrow(t.Context(), esc, "")
	require.NoError(t, err)
	before, err := store.Active(t.Context(), "tenant-a")
	require.NoError(t, err)
	k2 := w.createBranchKeyRecoveryKey()
	req := filepath.Join(w.dir, "recover.json")
	w.ok("propose", "recover", "--escrow", "escrow-2026", "--to", k2, "-o", req, "--expires", "2s")
	for _, who := range []string{"alice", "bob", "carol"} {
		w.ok("approve", req, "--identity", ids[who])
	}
	time.Sleep(3 * time.Second)
	_, errOut, code := w.run("recover", req, "--branch-keys", "--share", share("bob"), "--share", share("carol"))
	require.NotEqual(t, 0, code)
	require.Contains(t, errOut, "expire")
	after, err := store.Active(t.Context(), "tenant-a")
	require.NoError(t, err)
	require.Equal(t, before, after, "nothing moved")
	var verified struct {
		Verified bool         `json:"verified"`
		Records  []recordJSON `json:"records"`
	}
	w.okJSON(&verified, "audit", "verify", "--records", "-1")
	require.True(t, verified.Verified)
	denied := false
	for _, r := range verified.Records {
		if r.Kind == "denial" && strings.Contains(r.Operation, "recover") {
			denied = true
		}
	}
	require.True(t, denied, "the refusal is audited")
}
