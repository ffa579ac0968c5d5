package custody_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// TestReview2Defect_FieldencRenewSkipsEscrowCheck: "Until that copy is
// stored, nothing is written under the version (OnEncrypt, AcquireActive,
// so fieldenc sealing: each write tries the copy again and fails with the
// reason ...)" (FORMAT.md section 11). When a fieldenc Table's reserved
// uses outlive the keyring's cache entry, Table.renew
// (fieldenc/table.go) carries them over with AcquireVersion, the read
// path, which never checks the escrow copy (keyring/branchkey_cache.go,
// material: a failed escrowTo only sets escrowErr; only activeMaterial
// calls escrowed). So after the cache entry expired and the version was
// unwrapped again with a copy that cannot be stored (here the record was
// made malformed, which any writer of the per-version records can do),
// OnEncrypt on the same keyring refuses to write under the version while
// fieldenc keeps sealing new PHI under it, up to ReservedUses per Table,
// renewed at every CacheTTL for as long as EncryptingVersion names it.
//
// Fixed: Table.renew carries uses over with AcquireReserved, which refuses
// as AcquireActive does. (A malformed record is now written anew by the
// service, so the copy is made unstorable here by a record full of other
// escrow keys' copies.)
func TestReview2FieldencRenewChecksEscrow(t *testing.T) {
	ctx := t.Context()
	e := newReviewEnv(t, "sqlite", "phicrypt-test")
	_, err := e.admin.CreateBranchKey(ctx, "key-a")
	require.NoError(t, err)
	const ttl = 300 * time.Millisecond
	h, codec := e.reservingCodec(t, "key-a", ttl)
	p := bkPatient{ID: "row-1", Name: fieldenc.Of("Jane Roe")}
	require.NoError(t, codec.Seal(ctx, &p))
	v := e.versions(t, "key-a")[0]
	has, err := e.svcKeys.EscrowStatus(ctx, v, e.escrowKey.PublicKey().Digest())
	require.NoError(t, err)
	require.True(t, has)

	// The record is filled with four other escrow keys' copies (made for
	// key-b), so no copy for the service's key can be stored, and the
	// keyring's cache entry expires.
	_, err = e.admin.CreateBranchKey(ctx, "key-b")
	require.NoError(t, err)
	for range keyring.MaxBranchKeyEscrowCopies {
		k, err := keyring.GenerateHPKEEscrowKey()
		require.NoError(t, err)
		other, err := keyring.NewHPKEEscrow("escrow-other", k.PublicKey())
		require.NoError(t, err)
		_, err = e.svcKeys.Escrow(ctx, other, "key-b")
		require.NoError(t, err)
	}
	full, err := e.record(t, keyring.BranchKeyEscrowRecordKind, e.versions(t, "key-b")[0])
	require.NoError(t, err)
	e.replaceRecord(t, v, full)
	time.Sleep(2 * ttl)

	enc, err := phicrypt.New(phicrypt.Config{Keyring: h})
	require.NoError(t, err)
	_, encErr := enc.Encrypt(ctx, []byte("x"), nil)
	require.ErrorIs(t, encErr, keyring.ErrEscrowRecord, "OnEncrypt refuses to write under the version")

	q := bkPatient{ID: "row-2", Name: fieldenc.Of("John Doe")}
	err = codec.Seal(ctx, &q)
	require.ErrorIs(t, err, keyring.ErrEscrowRecord, "fieldenc sealed a new field under a version whose escrow copy cannot be stored")
}

// reservingCodec is a service's escrowing keyring for branch key id with
// cache lifetime ttl and no propagation window, and a codec over a table
// that reserves 1000 uses at a time: the set-up in which a table carries
// reserved uses over to a renewed handle.
func (e *reviewEnv) reservingCodec(t *testing.T, id string, ttl time.Duration) (*keyring.Hierarchical, *fieldenc.Codec[bkPatient]) {
	t.Helper()
	h, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: e.svcKeys, BranchKeyID: id, CacheTTL: ttl,
		PropagationWindow: time.Nanosecond, Escrow: e.esc, MaxUsesPerVersion: 1 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	table, err := fieldenc.New(fieldenc.Config{Keys: h, BranchKeyID: id, Table: "patients", ReservedUses: 1000})
	require.NoError(t, err)
	codec, err := fieldenc.NewCodec[bkPatient](table)
	require.NoError(t, err)
	return h, codec
}
