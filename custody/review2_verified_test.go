package custody_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// Promises of the second review that hold (see review2_escrow_test.go for
// the defects).

// A copy of the same material for another escrow key, relabelled with
// this key's digest (a replay across escrow keys), fails the key check,
// which binds the escrow key's digest: a service with Escrow set and the
// backfill replace it, and recovery with this key then opens.
func TestReview2CheckBindsEscrowKey(t *testing.T) {
	ctx := t.Context()
	e := newReviewEnv(t, "file", "phicrypt-test")
	_, err := e.admin.CreateBranchKey(ctx, "key-a")
	require.NoError(t, err)
	otherKey, err := keyring.GenerateHPKEEscrowKey()
	require.NoError(t, err)
	other, err := keyring.NewHPKEEscrow("escrow-2026", otherKey.PublicKey())
	require.NoError(t, err)
	_, err = e.svcKeys.Escrow(ctx, other, "")
	require.NoError(t, err)
	v := e.versions(t, "key-a")[0]
	value, err := e.record(t, keyring.BranchKeyEscrowRecordKind, v)
	require.NoError(t, err)
	d := e.escrowKey.PublicKey().Digest()
	relabelled := append([]byte(nil), value...)
	copy(relabelled[2:34], d[:])
	e.replaceRecord(t, v, relabelled)
	_, err = e.svcKeys.OpenEscrow(ctx, e.recovery, v)
	require.ErrorIs(t, err, keyring.ErrEscrowRecord)

	h := serviceKeyring(t, e.store, e.svc, e.oldARN, e.esc)
	_ = encryptFor(t, h, "key-a", 1)
	k, err := e.svcKeys.OpenEscrow(ctx, e.recovery, v)
	require.NoError(t, err, "the service replaced the relabelled copy")
	k.Wipe()
	rep, err := e.svcKeys.Escrow(ctx, e.esc, "")
	require.NoError(t, err)
	require.Equal(t, keyring.EscrowReport{Versions: 1, Already: 1}, rep)
}

// Errors, formatted values, JSON and slog output of the escrow paths that
// fail on a bad record (malformed, tombstone on a live version, damaged
// copy at recovery) name branch keys by fingerprint only.
func TestReview2EscrowErrorsLeakNoIDs(t *testing.T) {
	ctx := t.Context()
	e := newReviewEnv(t, "sqlite", "store-"+reviewCanary)
	ids := []string{"key-a-" + reviewCanary, "key-b-" + reviewCanary}
	for _, id := range ids {
		_, err := e.admin.CreateBranchKey(ctx, id)
		require.NoError(t, err)
	}
	_, err := e.svcKeys.Escrow(ctx, e.esc, "")
	require.NoError(t, err)
	a := e.versions(t, ids[0])[0]
	b := e.versions(t, ids[1])[0]
	var out []string
	note := func(err error) {
		require.Error(t, err)
		out = append(out, err.Error(), fmt.Sprintf("%+v %#v", err, err))
	}

	e.replaceRecord(t, a, []byte{0x01, 0x09, 0xff})
	_, err = e.svcKeys.OpenEscrow(ctx, e.recovery, a)
	note(err)
	_, err = e.svcKeys.EscrowStatus(ctx, a, e.escrowKey.PublicKey().Digest())
	note(err)
	e.replaceRecord(t, b, []byte{0x00})
	_, err = e.svcKeys.OpenEscrow(ctx, e.recovery, b)
	note(err)

	// A record full of other escrow keys' copies: the service cannot
	// write under the version.
	for range keyring.MaxBranchKeyEscrowCopies {
		k, err := keyring.GenerateHPKEEscrowKey()
		require.NoError(t, err)
		other, err := keyring.NewHPKEEscrow("escrow-other", k.PublicKey())
		require.NoError(t, err)
		_, err = e.svcKeys.Escrow(ctx, other, ids[1])
		require.NoError(t, err)
	}
	full, err := e.record(t, keyring.BranchKeyEscrowRecordKind, b)
	require.NoError(t, err)
	h := serviceKeyring(t, e.store, e.svc, e.oldARN, e.esc)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: h})
	require.NoError(t, err)
	e.replaceRecord(t, b, full)
	_, err = enc.Encrypt(ctx, []byte("x"), map[string]string{"tenant": ids[1]})
	note(err)

	rep, err := custody.RecoverBranchKeys(ctx, e.custodianKeys(t), e.recovery, e.custodian, e.newARN, custody.RecoverBranchKeysOptions{BranchKeyID: ids[0]})
	note(err)
	j, err := json.Marshal(rep)
	require.NoError(t, err)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("recovery", "report", rep, "options", custody.RecoverBranchKeysOptions{BranchKeyID: ids[0]})
	out = append(out, string(j), logs.String(), fmt.Sprintf("%+v %#v", rep, rep))
	for _, s := range out {
		require.NotContains(t, s, reviewCanary)
	}
	require.Equal(t, 1, rep.Damaged)
}
