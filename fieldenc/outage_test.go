package fieldenc_test

import (
	"context"
	"database/sql"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/stretchr/testify/require"
)

// Item 4 of the hot-path issue: Seal and Open keep working through a KMS
// outage shorter than CacheTTL + StaleIfError (each stale use reported),
// and fail with the KMS error after it; when KMS answers again they work.
func TestSealAndOpenThroughAKMSOutage(t *testing.T) {
	ctx := context.Background()
	e := testkeys.New(t, testkeys.Options{ClientOptions: []func(*kms.Options){func(o *kms.Options) { o.RetryMaxAttempts = 1 }}})
	e.Create(t, branchKeyID)
	const ttl, window = 300 * time.Millisecond, 1500 * time.Millisecond
	var stale atomic.Int32
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: e.Keys, BranchKeyID: branchKeyID,
		CacheTTL: ttl, StaleIfError: window, MaxUsesPerVersion: 1 << 30,
		OnStaleUse: func(keyring.StaleUse) { stale.Add(1) }})
	require.NoError(t, err)
	defer kr.Close()
	tbl, err := fieldenc.New(fieldenc.Config{Keys: kr, BranchKeyID: branchKeyID, Table: "patients"})
	require.NoError(t, err)
	codec, err := fieldenc.NewCodec[Patient](tbl)
	require.NoError(t, err)
	before := samplePatient()
	require.NoError(t, codec.Seal(ctx, &before))

	e.KMS.SetOutage(true)
	start := time.Now()
	for time.Since(start) < ttl+window/2 {
		p := samplePatient()
		require.NoError(t, codec.Seal(ctx, &p), "Seal at %v into the outage", time.Since(start))
		require.NoError(t, codec.Open(ctx, &p), "Open at %v into the outage", time.Since(start))
		old := before
		require.NoError(t, codec.Open(ctx, &old))
		time.Sleep(50 * time.Millisecond)
	}
	require.Positive(t, stale.Load(), "stale uses are reported")

	time.Sleep(time.Until(start.Add(ttl + window + 300*time.Millisecond)))
	p := samplePatient()
	err = codec.Seal(ctx, &p)
	require.Error(t, err, "past CacheTTL + StaleIfError Seal fails")
	require.True(t, keyring.IsTransient(err), "with the KMS failure: %v", err)
	require.ErrorContains(t, err, "fieldenc: ")

	e.KMS.SetOutage(false)
	p = samplePatient()
	require.NoError(t, codec.Seal(ctx, &p))
	require.NoError(t, codec.Open(ctx, &p))
}

// NewCodec's advice for a type Sealed cannot hold names no type that does
// not compile.
func TestUnsealableTypeAdvice(t *testing.T) {
	type nullable struct {
		Name sql.NullString `phi:"encrypt"`
	}
	type anything struct {
		Name any `phi:"encrypt"`
	}
	for _, err := range []error{fieldenc.Check[nullable](), fieldenc.Check[anything]()} {
		require.Error(t, err)
		require.NotContains(t, err.Error(), "Sealed[sql.NullString]")
		require.NotContains(t, err.Error(), "Sealed[interface {}]")
		require.ErrorContains(t, err, "cannot be sealed")
	}
	type named struct {
		Ward int32 `phi:"encrypt"`
	}
	require.ErrorContains(t, fieldenc.Check[named](), "declare it fieldenc.Sealed[int32]")
}

// Closing the keyring ends what tables derived from it: Seal and Open then
// fail with keyring.ErrClosed instead of going on with cached column keys.
func TestClosingTheKeyringEndsTheTablesKeys(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	codec, err := fieldenc.NewCodec[Patient](e.table(t, fieldenc.Config{}))
	require.NoError(t, err)
	p := samplePatient()
	require.NoError(t, codec.Seal(ctx, &p))
	sealed := p
	require.NoError(t, codec.Open(ctx, &p))
	require.NoError(t, e.kr.Close())
	q := samplePatient()
	require.ErrorIs(t, codec.Seal(ctx, &q), keyring.ErrClosed)
	require.ErrorIs(t, codec.Open(ctx, &sealed), keyring.ErrClosed)
}
