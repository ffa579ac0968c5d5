package custody_test

import (
	"database/sql"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore/sqlite"
	"github.com/phicrypt/phicrypt/kmsmock"
)

// A SQLite store whose real escrow copies and recovery mark were kept in
// schema 4's one records table (made here by moving a schema 5 store's
// per-version records back and forgetting migration 5) migrates to schema
// 5 on open: the copies still open with the escrow private key, services
// and the backfill find their key checks matching (nothing replaced), and
// a break-glass recovery from them succeeds.
func TestReview2EscrowCopiesSurviveSchema4Migration(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keys.db")
	s, err := sqlite.Open(ctx, path)
	require.NoError(t, err)
	l := kmsmock.StartTest(t, kmsmock.Config{})
	svc, custodian := l.Client("svc"), l.Client("custodian")
	old, err := svc.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	oldARN := aws.ToString(old.KeyMetadata.Arn)
	escrowKey, err := keyring.GenerateHPKEEscrowKey()
	require.NoError(t, err)
	esc, err := keyring.NewHPKEEscrow("escrow-2026", escrowKey.PublicKey())
	require.NoError(t, err)
	recovery, err := keyring.NewHPKEEscrowRecovery("escrow-2026", escrowKey)
	require.NoError(t, err)
	cfg := keyring.BranchKeysConfig{Store: s, Client: svc, KMSKeyARN: oldARN, LogicalStoreName: "phicrypt-test"}
	admin, err := custody.NewBranchKeys(cfg)
	require.NoError(t, err)
	_, err = admin.CreateBranchKey(ctx, "key-a")
	require.NoError(t, err)
	_, err = admin.Rotate(ctx, "key-a")
	require.NoError(t, err)
	svcKeys, err := keyring.NewBranchKeys(cfg)
	require.NoError(t, err)
	rep, err := svcKeys.Escrow(ctx, esc, "")
	require.NoError(t, err)
	require.Equal(t, 2, rep.Escrowed)
	vs, err := s.List(ctx, "key-a")
	require.NoError(t, err)
	_, err = s.PutRecord(ctx, keyring.RecoveredVersionRecordKind, keyring.BranchKeyEscrowRecordName("key-a", vs[0].Version), []byte{1}, 0)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath())
	require.NoError(t, err)
	for _, stmt := range []string{
		`INSERT INTO phicrypt_records SELECT kind, name, value, revision, updated_at_us FROM phicrypt_version_records`,
		`DROP TABLE phicrypt_version_records`,
		`DELETE FROM phicrypt_schema_migrations WHERE version = 5`,
	} {
		_, err := db.ExecContext(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	require.NoError(t, db.Close())

	s, err = sqlite.Open(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	cfg.Store = s
	svcKeys, err = keyring.NewBranchKeys(cfg)
	require.NoError(t, err)
	for _, v := range vs {
		k, err := svcKeys.OpenEscrow(ctx, recovery, v)
		require.NoError(t, err, "the migrated copy opens")
		k.Wipe()
	}
	_, err = s.GetRecord(ctx, keyring.RecoveredVersionRecordKind, keyring.BranchKeyEscrowRecordName("key-a", vs[0].Version))
	require.NoError(t, err, "the recovery mark moved too")
	h := serviceKeyring(t, s, svc, oldARN, esc)
	_ = encryptFor(t, h, "key-a", 1)
	rep, err = svcKeys.Escrow(ctx, esc, "")
	require.NoError(t, err)
	require.Equal(t, keyring.EscrowReport{Versions: 2, Already: 2}, rep)

	nk, err := svc.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(newKeyPolicy("kms:Encrypt", "kms:GenerateDataKeyWithoutPlaintext")), BypassPolicyLockoutSafetyCheck: true})
	require.NoError(t, err)
	newARN := aws.ToString(nk.KeyMetadata.Arn)
	_, err = svc.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &oldARN, PendingWindowInDays: aws.Int32(7)})
	require.NoError(t, err)
	l.Advance(8 * 24 * time.Hour)
	ccfg := cfg
	ccfg.Client, ccfg.KMSKeyARN = custodian, newARN
	ckeys, err := custody.NewBranchKeys(ccfg)
	require.NoError(t, err)
	rrep, err := custody.RecoverBranchKeys(ctx, ckeys, recovery, custodian, newARN, custody.RecoverBranchKeysOptions{Rotate: true})
	require.NoError(t, err)
	require.Equal(t, 2, rrep.Recovered)
	require.Equal(t, 1, rrep.Rotated)
}
