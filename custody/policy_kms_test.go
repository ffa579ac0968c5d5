package custody_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/audit"
	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/stretchr/testify/require"
)

// "A service may rotate by usage cap only where the policy says so": the
// signed policy's flag becomes the KMS key policy, and KMS lets the
// service's hierarchical keyring rotate at its usage cap, or refuses it
// (the keyring then fails with ErrVersionExhausted instead of rotating).
func TestServiceRotatesOnlyWhereThePolicySaysSo(t *testing.T) {
	for _, may := range []bool{false, true} {
		ctx := context.Background()
		l := kmsmock.StartTest(t, kmsmock.Config{})
		user := func(name string) string { return "arn:aws:iam::" + l.Account() + ":user/" + name }
		principal := func(name string) custody.Principal {
			pub, _, err := ed25519.GenerateKey(nil)
			require.NoError(t, err)
			return custody.Principal{Name: name, PublicKey: pub, AWSPrincipal: user(name)}
		}
		p := &custody.Policy{Scope: "*", Revision: 1,
			Custodians:       []custody.Principal{principal("custodian")},
			Services:         []custody.Principal{principal("svc")},
			Quorum:           map[custody.Action]int{custody.ActionSetPolicy: 1},
			ServiceMayRotate: custody.ServiceRotation{ByUsage: may}}
		require.NoError(t, p.Validate())
		doc, err := custody.GenerateKMSKeyPolicy(p.KMSKeyPolicyConfig(l.Account(), "rotation-store"))
		require.NoError(t, err)
		custodianKMS := l.Client("custodian")
		key, err := custodianKMS.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(string(doc))})
		require.NoError(t, err)
		store, err := keystore.OpenFileStore(t.TempDir())
		require.NoError(t, err)
		defer store.Close()
		cfg := keyring.BranchKeysConfig{Store: store, Client: custodianKMS, KMSKeyARN: aws.ToString(key.KeyMetadata.Arn), LogicalStoreName: "rotation-store"}
		keys, err := custody.NewBranchKeys(cfg)
		require.NoError(t, err)
		first, err := keys.CreateBranchKey(ctx, "tenant")
		require.NoError(t, err)

		cfg.Client = l.Client("svc")
		bk, err := keyring.NewBranchKeys(cfg)
		require.NoError(t, err)
		h, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "tenant", CacheTTL: time.Minute, MaxUsesPerVersion: 2, UsageBlock: 1})
		require.NoError(t, err)
		var err3 error
		for range 3 {
			k, err := h.AcquireActive(ctx, "tenant", 1)
			if err != nil {
				err3 = err
				break
			}
			k.Release()
		}
		active, err := store.Active(ctx, "tenant")
		require.NoError(t, err)
		if may {
			require.NoError(t, err3, "the policy lets the service rotate at its cap")
			require.NotEqual(t, first.Version, active.Version)
		} else {
			require.ErrorIs(t, err3, keyring.ErrVersionExhausted, "KMS refuses the service's rotation")
			require.Equal(t, first.Version, active.Version)
		}
		h.Close()
	}
}

// The attack table's "a custodian decrypting", KMS side: under the KMS key
// policy made from the signed policy, KMS denies the custodian's Decrypt
// of a branch key, and the denial is recorded twice over: in KMS's own
// trail (CloudTrail's part) and, where the custodian's client is audited,
// in the audit log with the error code.
func TestCustodianDecryptDeniedByKMSAndAudited(t *testing.T) {
	ctx := context.Background()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	user := func(name string) string { return "arn:aws:iam::" + l.Account() + ":user/" + name }
	store, err := keystore.OpenFileStore(t.TempDir())
	require.NoError(t, err)
	defer store.Close()
	w := newWorld(t, store)
	p := w.basePolicy("*")
	p.Revision = 1
	p.Custodians[0].AWSPrincipal = user("alice")
	p.Services[0].AWSPrincipal = user("svc")
	doc, err := custody.GenerateKMSKeyPolicy(p.KMSKeyPolicyConfig(l.Account(), "attack-store"))
	require.NoError(t, err)
	aliceKMS := l.Client("alice")
	key, err := aliceKMS.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(string(doc))})
	require.NoError(t, err)
	audited, err := keyring.NewAuditedKMS(aliceKMS, keyring.AuditConfig{Log: w.log, Hasher: w.hasher, Actor: "alice"})
	require.NoError(t, err)
	cfg := keyring.BranchKeysConfig{Store: store, Client: aliceKMS, KMSKeyARN: aws.ToString(key.KeyMetadata.Arn), LogicalStoreName: "attack-store"}
	keys, err := custody.NewBranchKeys(cfg)
	require.NoError(t, err)
	v, err := keys.CreateBranchKey(ctx, testKey)
	require.NoError(t, err)

	cfg.Client = audited
	asCustodian, err := keyring.NewBranchKeys(cfg)
	require.NoError(t, err)
	_, err = asCustodian.Unwrap(ctx, v)
	require.Error(t, err)
	require.True(t, isAccessDenied(err), "KMS denies it: %v", err)

	last := w.lastRecord()
	require.Equal(t, audit.KindKeyUse, last.Kind)
	require.Equal(t, "alice", last.Actor)
	require.Equal(t, "failed: AccessDeniedException", last.Reason)
	require.Equal(t, w.hasher.BranchKey(testKey), last.Key)
	var denied bool
	for _, ev := range l.Trail() {
		if ev.Principal == user("alice") && ev.Operation == "Decrypt" && ev.Result == "AccessDeniedException" {
			denied = true
		}
	}
	require.True(t, denied, "KMS's trail records the denied Decrypt")
}

func isAccessDenied(err error) bool {
	var api interface{ ErrorCode() string }
	return errors.As(err, &api) && api.ErrorCode() == "AccessDeniedException"
}
