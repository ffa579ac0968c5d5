package postgres_test

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
	"github.com/phicrypt/phicrypt/keystore/postgres"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// TestReview2Defect_ServiceRoleHidesVersionFromRecovery (second outside
// review): with exactly the privileges postgres.GrantStatements gives
// RoleService (UPDATE (value, ...) on phicrypt_version_records), a
// service, through the public keystore.Records API, overwrites the
// escrow record of a live version with the one-byte tombstone and plants
// a version-recovered mark it was never meant to write ("version-recovered,
// written by custodians during a recovery", OPERATIONS.md "Database
// roles"). The custodian's break-glass recovery then reports the live
// version as Destroyed and returns no error (keyctl exits 0) although the
// version stays under the old KMS key: keyring.BranchKeys.OpenEscrow
// treats a tombstone as ErrKeyDestroyed without looking at the version's
// state, and custody.RecoverBranchKeys counts ErrKeyDestroyed as
// Destroyed (custody/recover_branchkeys.go). OPERATIONS.md says a service
// "can overwrite a per-version record too" and answers only with the
// rotation; it does not say a service can make the recovery silently skip
// versions. The services' writes under the version then fail forever
// (no API repairs a tombstone on a live version).
//
// Fixed: a tombstone stands only over a destroyed version; the service
// writes a copy over one on a live version, and recovery counts one
// planted after that Damaged and fails.
func TestReview2ServiceRoleCannotHideVersionFromRecovery(t *testing.T) {
	w := newRoleWorld(t)
	if w == nil {
		return
	}
	ctx := t.Context()
	cust, _ := w.storeAs(postgres.RoleCustodian)
	vs := w.twoVersions(w.custodian(cust))
	old, active := vs[0], vs[1]
	escrowKey, err := keyring.GenerateHPKEEscrowKey()
	require.NoError(t, err)
	esc, err := keyring.NewHPKEEscrow("escrow-2026", escrowKey.PublicKey())
	require.NoError(t, err)
	recovery, err := keyring.NewHPKEEscrowRecovery("escrow-2026", escrowKey)
	require.NoError(t, err)

	svc, _ := w.storeAs(postgres.RoleService)
	bk := w.branchKeys(svc, "svc")
	rep, err := bk.Escrow(ctx, esc, roleTestKey)
	require.NoError(t, err)
	require.Equal(t, 2, rep.Escrowed)

	// The service role plants: a tombstone over the live active version's
	// copy, a recovered mark on the older version.
	name := keyring.BranchKeyEscrowRecordName(roleTestKey, active.Version)
	rec, err := svc.GetRecord(ctx, keyring.BranchKeyEscrowRecordKind, name)
	require.NoError(t, err)
	_, err = svc.PutRecord(ctx, keyring.BranchKeyEscrowRecordKind, name, []byte{0x00}, rec.Revision)
	require.NoError(t, err, "the service role may overwrite an escrow record")
	_, err = svc.PutRecord(ctx, keyring.RecoveredVersionRecordKind, keyring.BranchKeyEscrowRecordName(roleTestKey, old.Version), []byte{1}, 0)
	require.NoError(t, err, "the service role may plant a recovered mark")

	// The service writes a copy over the tombstone on its next use.
	h, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: roleTestKey,
		CacheTTL: time.Hour, PropagationWindow: time.Nanosecond, Escrow: esc})
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	enc, err := phicrypt.New(phicrypt.Config{Keyring: h})
	require.NoError(t, err)
	_, encErr := enc.Encrypt(ctx, []byte("synthetic lab result"), nil)
	require.NoError(t, encErr)
	k, err := bk.OpenEscrow(ctx, recovery, active)
	require.NoError(t, err, "the service wrote a copy over the tombstone")
	k.Wipe()
	// Planted again after the service's last use.
	rec, err = svc.GetRecord(ctx, keyring.BranchKeyEscrowRecordKind, name)
	require.NoError(t, err)
	_, err = svc.PutRecord(ctx, keyring.BranchKeyEscrowRecordKind, name, []byte{0x00}, rec.Revision)
	require.NoError(t, err)

	// Break glass: the custodian moves everything under a new KMS key.
	nk, err := w.kms.Client("custodian").CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	newARN := aws.ToString(nk.KeyMetadata.Arn)
	keys, err := custody.NewBranchKeys(keyring.BranchKeysConfig{Store: cust, Client: w.kms.Client("custodian"), KMSKeyARN: newARN,
		LogicalStoreName: "phicrypt-roles-test"})
	require.NoError(t, err)
	rrep, err := custody.RecoverBranchKeys(ctx, keys, recovery, w.kms.Client("custodian"), newARN, custody.RecoverBranchKeysOptions{})
	t.Logf("recovery: %+v, %v", rrep, err)
	got, gerr := cust.Get(ctx, roleTestKey, active.Version)
	require.NoError(t, gerr)
	require.NotEqual(t, keystore.StateDestroyed, got.State)
	require.Equal(t, w.arn, got.KMSKeyARN, "the active version was not recovered")
	assert.Equal(t, 0, rrep.Destroyed, "a live version reported destroyed")
	assert.Equal(t, 1, rrep.Damaged)
	assert.ErrorIs(t, err, keyring.ErrEscrowRecord, "the recovery left a live version under the old key and says so")
}
