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
