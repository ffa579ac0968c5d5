package keyring_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/audit"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
)

const auditedID = "patient-4711-canary"

// auditWorld is kmsmock, a branch key, and BranchKeys whose KMS client
// writes to an audit log in dir.
type auditWorld struct {
	env    *testkeys.Env
	sink   *audit.FileSink
	log    *audit.Log
	hasher *audit.Hasher
	keys   *keyring.BranchKeys
}

func newAuditWorld(t *testing.T) *auditWorld {
	t.Helper()
	e := testkeys.New(t, testkeys.Options{ClientOptions: []func(*kms.Options){func(o *kms.Options) { o.RetryMaxAttempts = 1 }}})
	e.Create(t, auditedID)
	sink, err := audit.OpenFileSink(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { sink.Close() })
	skey, _, err := note.GenerateKey(rand.Reader, "audit.test")
	require.NoError(t, err)
	signer, err := note.NewSigner(skey)
	require.NoError(t, err)
	log, err := audit.NewLog(audit.Config{Sink: sink, Signer: signer})
	require.NoError(t, err)
	hk := make([]byte, audit.MinHashKeySize)
	rand.Read(hk)
	hasher, err := audit.NewHasher(hk)
	require.NoError(t, err)
	client, err := keyring.NewAuditedKMS(e.Client, keyring.AuditConfig{Log: log, Hasher: hasher, Actor: "billing-service"})
	require.NoError(t, err)
	cfg := e.Keys.Config()
	cfg.Client = client
	keys, err := keyring.NewBranchKeys(cfg)
	require.NoError(t, err)
	return &auditWorld{env: e, sink: sink, log: log, hasher: hasher, keys: keys}
}

func (w *auditWorld) records(t *testing.T) []audit.Record {
	t.Helper()
	raw, err := w.log.Records(0, w.log.Size())
	require.NoError(t, err)
	var out []audit.Record
	for _, b := range raw {
		require.False(t, bytes.Contains(b, []byte(auditedID)), "a raw branch key id reached the audit log")
		r, err := audit.ParseRecord(b)
		require.NoError(t, err)
		out = append(out, r)
	}
	return out
}

// Every KMS call a service's keyring makes lands in the audit log, the
// branch key named by its keyed digest; a failed call is recorded with
// its error code.
func TestAuditedKMSRecordsEveryCallThatReachesKMS(t *testing.T) {
	ctx := context.Background()
	w := newAuditWorld(t)
	h, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: w.keys, BranchKeyID: auditedID, CacheTTL: time.Minute})
	require.NoError(t, err)
	defer h.Close()
	k, err := h.AcquireActive(ctx, auditedID, 1)
	require.NoError(t, err)
	k.Release()
	// A cache hit does not reach KMS and is not recorded.
	k, err = h.AcquireActive(ctx, auditedID, 1)
	require.NoError(t, err)
	k.Release()

	recs := w.records(t)
	require.Len(t, recs, 1)
	r := recs[0]
	require.Equal(t, audit.KindKeyUse, r.Kind)
	require.Equal(t, "Decrypt", r.Operation)
	require.Equal(t, "billing-service", r.Actor)
	require.Equal(t, w.hasher.BranchKey(auditedID), r.Key)
	require.False(t, r.Context.IsZero())
	require.Empty(t, r.Reason)

	// KMS refuses: the failure is recorded, with its code only.
	w.env.KMS.SetOutage(true)
	h2, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: w.keys, BranchKeyID: auditedID, CacheTTL: time.Minute})
	require.NoError(t, err)
	defer h2.Close()
	_, err = h2.AcquireActive(ctx, auditedID, 1)
	require.Error(t, err)
	recs = w.records(t)
	require.Len(t, recs, 2)
	require.Equal(t, "Decrypt", recs[1].Operation)
	require.True(t, strings.HasPrefix(recs[1].Reason, "failed"), "reason %q", recs[1].Reason)
}

// If the audit record cannot be stored, the unwrapped key is withheld:
// no key use without a record.
func TestAuditedKMSFailsClosed(t *testing.T) {
	ctx := context.Background()
	w := newAuditWorld(t)
	require.NoError(t, w.sink.Close())
	h, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: w.keys, BranchKeyID: auditedID, CacheTTL: time.Minute})
	require.NoError(t, err)
	defer h.Close()
	_, err = h.AcquireActive(ctx, auditedID, 1)
	require.ErrorIs(t, err, keyring.ErrAuditFailed)
	require.NotContains(t, err.Error(), auditedID)
}

// A stale serve (the store or KMS unreachable past CacheTTL) is recorded
// with the branch key's digest.
func TestStaleServesAreAudited(t *testing.T) {
	ctx := context.Background()
	w := newAuditWorld(t)
	const ttl = 200 * time.Millisecond
	var seen atomic.Int32
	h, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: w.keys, BranchKeyID: auditedID,
		CacheTTL: ttl, StaleIfError: 5 * time.Second,
		OnStaleUse: func(keyring.StaleUse) { seen.Add(1) },
		Audit:      &keyring.AuditConfig{Log: w.log, Hasher: w.hasher, Actor: "billing-service"}})
	require.NoError(t, err)
	defer h.Close()
	k, err := h.AcquireActive(ctx, auditedID, 1)
	require.NoError(t, err)
	k.Release()
	w.env.KMS.SetOutage(true)
	time.Sleep(ttl + 100*time.Millisecond)
	k, err = h.AcquireActive(ctx, auditedID, 1)
	require.NoError(t, err, "served stale")
	k.Release()

	var stale []audit.Record
	for _, r := range w.records(t) {
		if r.Kind == audit.KindStaleServe {
			stale = append(stale, r)
		}
	}
	require.NotEmpty(t, stale)
	require.Equal(t, w.hasher.BranchKey(auditedID), stale[0].Key)
	require.Equal(t, "billing-service", stale[0].Actor)
	require.Positive(t, seen.Load(), "the application's own OnStaleUse still runs")
}

func TestAuditConfigIsChecked(t *testing.T) {
	_, err := keyring.NewAuditedKMS(nil, keyring.AuditConfig{})
	require.Error(t, err)
	e := testkeys.New(t, testkeys.Options{})
	_, err = keyring.NewAuditedKMS(e.Client, keyring.AuditConfig{Actor: "x"})
	require.Error(t, err)
	_, err = keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: e.Keys, BranchKeyID: "a", CacheTTL: time.Minute, Audit: &keyring.AuditConfig{}})
	require.Error(t, err)
}
