package custody_test

// A second outside review of branch-key escrow and break-glass recovery,
// after the fixes of the first (key checks, writes waiting for the copy,
// recovered marks, Missing/Damaged counts, DropEscrowCopies). Black-box:
// exported names only, kmsmock over HTTP with aws-sdk-go-v2, the file and
// SQLite stores. Helpers (newReviewEnv, serviceKeyring, encryptFor) come
// from review_recover_outside_test.go and recover_branchkeys_test.go.
//
// Each TestReview2Defect_* fails on the code as reviewed; its comment says
// what is wrong and where.

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
)

// review2LoseOldKey deletes the KMS key the branch keys are under, as in
// the incident the break-glass path is for.
func review2LoseOldKey(t *testing.T, e *reviewEnv) {
	_, err := e.svc.ScheduleKeyDeletion(t.Context(), &kms.ScheduleKeyDeletionInput{KeyId: &e.oldARN, PendingWindowInDays: aws.Int32(7)})
	require.NoError(t, err)
	e.l.Advance(8 * 24 * time.Hour)
}

// TestReview2Defect_KeyCheckIgnoresCiphertext: the key check (FORMAT.md
// section 11) is an HMAC over the label, the escrow key digest and the
// escrow context only; it does not cover the copy's HPKE ciphertext. A
// writer of the store (with PostgreSQL, any service role: it may UPDATE
// phicrypt_version_records) keeps a genuine copy's digest and key check
// and replaces its ciphertext (here one flipped tag bit; equally a
// ciphertext of material of its choosing, sealed to the public escrow key
// under the public escrow context). Services with Escrow set compare only
// the check (keyring/branchkey_escrow.go, escrowTo: "if
// hmac.Equal(c.check[:], check[:]) { return escrowVerified, nil }") and
// so do not notice; the backfill (BranchKeys.Escrow), which the runbook
// (OPERATIONS.md "Break glass for branch keys", once-step 3) says finds a
// planted copy, counts it Already; EscrowStatus says escrowed. Only the
// recovery, when the KMS key is already lost, finds it Damaged: the
// version is lost. The promise "services replace a copy whose check does
// not match" holds, but the check cannot tell this copy is bad: it should
// bind the ciphertext (e.g. HMAC over the EDK too), so that a copy whose
// ciphertext was replaced fails the check and is replaced.
//
// Fixed: the key check covers the encrypted data key; the service that
// next unwraps the version replaces the altered copy, and so does the
// backfill.
func TestReview2KeyCheckCoversCiphertext(t *testing.T) {
	ctx := t.Context()
	e := newReviewEnv(t, "sqlite", "phicrypt-test")
	_, err := e.admin.CreateBranchKey(ctx, "key-a")
	require.NoError(t, err)
	rep, err := e.svcKeys.Escrow(ctx, e.esc, "")
	require.NoError(t, err)
	require.Equal(t, 1, rep.Escrowed)
	v := e.versions(t, "key-a")[0]
	value, err := e.record(t, keyring.BranchKeyEscrowRecordKind, v)
	require.NoError(t, err)
	bad := append([]byte(nil), value...)
	bad[len(bad)-1] ^= 0x01 // the last byte of the GCM tag of the only copy
	e.replaceRecord(t, v, bad)

	// The backfill checks every version and replaces it.
	rep, err = e.svcKeys.Escrow(ctx, e.esc, "")
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Replaced, "the backfill should replace a copy that does not hold the version's material")
	k, err := e.svcKeys.OpenEscrow(ctx, e.recovery, v)
	require.NoError(t, err)
	k.Wipe()

	// Altered again: a service with Escrow set that unwraps the version
	// and writes under it replaces it too.
	e.replaceRecord(t, v, bad)
	h := serviceKeyring(t, e.store, e.svc, e.oldARN, e.esc)
	_ = encryptFor(t, h, "key-a", 1)

	k, err = e.svcKeys.OpenEscrow(ctx, e.recovery, v)
	require.NoError(t, err, "after a service checked the version, its escrow copy should open")
	k.Wipe()
}

// TestReview2Defect_PlantedTombstoneCountedDestroyed: anyone who may
// write per-version records (with PostgreSQL the service roles: UPDATE
// on phicrypt_version_records, OPERATIONS.md "Database roles") can put
// the one-byte tombstone 00 over a live version's escrow record. Then:
//   - RecoverBranchKeys counts the live, unrecovered version as Destroyed
//     and returns no error (keyctl exits 0), though it stays under the
//     lost KMS key and all data under it is lost. OpenEscrow returns
//     ErrKeyDestroyed for a tombstone without looking at the version's
//     state (keyring/branchkey_escrow.go, OpenEscrow: "if shredded {
//     return nil, keyDestroyedError(...) }"), and the walk callback maps
//     ErrKeyDestroyed to rep.Destroyed (custody/recover_branchkeys.go).
//     OPERATIONS.md step 5 promises such versions are counted missing or
//     damaged, named, and exit 1.
//   - the backfill (BranchKeys.Escrow) counts it Destroyed too
//     (hasEscrowCopy's shredded), so the routine check says nothing is
//     wrong; only `keyctl escrow status` shows MISSING.
//
// A tombstone on a version that is not destroyed is a damaged record and
// should be reported as such (Damaged, with an error). Fixed: a tombstone
// stands only over a destroyed version; the backfill (and a service)
// writes a copy over one on a live version, and recovery counts it Damaged.
func TestReview2PlantedTombstone(t *testing.T) {
	ctx := t.Context()
	e := newReviewEnv(t, "sqlite", "phicrypt-test")
	for _, id := range []string{"key-a", "key-b"} {
		_, err := e.admin.CreateBranchKey(ctx, id)
		require.NoError(t, err)
	}
	_, err := e.svcKeys.Escrow(ctx, e.esc, "")
	require.NoError(t, err)
	a := e.versions(t, "key-a")[0]
	e.replaceRecord(t, a, []byte{0x00})

	brep, err := e.svcKeys.Escrow(ctx, e.esc, "")
	require.NoError(t, err)
	require.Equal(t, keyring.EscrowReport{Versions: 2, Escrowed: 1, Already: 1}, brep, "the backfill writes a copy over the tombstone")
	k, err := e.svcKeys.OpenEscrow(ctx, e.recovery, a)
	require.NoError(t, err)
	k.Wipe()

	// Planted again after the last check: recovery names it.
	e.replaceRecord(t, a, []byte{0x00})
	review2LoseOldKey(t, e)
	rep, err := custody.RecoverBranchKeys(ctx, e.custodianKeys(t), e.recovery, e.custodian, e.newARN, custody.RecoverBranchKeysOptions{})
	t.Logf("recovery: %+v, %v", rep, err)
	require.Equal(t, 1, rep.Recovered)
	got, gerr := e.store.Get(ctx, "key-a", a.Version)
	require.NoError(t, gerr)
	require.NotEqual(t, keystore.StateDestroyed, got.State, "the version is live")
	require.Equal(t, e.oldARN, got.KMSKeyARN, "and still under the lost key")
	assert.Equal(t, 0, rep.Destroyed, "a live version was reported destroyed")
	assert.Equal(t, 1, rep.Damaged+rep.Missing, "a live version without a usable copy should be counted")
	assert.Error(t, err, "a recovery that left a live version under the lost key should fail")
}

// TestReview2Defect_RecoveredActiveVersionWrittenUnder: the godoc of
// keyring.RecoveredVersionRecordKind and OPERATIONS.md ("Break glass",
// recovery step 4) say "A hierarchical keyring never writes under a
// version so marked", but the keyring checks the mark only for an older
// version picked during a propagation window (keyring/branchkey_cache.go,
// active: "if writer.Version != v.Version { recovered, err := ..."). When
// the recovered version is the active one (recovery with Rotate false,
// i.e. `keyctl recover --no-rotate`, or a recovery whose rotation step
// failed, e.g. the custodian lacks GenerateDataKeyWithoutPlaintext), every
// service writes new PHI under material that came out of escrow, which a
// writer of the store may have chosen. The keyring should refuse to write
// (or the docs should say the mark does nothing until a rotation).
//
// Fixed: the keyring refuses with keyring.ErrVersionRecovered.
func TestReview2RecoveredActiveVersionNotWrittenUnder(t *testing.T) {
	ctx := t.Context()
	e := newReviewEnv(t, "sqlite", "phicrypt-test")
	_, err := e.admin.CreateBranchKey(ctx, "key-a")
	require.NoError(t, err)
	_, err = e.svcKeys.Escrow(ctx, e.esc, "")
	require.NoError(t, err)
	review2LoseOldKey(t, e)
	rep, err := custody.RecoverBranchKeys(ctx, e.custodianKeys(t), e.recovery, e.custodian, e.newARN, custody.RecoverBranchKeysOptions{})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Recovered)
	require.Equal(t, 0, rep.Rotated)
	recovered := e.versions(t, "key-a")[0]
	_, err = e.record(t, keyring.RecoveredVersionRecordKind, recovered)
	require.NoError(t, err, "the version is marked recovered")

	enc := e.encryptorOnNewKey(t, "key-a")
	_, encErr := enc.Encrypt(ctx, []byte("new PHI after the recovery"), nil)
	after, err := e.store.Get(ctx, "key-a", recovered.Version)
	require.NoError(t, err)
	require.ErrorIs(t, encErr, keyring.ErrVersionRecovered)
	require.Equal(t, recovered.Usage, after.Usage, "new data was written under the recovered version")
}

// TestReview2Defect_OneMalformedRecordStopsBackfillAndDrop: the backfill
// (BranchKeys.Escrow with id "") and DropEscrowCopies stop at the first
// version whose escrow record does not parse (keyring/branchkey_escrow.go:
// Escrow returns hasEscrowCopy's error; dropEscrowCopy returns
// parseEscrowRecord's), so one malformed record, which any writer of the
// per-version records can plant, keeps every branch key after it in id
// order from being backfilled, and stops the retirement of an old escrow
// key. "Run it again after an error to finish" never finishes: the record
// is never repaired (services refuse to write under the version too, and
// there is no API to reset the record short of the tombstone). Recovery,
// by contrast, counts such a version Damaged and goes on; the backfill
// and the drop should count and name it and go on as well.
//
// Fixed: the backfill writes a copy over an unreadable record and goes on;
// DropEscrowCopies counts it Damaged and goes on.
func TestReview2MalformedRecordDoesNotStopBackfillOrDrop(t *testing.T) {
	ctx := t.Context()
	e := newReviewEnv(t, "file", "phicrypt-test")
	for _, id := range []string{"key-a", "key-b"} {
		_, err := e.admin.CreateBranchKey(ctx, id)
		require.NoError(t, err)
	}
	a := e.versions(t, "key-a")[0]
	b := e.versions(t, "key-b")[0]
	e.replaceRecord(t, a, []byte{0x01, 0x09, 0xff})

	drop, err := keyring.DropEscrowCopies(ctx, e.store, [32]byte{1}, "")
	require.NoError(t, err)
	require.Equal(t, keyring.DropReport{Damaged: 1}, drop)
	_, err1 := e.svcKeys.Escrow(ctx, e.esc, "")
	require.NoError(t, err1)
	has, err := e.svcKeys.EscrowStatus(ctx, b, e.escrowKey.PublicKey().Digest())
	require.NoError(t, err)
	assert.True(t, has, "key-b was never backfilled because key-a's record is malformed")

	k, err := e.svcKeys.OpenEscrow(ctx, e.recovery, a)
	require.NoError(t, err, "key-a's unreadable record was written anew")
	k.Wipe()
}
