package custody_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/phicrypt/phicrypt/audit"
	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
)

// executorWorld: kmsmock, a file store holding testKey, the "*" policy of
// three custodians installed, a service encrypting under testKey through
// the hierarchical keyring, and an Executor whose AfterDestroy makes the
// service's keyring forget at once.
type executorWorld struct {
	*world
	env  *testkeys.Env
	keys *custody.BranchKeys
	svc  *keyring.Hierarchical
	enc  *phicrypt.Encryptor
	x    *custody.Executor
}

func newExecutorWorld(t *testing.T) *executorWorld {
	e := testkeys.New(t, testkeys.Options{})
	e.Create(t, testKey)
	w := newWorld(t, e.Store.(custody.RecordStore))
	w.install(w.basePolicy("*"), w.alice, w.bob)
	h, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: e.Keys, BranchKeyID: testKey, CacheTTL: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	enc, err := phicrypt.New(phicrypt.Config{Keyring: h})
	require.NoError(t, err)
	keys := testkeys.Custodian(t, e.Keys)
	x, err := custody.NewExecutor(custody.ExecutorConfig{Authority: w.auth, Keys: keys, KMS: e.Client, ReEncrypter: e.Client,
		AfterDestroy: h.Forget})
	require.NoError(t, err)
	return &executorWorld{world: w, env: e, keys: keys, svc: h, enc: enc, x: x}
}

// A destruction applies only with its quorum; once applied the key is
// gone from the store, the service fails with ErrKeyDestroyed at once
// (AfterDestroy), and the audit log holds the change and the destruction
// with their approvers.
func TestExecutorDestroysOnlyWithAQuorum(t *testing.T) {
	ctx := context.Background()
	w := newExecutorWorld(t)
	msg, err := w.enc.Encrypt(ctx, []byte("discharge summary"), map[string]string{"ward": "3"})
	require.NoError(t, err)

	r := w.propose(custody.Change{Action: custody.ActionDestroyKey, BranchKeyID: testKey})
	_, err = w.x.Apply(ctx, r, approve(t, r, w.alice))
	requireOnly(t, err, custody.ErrTooFewApprovals)
	_, err = w.env.Store.Active(ctx, testKey)
	require.NoError(t, err, "a refused destruction destroys nothing")
	_, _, err = w.enc.Decrypt(ctx, msg, nil)
	require.NoError(t, err)

	from := w.log.Size()
	applied, err := w.x.Apply(ctx, r, approve(t, r, w.alice, w.bob))
	require.NoError(t, err)
	require.Equal(t, []string{"alice", "bob"}, applied.Authorization.Approvers)
	_, err = w.env.Store.Active(ctx, testKey)
	require.ErrorIs(t, err, keystore.ErrDestroyed)
	_, _, err = w.enc.Decrypt(ctx, msg, nil)
	require.ErrorIs(t, err, keyring.ErrKeyDestroyed, "the service's cache was told at once")

	recs, err := w.log.Records(from, w.log.Size())
	require.NoError(t, err)
	var kinds []audit.Kind
	for _, b := range recs {
		rec, err := audit.ParseRecord(b)
		require.NoError(t, err)
		kinds = append(kinds, rec.Kind)
		require.Equal(t, []string{"alice", "bob"}, rec.Approvers)
		require.Equal(t, w.hasher.BranchKey(testKey), rec.Key)
	}
	require.Equal(t, []audit.Kind{audit.KindAdminChange, audit.KindDestruction}, kinds)

	_, err = w.x.Apply(ctx, r, approve(t, r, w.alice, w.bob))
	requireOnly(t, err, custody.ErrReplayed)
}

// Rotate, retire, disable and enable, and rewrap, each through a request.
func TestExecutorCarriesOutEachChange(t *testing.T) {
	ctx := context.Background()
	w := newExecutorWorld(t)
	first, err := w.env.Store.Active(ctx, testKey)
	require.NoError(t, err)

	r := w.propose(custody.Change{Action: custody.ActionRotate, BranchKeyID: testKey})
	applied, err := w.x.Apply(ctx, r, approve(t, r, w.carol))
	require.NoError(t, err)
	require.NotEqual(t, first.Version, applied.Version.Version)
	active, err := w.env.Store.Active(ctx, testKey)
	require.NoError(t, err)
	require.Equal(t, applied.Version.Version, active.Version)

	r = w.propose(custody.Change{Action: custody.ActionRetire, BranchKeyID: testKey, Version: first.Version})
	_, err = w.x.Apply(ctx, r, approve(t, r, w.alice, w.carol))
	require.NoError(t, err)
	got, err := w.env.Store.Get(ctx, testKey, first.Version)
	require.NoError(t, err)
	require.Equal(t, keystore.StateRetired, got.State)

	for _, step := range []struct {
		act  custody.Action
		want types.KeyState
	}{{custody.ActionDisable, types.KeyStateDisabled}, {custody.ActionEnable, types.KeyStateEnabled}} {
		r = w.propose(custody.Change{Action: step.act, BranchKeyID: testKey})
		_, err = w.x.Apply(ctx, r, approve(t, r, w.bob, w.carol))
		require.NoError(t, err)
		d, err := w.env.Client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(w.env.ARN)})
		require.NoError(t, err)
		require.Equal(t, step.want, d.KeyMetadata.KeyState, "after %s", step.act)
	}

	newKey, err := w.env.Client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	newARN := aws.ToString(newKey.KeyMetadata.Arn)
	r = w.propose(custody.Change{Action: custody.ActionRewrap, KMSKeyARN: newARN})
	applied, err = w.x.Apply(ctx, r, approve(t, r, w.alice, w.bob))
	require.NoError(t, err)
	require.NotNil(t, applied.Rewrap)
	require.Equal(t, 2, applied.Rewrap.Rewrapped, "both versions, the retired one too, move under the new key")
	active, err = w.env.Store.Active(ctx, testKey)
	require.NoError(t, err)
	require.Equal(t, newARN, active.KMSKeyARN)
}

// A change authorized but impossible (destroying the active version
// alone) is spent, reported as not carried out, and audited as such.
func TestExecutorReportsAChangeNotCarriedOut(t *testing.T) {
	ctx := context.Background()
	w := newExecutorWorld(t)
	active, err := w.env.Store.Active(ctx, testKey)
	require.NoError(t, err)
	r := w.propose(custody.Change{Action: custody.ActionDestroyVersion, BranchKeyID: testKey, Version: active.Version})
	_, err = w.x.Apply(ctx, r, approve(t, r, w.alice, w.bob))
	require.ErrorIs(t, err, custody.ErrNotCarriedOut)
	require.ErrorIs(t, err, keystore.ErrConflict)
	require.NotContains(t, err.Error(), testKey)
	last := w.lastRecord()
	require.Equal(t, audit.KindDenial, last.Kind)
	require.Equal(t, "authorized but not carried out", last.Reason)
	_, err = w.env.Store.Active(ctx, testKey)
	require.NoError(t, err, "the active version is intact")
}

// An outsider cannot take over keys a stricter policy governs by
// installing a broader first policy ("*") signed by itself: a set-policy
// needs the quorum of every installed policy of a narrower scope too.
// And changes that reach beyond the key they name (disabling or enabling
// the shared KMS key, a store-wide rewrap) need every policy's quorum.
func TestChangesReachingOtherScopesNeedTheirQuorums(t *testing.T) {
	ctx := context.Background()
	e := testkeys.New(t, testkeys.Options{})
	e.Create(t, testKey)
	e.Create(t, "other-key")
	w := newWorld(t, e.Store.(custody.RecordStore))
	w.install(w.basePolicy("tenant-*"), w.alice, w.bob)
	keys := testkeys.Custodian(t, e.Keys)
	x, err := custody.NewExecutor(custody.ExecutorConfig{Authority: w.auth, Keys: keys, KMS: e.Client, ReEncrypter: e.Client})
	require.NoError(t, err)

	// mallory's own "*" policy: refused without tenant-*'s quorum.
	grab := &custody.Policy{Scope: "*", Revision: 1, Custodians: []custody.Principal{w.mallory.Principal()},
		Quorum: map[custody.Action]int{custody.ActionSetPolicy: 1}}
	r, err := w.auth.Propose(ctx, "mallory", custody.Change{Action: custody.ActionSetPolicy, NewPolicy: grab}, time.Hour)
	require.NoError(t, err)
	_, err = w.auth.Authorize(ctx, r, approve(t, r, w.mallory))
	requireOnly(t, err, custody.ErrTooFewApprovals)
	// With tenant-*'s custodians agreeing, a "*" policy goes in.
	star := w.basePolicy("*")
	star.Custodians = []custody.Principal{w.carol.Principal(), w.mallory.Principal()}
	star.Revision = 1
	r, err = w.auth.Propose(ctx, "carol", custody.Change{Action: custody.ActionSetPolicy, NewPolicy: star}, time.Hour)
	require.NoError(t, err)
	_, err = w.auth.Authorize(ctx, r, approve(t, r, w.carol, w.mallory, w.alice))
	require.NoError(t, err)

	// Disabling the KMS key that wraps other-key (governed by "*") also
	// stops tenant-* keys: tenant-*'s quorum is needed too.
	r, err = w.auth.Propose(ctx, "carol", custody.Change{Action: custody.ActionDisable, BranchKeyID: "other-key"}, time.Hour)
	require.NoError(t, err)
	_, err = x.Apply(ctx, r, approve(t, r, w.carol, w.mallory))
	requireOnly(t, err, custody.ErrTooFewApprovals)
	r, err = w.auth.Propose(ctx, "carol", custody.Change{Action: custody.ActionDisable, BranchKeyID: "other-key"}, time.Hour)
	require.NoError(t, err)
	_, err = x.Apply(ctx, r, approve(t, r, w.carol, w.mallory, w.alice, w.bob))
	require.NoError(t, err)
	d, err := e.Client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(e.ARN)})
	require.NoError(t, err)
	require.Equal(t, types.KeyStateDisabled, d.KeyMetadata.KeyState)

	// A store-wide rewrap likewise; a rewrap of one key needs only its own.
	newKey, err := e.Client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	newARN := aws.ToString(newKey.KeyMetadata.Arn)
	r, err = w.auth.Propose(ctx, "carol", custody.Change{Action: custody.ActionEnable, BranchKeyID: "other-key"}, time.Hour)
	require.NoError(t, err)
	_, err = x.Apply(ctx, r, approve(t, r, w.carol, w.mallory, w.alice, w.bob))
	require.NoError(t, err)
	r, err = w.auth.Propose(ctx, "carol", custody.Change{Action: custody.ActionRewrap, KMSKeyARN: newARN}, time.Hour)
	require.NoError(t, err)
	_, err = x.Apply(ctx, r, approve(t, r, w.carol, w.mallory))
	requireOnly(t, err, custody.ErrTooFewApprovals)
	r, err = w.auth.Propose(ctx, "carol", custody.Change{Action: custody.ActionRewrap, BranchKeyID: "other-key", KMSKeyARN: newARN}, time.Hour)
	require.NoError(t, err)
	applied, err := x.Apply(ctx, r, approve(t, r, w.carol, w.mallory))
	require.NoError(t, err)
	require.Equal(t, 1, applied.Rewrap.Rewrapped, "only other-key moved")
	v, err := e.Store.Active(ctx, testKey)
	require.NoError(t, err)
	require.Equal(t, e.ARN, v.KMSKeyARN, "tenant-* keys were not touched")
}

// "The audit log records every installation": when the log refuses the
// record, the policy is not installed.
func TestNoPolicyInstalledWithoutItsAuditRecord(t *testing.T) {
	ctx := context.Background()
	e := testkeys.New(t, testkeys.Options{})
	sink, err := audit.OpenFileSink(t.TempDir())
	require.NoError(t, err)
	w := newWorld(t, e.Store.(custody.RecordStore))
	skey, _, err := note.GenerateKey(nil, "audit.test/closed")
	require.NoError(t, err)
	signer, err := note.NewSigner(skey)
	require.NoError(t, err)
	log, err := audit.NewLog(audit.Config{Sink: sink, Signer: signer})
	require.NoError(t, err)
	require.NoError(t, sink.Close())
	auth, err := custody.NewAuthority(custody.AuthorityConfig{Store: e.Store.(custody.RecordStore), Audit: log, Hasher: w.hasher})
	require.NoError(t, err)
	r, err := auth.Propose(ctx, "alice", custody.Change{Action: custody.ActionSetPolicy, NewPolicy: w.basePolicy("*")}, time.Hour)
	require.NoError(t, err)
	_, err = auth.Authorize(ctx, r, approve(t, r, w.alice, w.bob))
	require.ErrorContains(t, err, "audit log refused")
	_, err = auth.PolicyFor(ctx, testKey)
	require.ErrorIs(t, err, custody.ErrNoPolicy)
}
