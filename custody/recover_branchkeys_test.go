package custody_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// bkPatient is a row with one PHI column, for the recovery drill.
type bkPatient struct {
	ID   string                  `phi:"rowid"`
	Name fieldenc.Sealed[string] `phi:"encrypt"`
}

// recoveryKMS is kmsmock with the principals of a branch-key recovery:
// a service, a custodian and an administrator of the new key.
type recoveryKMS struct {
	l                   *kmsmock.Local
	svc, custodian, adm *kms.Client
}

func kmsUser(name string) string { return "arn:aws:iam::" + kmsmock.DefaultAccount + ":user/" + name }

// newKeyPolicy lets the service use the key, the administrator put its
// policy, and the custodian do custodianActions only.
func newKeyPolicy(custodianActions ...string) string {
	return `{"Version":"2012-10-17","Statement":[
 {"Sid":"admin","Effect":"Allow","Principal":{"AWS":"` + kmsUser("admin") + `"},"Action":["kms:PutKeyPolicy","kms:DescribeKey"],"Resource":"*"},
 {"Sid":"custodian","Effect":"Allow","Principal":{"AWS":"` + kmsUser("custodian") + `"},"Action":["` + strings.Join(custodianActions, `","`) + `"],"Resource":"*"},
 {"Sid":"service","Effect":"Allow","Principal":{"AWS":"` + kmsUser("svc") + `"},"Action":["kms:Decrypt","kms:Encrypt","kms:GenerateDataKey","kms:GenerateDataKeyWithoutPlaintext","kms:ReEncryptFrom","kms:ReEncryptTo","kms:DescribeKey"],"Resource":"*"}]}`
}

// serviceKeyring is a service's hierarchical keyring over store under
// arn, choosing the branch key by the "tenant" context key, escrowing
// every version it unwraps to esc when esc is set.
func serviceKeyring(t *testing.T, store keystore.Store, client *kms.Client, arn string, esc *keyring.HPKEEscrow) *keyring.Hierarchical {
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: client, KMSKeyARN: arn, LogicalStoreName: "phicrypt-test"})
	require.NoError(t, err)
	h, err := keyring.NewHierarchical(keyring.HierarchicalConfig{
		BranchKeys: bk, CacheTTL: time.Minute, PropagationWindow: time.Nanosecond, Escrow: esc, MaxUsesPerVersion: 1 << 20,
		BranchKeyIDSupplier: func(ec map[string]string) (string, error) { return ec["tenant"], nil },
	})
	require.NoError(t, err)
	return h
}

type sealedMessage struct {
	tenant, plain string
	ct            []byte
}

func encryptFor(t *testing.T, h *keyring.Hierarchical, tenant string, n int) []sealedMessage {
	e, err := phicrypt.New(phicrypt.Config{Keyring: h})
	require.NoError(t, err)
	var out []sealedMessage
	for i := range n {
		pt := fmt.Sprintf("patient %d of %s: discharge summary", i, tenant)
		ct, err := e.Encrypt(t.Context(), []byte(pt), map[string]string{"tenant": tenant})
		require.NoError(t, err)
		out = append(out, sealedMessage{tenant, pt, ct})
	}
	return out
}

// sealField seals one patient name under branch key id and returns its
// stored form.
func sealField(t *testing.T, h *keyring.Hierarchical, id, rowID, name string) any {
	table, err := fieldenc.New(fieldenc.Config{Keys: h, BranchKeyID: id, Table: "patients"})
	require.NoError(t, err)
	codec, err := fieldenc.NewCodec[bkPatient](table)
	require.NoError(t, err)
	p := bkPatient{ID: rowID, Name: fieldenc.Of(name)}
	require.NoError(t, codec.Seal(t.Context(), &p))
	v, err := p.Name.Value()
	require.NoError(t, err)
	return v
}

func openField(ctx context.Context, h *keyring.Hierarchical, id, rowID string, stored any) (string, error) {
	table, err := fieldenc.New(fieldenc.Config{Keys: h, BranchKeyID: id, Table: "patients"})
	if err != nil {
		return "", err
	}
	codec, err := fieldenc.NewCodec[bkPatient](table)
	if err != nil {
		return "", err
	}
	p := bkPatient{ID: rowID}
	if err := p.Name.Scan(stored); err != nil {
		return "", err
	}
	if err := codec.Open(ctx, &p); err != nil {
		return "", err
	}
	name, _ := p.Name.Get()
	return name, nil
}

// The branch-key break-glass drill, on every store: services escrow the
// versions they use (and one is backfilled); the KMS key that wrapped them
// is deleted; RecoverBranchKeys with the escrow private key moves every
// escrowed version under a new key on which the custodian may only
// Encrypt; every message and field decrypts again through a keyring on
// the new key; the version without an escrow copy is reported by
// fingerprint; a re-run is idempotent and, once allowed to, rotates the
// keys whose active version was recovered.
func TestRecoverBranchKeys(t *testing.T) {
	for _, kind := range storeKinds(t) {
		t.Run(kind, func(t *testing.T) { recoverBranchKeysDrill(t, recordStore(t, kind).(keystore.Store)) })
	}
}

func recoverBranchKeysDrill(t *testing.T, store keystore.Store) {
	ctx := t.Context()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	k := recoveryKMS{l: l, svc: l.Client("svc"), custodian: l.Client("custodian"), adm: l.Client("admin")}
	old, err := k.svc.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("soon lost")})
	require.NoError(t, err)
	oldARN := aws.ToString(old.KeyMetadata.Arn)

	escrowKey, err := keyring.GenerateHPKEEscrowKey()
	require.NoError(t, err)
	esc, err := keyring.NewHPKEEscrow("escrow-2026", escrowKey.PublicKey())
	require.NoError(t, err)

	// The custodian makes the branch keys under the old key.
	cfg := keyring.BranchKeysConfig{Store: store, Client: k.svc, KMSKeyARN: oldARN, LogicalStoreName: "phicrypt-test"}
	custodian, err := custody.NewBranchKeys(cfg)
	require.NoError(t, err)
	for _, id := range []string{"tenant-a", "tenant-b", "tenant-c", "tenant-d"} {
		_, err := custodian.CreateBranchKey(ctx, id)
		require.NoError(t, err)
	}

	// Services with Escrow set write messages (tenant-a, before and after
	// a rotation) and fields (tenant-b); tenant-c is never used; tenant-d's
	// first version is destroyed and its second backfilled.
	msgs := encryptFor(t, serviceKeyring(t, store, k.svc, oldARN, esc), "tenant-a", 3)
	_, err = custodian.Rotate(ctx, "tenant-a")
	require.NoError(t, err)
	time.Sleep(time.Millisecond) // past the propagation window
	svcAfter := serviceKeyring(t, store, k.svc, oldARN, esc)
	msgs = append(msgs, encryptFor(t, svcAfter, "tenant-a", 2)...)
	field := sealField(t, svcAfter, "tenant-b", "row-7", "Jane Roe")
	d1, err := store.Active(ctx, "tenant-d")
	require.NoError(t, err)
	_, err = custodian.Rotate(ctx, "tenant-d")
	require.NoError(t, err)
	require.NoError(t, custodian.DestroyVersion(ctx, "tenant-d", d1.Version))
	svcKeys, err := keyring.NewBranchKeys(cfg)
	require.NoError(t, err)
	backfill, err := svcKeys.Escrow(ctx, esc, "tenant-d")
	require.NoError(t, err)
	require.Equal(t, keyring.EscrowReport{Versions: 2, Escrowed: 1, Destroyed: 1}, backfill)
	for _, v := range allVersions(t, store) {
		has, err := svcKeys.EscrowStatus(ctx, v, escrowKey.PublicKey().Digest())
		require.NoError(t, err)
		require.Equal(t, v.BranchKeyID != "tenant-c" && v.State != keystore.StateDestroyed, has, "%s version %s", v.BranchKeyID, v.Version)
	}

	// The old key is scheduled for deletion and deleted: nothing decrypts.
	_, err = k.svc.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &oldARN, PendingWindowInDays: aws.Int32(7)})
	require.NoError(t, err)
	l.Advance(8 * 24 * time.Hour)
	lost, err := phicrypt.New(phicrypt.Config{Keyring: serviceKeyring(t, store, k.svc, oldARN, nil)})
	require.NoError(t, err)
	_, _, err = lost.Decrypt(ctx, msgs[0].ct, nil)
	require.Error(t, err)

	// The new key: the custodian may only Encrypt under it.
	nk, err := k.svc.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(newKeyPolicy("kms:Encrypt")), BypassPolicyLockoutSafetyCheck: true})
	require.NoError(t, err)
	newARN := aws.ToString(nk.KeyMetadata.Arn)
	recovery, err := keyring.NewHPKEEscrowRecovery("escrow-2026", escrowKey)
	require.NoError(t, err)
	mine, err := custody.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: k.custodian, KMSKeyARN: newARN, LogicalStoreName: "phicrypt-test"})
	require.NoError(t, err)
	var progress []int
	var checkpoints []custody.RewrapPosition
	rep, err := custody.RecoverBranchKeys(ctx, mine, recovery, k.custodian, newARN, custody.RecoverBranchKeysOptions{
		Progress: func(done, total int) { progress = append(progress, done) },
		Checkpoint: func(id, version string) error {
			checkpoints = append(checkpoints, custody.RewrapPosition{BranchKeyID: id, Version: version})
			return nil
		},
	})
	require.ErrorIs(t, err, keyring.ErrNoEscrowCopy)
	require.Contains(t, err.Error(), keystore.Fingerprint("tenant-c"))
	require.NotContains(t, err.Error(), "tenant-c")
	c1, err := store.Active(ctx, "tenant-c")
	require.NoError(t, err)
	require.Equal(t, custody.RecoverBranchKeysReport{Total: 6, Recovered: 4, Destroyed: 1, Missing: 1,
		MissingVersions: []custody.VersionFingerprint{{Fingerprint: keystore.Fingerprint("tenant-c"), Version: c1.Version}}}, rep)
	require.Equal(t, []int{1, 2, 3, 4, 5, 6}, progress)
	require.Len(t, checkpoints, 6)

	// Every message and field decrypts through a keyring on the new key
	// (without escrow: the versions are read as they are stored).
	restored := serviceKeyring(t, store, k.svc, newARN, nil)
	dec, err := phicrypt.New(phicrypt.Config{Keyring: restored})
	require.NoError(t, err)
	for _, m := range msgs {
		pt, _, err := dec.Decrypt(ctx, m.ct, nil)
		require.NoError(t, err)
		require.Equal(t, m.plain, string(pt))
	}
	name, err := openField(ctx, restored, "tenant-b", "row-7", field)
	require.NoError(t, err)
	require.Equal(t, "Jane Roe", name)
	c1now, err := store.Get(ctx, "tenant-c", c1.Version)
	require.NoError(t, err)
	require.Equal(t, oldARN, c1now.KMSKeyARN, "a version without an escrow copy stays where it was")

	// The custodian cannot decrypt or re-encrypt under the new key.
	wrapped, err := k.svc.Encrypt(ctx, &kms.EncryptInput{KeyId: &newARN, Plaintext: []byte("x")})
	require.NoError(t, err)
	_, err = k.custodian.Decrypt(ctx, &kms.DecryptInput{KeyId: &newARN, CiphertextBlob: wrapped.CiphertextBlob})
	require.ErrorContains(t, err, "AccessDenied")

	// A re-run moves nothing; resumed from the first checkpoint it skips
	// that version unread. Allowed to make versions under the new key, it
	// rotates the keys whose active version was recovered.
	// The rotation makes versions with GenerateDataKeyWithoutPlaintext;
	// a store in AWS's layout also needs their ACTIVE copy, made with
	// ReEncrypt on the new key.
	allow := []string{"kms:Encrypt", "kms:GenerateDataKeyWithoutPlaintext"}
	_, awsLayout := store.(interface {
		RewrapWithCopy(context.Context, string, string, []byte, string, []byte, []byte) error
	})
	if awsLayout {
		_, err = k.adm.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: &newARN, Policy: aws.String(newKeyPolicy(allow...))})
		require.NoError(t, err)
		_, err = custody.RecoverBranchKeys(ctx, mine, recovery, k.custodian, newARN, custody.RecoverBranchKeysOptions{Rotate: true})
		require.ErrorContains(t, err, "ReEncrypt")
		require.ErrorContains(t, err, "AccessDenied")
		allow = append(allow, "kms:ReEncryptFrom", "kms:ReEncryptTo")
	}
	_, err = k.adm.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: &newARN, Policy: aws.String(newKeyPolicy(allow...))})
	require.NoError(t, err)
	actives := map[string]string{}
	for _, id := range []string{"tenant-a", "tenant-b", "tenant-d"} {
		v, err := store.Active(ctx, id)
		require.NoError(t, err)
		actives[id] = v.Version
	}
	rep, err = custody.RecoverBranchKeys(ctx, mine, recovery, k.custodian, newARN, custody.RecoverBranchKeysOptions{Rotate: true, Resume: &checkpoints[0]})
	require.ErrorIs(t, err, keyring.ErrNoEscrowCopy)
	require.Equal(t, 6, rep.Total)
	require.Equal(t, 1, rep.Resumed)
	require.Equal(t, 0, rep.Recovered)
	require.Equal(t, 1, rep.Missing)
	require.Equal(t, 5, rep.Resumed+rep.AlreadyMoved+rep.Destroyed)
	require.Equal(t, 3, rep.Rotated)
	for id, was := range actives {
		now, err := store.Active(ctx, id)
		require.NoError(t, err)
		require.NotEqual(t, was, now.Version, "%s is rotated", id)
		require.Equal(t, newARN, now.KMSKeyARN)
		prev, err := store.Get(ctx, id, was)
		require.NoError(t, err)
		require.Equal(t, keystore.StateDecryptOnly, prev.State, "the recovered version of %s stays decrypt-only", id)
	}
	rep, err = custody.RecoverBranchKeys(ctx, mine, recovery, k.custodian, newARN, custody.RecoverBranchKeysOptions{Rotate: true})
	require.ErrorIs(t, err, keyring.ErrNoEscrowCopy)
	require.Equal(t, 0, rep.Rotated, "rotated once: the fresh versions were not recovered")
	require.Equal(t, 9, rep.Total)

	// New writes use the fresh versions; old and new data read back.
	fresh := serviceKeyring(t, store, k.svc, newARN, esc)
	time.Sleep(time.Millisecond)
	msgs = append(msgs, encryptFor(t, fresh, "tenant-a", 1)...)
	dec, err = phicrypt.New(phicrypt.Config{Keyring: serviceKeyring(t, store, k.svc, newARN, nil)})
	require.NoError(t, err)
	for _, m := range msgs {
		pt, _, err := dec.Decrypt(ctx, m.ct, nil)
		require.NoError(t, err)
		require.Equal(t, m.plain, string(pt))
	}
}

func allVersions(t *testing.T, store keystore.Store) []keystore.BranchKeyVersion {
	ids, err := store.IDs(t.Context())
	require.NoError(t, err)
	var out []keystore.BranchKeyVersion
	for _, id := range ids {
		vs, err := store.List(t.Context(), id)
		require.NoError(t, err)
		out = append(out, vs...)
	}
	return out
}

// Bad arguments are refused before anything is read.
func TestRecoverBranchKeysRefusesBadArguments(t *testing.T) {
	ctx := t.Context()
	escrowKey, err := keyring.GenerateHPKEEscrowKey()
	require.NoError(t, err)
	recovery, err := keyring.NewHPKEEscrowRecovery("escrow-2026", escrowKey)
	require.NoError(t, err)
	l := kmsmock.StartTest(t, kmsmock.Config{})
	client := l.Client("custodian")
	store := recordStore(t, "file").(keystore.Store)
	const arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	keys, err := custody.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: client, KMSKeyARN: arn, LogicalStoreName: "phicrypt-test"})
	require.NoError(t, err)
	for name, f := range map[string]func() error{
		"alias": func() error {
			_, err := custody.RecoverBranchKeys(ctx, keys, recovery, client, "alias/x", custody.RecoverBranchKeysOptions{})
			return err
		},
		"no keys": func() error {
			_, err := custody.RecoverBranchKeys(ctx, nil, recovery, client, arn, custody.RecoverBranchKeysOptions{})
			return err
		},
		"no recovery": func() error {
			_, err := custody.RecoverBranchKeys(ctx, keys, nil, client, arn, custody.RecoverBranchKeysOptions{})
			return err
		},
		"bad id": func() error {
			_, err := custody.RecoverBranchKeys(ctx, keys, recovery, client, arn, custody.RecoverBranchKeysOptions{BranchKeyID: "a\x00b"})
			return err
		},
	} {
		require.ErrorIs(t, f(), keystore.ErrInvalid, name)
	}
}
