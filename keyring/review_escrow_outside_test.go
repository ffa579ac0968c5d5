package keyring_test

// An outside review of branch-key escrow through exported names: key-name
// binding, escrow-key succession, and attacker-controlled sizes.

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// FORMAT.md section 11: "A copy moved to another version's record, or
// opened under another key name, does not open": the same escrow private
// key under another name than the copy was sealed with is refused with
// ErrEscrowRecord, and no material comes back.
func TestReviewEscrowCopyBoundToEscrowKeyName(t *testing.T) {
	w := newEscrowWorld(t, openEscrowStore(t, "file"))
	v := w.create(escrowCanaryID)
	priv, svc := escrowPair(t, "escrow-2026")
	rep, err := w.bk.Escrow(t.Context(), svc, "")
	require.NoError(t, err)
	require.Equal(t, 1, rep.Escrowed)
	w.requireOpens(newEscrowRecovery(t, "escrow-2026", priv), v)
	k, err := w.bk.OpenEscrow(t.Context(), newEscrowRecovery(t, "escrow-2027", priv), v)
	require.ErrorIs(t, err, keyring.ErrEscrowRecord)
	require.Nil(t, k)
	requireNoEscrowCanary(t, err)
}

// TestReviewFifthEscrowKeyStillReads (a defect the review found, now fixed; the rest says how it was): a version's record holds
// copies for at most MaxBranchKeyEscrowCopies (4) escrow keys, and nothing
// exported removes the copy of an escrow key that was retired
// (keyring/branchkey_escrow.go, escrowTo: "already holds copies for %d
// other escrow keys"). A long-lived branch key (PHI is kept for years)
// whose services have moved through four escrow keys can then never be
// escrowed to the fifth, and since "If the copy cannot be stored, the
// version is not used (the unwrap fails)" (HierarchicalConfig.Escrow),
// a service configured with the fifth escrow key cannot even read the
// data already written under the version: moving to a new escrow key is
// an outage for every old version. MaxBranchKeyEscrowCopies's own doc
// promises "enough for an escrow key and its successors".
func TestReviewFifthEscrowKeyStillReads(t *testing.T) {
	ctx := t.Context()
	w := newEscrowWorld(t, openEscrowStore(t, "sqlite"))
	w.create(escrowCanaryID)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: w.service(escrowCanaryID, nil)})
	require.NoError(t, err)
	msg, err := enc.Encrypt(ctx, []byte("discharge summary"), nil)
	require.NoError(t, err)
	for i := range keyring.MaxBranchKeyEscrowCopies {
		_, svc := escrowPair(t, "escrow-"+string(rune('a'+i)))
		rep, err := w.bk.Escrow(ctx, svc, "")
		require.NoError(t, err)
		require.Equal(t, 1, rep.Escrowed)
	}
	_, fifth := escrowPair(t, "escrow-e")
	dec, err := phicrypt.New(phicrypt.Config{Keyring: w.service(escrowCanaryID, fifth)})
	require.NoError(t, err)
	pt, _, err := dec.Decrypt(ctx, msg, nil)
	require.NoError(t, err, "a service moved to a new escrow key must still read old data")
	require.Equal(t, "discharge summary", string(pt))
}

// Attacker-controlled sizes and malformed input give clear errors, never
// a panic: huge branch key ids and versions, records cut short or
// claiming more than they hold, and a nil escrow keyring.
func TestReviewEscrowBadInputs(t *testing.T) {
	ctx := t.Context()
	w := newEscrowWorld(t, openEscrowStore(t, "file"))
	v := w.create(escrowCanaryID)
	svc, recovery := escrowKeys(t, "escrow-2026")
	huge := strings.Repeat("x", 1<<20)
	require.Error(t, keyring.ShredBranchKeyEscrow(ctx, w.store, huge, v.Version))
	require.Error(t, keyring.ShredBranchKeyEscrow(ctx, w.store, escrowCanaryID, huge))
	requireNoEscrowCanary(t, keyring.ShredBranchKeyEscrow(ctx, w.store, escrowCanaryID, "not-a-uuid"))
	_, err := w.bk.Escrow(ctx, svc, huge)
	require.Error(t, err)
	require.Less(t, len(err.Error()), 1000)
	_, err = w.bk.Escrow(ctx, nil, "")
	require.Error(t, err)
	bad := v
	bad.BranchKeyID = huge
	_, err = w.bk.OpenEscrow(ctx, recovery, bad)
	require.Error(t, err)
	require.Less(t, len(err.Error()), 1000)
	_, err = w.bk.EscrowStatus(ctx, bad, svc.KeyDigest())
	require.Error(t, err)

	copyOf := func() []byte {
		_, err := w.bk.Escrow(ctx, svc, escrowCanaryID)
		require.NoError(t, err)
		rec, err := w.record(v)
		require.NoError(t, err)
		return rec.Value
	}
	good := copyOf()
	for name, value := range map[string][]byte{
		"version only":    {0x01},
		"count 255":       append([]byte{0x01, 0xff}, good[2:]...),
		"count 0":         {0x01, 0x00},
		"cut short":       good[:len(good)-1],
		"trailing":        append(append([]byte{}, good...), 0),
		"length too long": append(append([]byte{}, good[:66]...), 0xff, 0xff),
		"unknown version": append([]byte{0x02}, good[1:]...),
		"two tombstones":  {0x00, 0x00},
		"duplicate copy":  append(append([]byte{0x01, 0x02}, good[2:]...), good[2:]...),
	} {
		w.putRecord(v, value)
		k, err := w.bk.OpenEscrow(ctx, recovery, v)
		require.ErrorIs(t, err, keyring.ErrEscrowRecord, name)
		require.Nil(t, k, name)
		requireNoEscrowCanary(t, err)
		_, err = w.bk.EscrowStatus(ctx, v, svc.KeyDigest())
		require.ErrorIs(t, err, keyring.ErrEscrowRecord, name)
		_, err = w.bk.Escrow(ctx, svc, escrowCanaryID)
		require.NoError(t, err, "%s: the backfill writes a copy over an unreadable record", name)
	}
	// A record over the store's cap is refused by the store.
	rec, err := w.record(v)
	require.NoError(t, err)
	_, err = w.recs.PutRecord(ctx, keyring.BranchKeyEscrowRecordKind, keyring.BranchKeyEscrowRecordName(v.BranchKeyID, v.Version), make([]byte, 1<<20), rec.Revision)
	require.ErrorIs(t, err, keystore.ErrInvalid)
}
