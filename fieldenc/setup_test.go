package fieldenc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/stretchr/testify/require"
)

// env is a branch key in a file store, wrapped by kmsmock over HTTP,
// behind a hierarchical keyring: what a service has.
type env struct {
	kms   *kmsmock.Local
	store keystore.Store
	bk    *keyring.BranchKeys
	kr    *keyring.Hierarchical
	id    string
	arn   string // the KMS key wrapping the branch key
}

const branchKeyID = "patients-app"

// testTTL is the keyring's cache lifetime in tests: processes see a
// rotation within it.
const testTTL = 100 * time.Millisecond

func newEnv(t testing.TB, hc keyring.HierarchicalConfig) *env {
	t.Helper()
	te := testkeys.New(t, testkeys.Options{LogicalStoreName: "fieldenc-test"})
	te.Create(t, branchKeyID)
	hc.BranchKeys, hc.BranchKeyID = te.Keys, branchKeyID
	if hc.CacheTTL == 0 {
		hc.CacheTTL = testTTL
	}
	if hc.MaxUsesPerVersion == 0 {
		hc.MaxUsesPerVersion = 1 << 30
	}
	kr, err := keyring.NewHierarchical(hc)
	require.NoError(t, err)
	t.Cleanup(func() { kr.Close() })
	return &env{kms: te.KMS, store: te.Store, bk: te.Keys, kr: kr, id: branchKeyID, arn: te.ARN}
}

func (e *env) table(t testing.TB, cfg fieldenc.Config) *fieldenc.Table {
	t.Helper()
	cfg.Keys, cfg.BranchKeyID = e.kr, e.id
	if cfg.Table == "" {
		cfg.Table = "patients"
	}
	tbl, err := fieldenc.New(cfg)
	require.NoError(t, err)
	return tbl
}

// rotate makes a new active version and has tbl read it now.
func (e *env) rotate(t testing.TB, tables ...*fieldenc.Table) keystore.BranchKeyVersion {
	t.Helper()
	v, err := testkeys.Custodian(t, e.bk).Rotate(context.Background(), e.id)
	require.NoError(t, err)
	time.Sleep(testTTL + 10*time.Millisecond) // every cache lifetime has passed
	for _, tbl := range tables {
		tbl.Refresh()
	}
	return v
}

func zeroHC() keyring.HierarchicalConfig { return keyring.HierarchicalConfig{} }

func errorsIs(err, target error) bool { return errors.Is(err, target) }
