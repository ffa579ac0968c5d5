package custody_test

// A third outside review of branch-key escrow, after the changes that let
// services and the backfill write a copy over a tombstone on a live
// version. Black-box: exported names only, kmsmock over HTTP with
// aws-sdk-go-v2, the SQLite and file stores. Helpers come from
// review_recover_outside_test.go, review2_*_test.go and
// recover_branchkeys_test.go.

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// review3PausingStore is a real store whose Get, for one version, runs a
// custodian's step (once) right after it read the version, when the
// escrow record it last read was a tombstone: the moment a service has
// decided the tombstone is over a live version and is about to write its
// copy over it.
type review3PausingStore struct {
	keystore.Store
	keystore.Records
	version string

	mu            sync.Mutex
	sawTombstone  bool
	fired         bool
	betweenChecks func()
}

func (s *review3PausingStore) GetRecord(ctx context.Context, kind, name string) (keystore.Record, error) {
	rec, err := s.Records.GetRecord(ctx, kind, name)
	if kind == keyring.BranchKeyEscrowRecordKind {
		s.mu.Lock()
		s.sawTombstone = err == nil && len(rec.Value) == 1 && rec.Value[0] == 0
		s.mu.Unlock()
	}
	return rec, err
}

func (s *review3PausingStore) Get(ctx context.Context, id, version string) (keystore.BranchKeyVersion, error) {
	v, err := s.Store.Get(ctx, id, version)
	s.mu.Lock()
	fire := version == s.version && s.sawTombstone && !s.fired
	if fire {
		s.fired = true
	}
	s.mu.Unlock()
	if fire {
		s.betweenChecks()
	}
	return v, err
}

// Crypto-shredding holds when a service writes its copy over a tombstone
// it found over a live version (planted by a writer of the store) while a
// custodian destroys that very version: the service read the version live,
// then the custodian destroyed it and its ShredBranchKeyEscrow left the
// tombstone as it was, then the service wrote its copy. Whatever path the
// service takes (decrypting under an older version, encrypting under the
// active one while the whole key is destroyed, the backfill), the record
// ends as the tombstone and no escrow key opens it.
func TestReview3DestroyRacesWriteOverTombstone(t *testing.T) {
	for _, path := range []string{"decrypt", "encrypt", "backfill"} {
		t.Run(path, func(t *testing.T) {
			ctx := t.Context()
			e := newReviewEnv(t, "sqlite", "phicrypt-test")
			_, err := e.admin.CreateBranchKey(ctx, "key-a")
			require.NoError(t, err)
			old := encryptFor(t, serviceKeyring(t, e.store, e.svc, e.oldARN, nil), "key-a", 1)
			target := e.versions(t, "key-a")[0]
			if path == "decrypt" {
				_, err = e.admin.Rotate(ctx, "key-a")
				require.NoError(t, err)
			}
			_, err = e.svcKeys.Escrow(ctx, e.esc, "key-a")
			require.NoError(t, err)
			e.replaceRecord(t, target, []byte{0x00}) // planted over the live version

			ps := &review3PausingStore{Store: e.store, Records: e.recs, version: target.Version}
			ps.betweenChecks = func() {
				if path == "decrypt" {
					require.NoError(t, e.admin.DestroyVersion(context.Background(), "key-a", target.Version))
				} else {
					require.NoError(t, e.admin.DestroyKey(context.Background(), "key-a"))
				}
			}
			cfg := e.cfg
			cfg.Store = ps
			bk, err := keyring.NewBranchKeys(cfg)
			require.NoError(t, err)
			h, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, CacheTTL: 1 << 40, PropagationWindow: 1,
				Escrow: e.esc, BranchKeyIDSupplier: func(ec map[string]string) (string, error) { return ec["tenant"], nil }})
			require.NoError(t, err)
			t.Cleanup(func() { h.Close() })
			enc, err := phicrypt.New(phicrypt.Config{Keyring: h})
			require.NoError(t, err)

			switch path {
			case "decrypt":
				_, _, err = enc.Decrypt(ctx, old[0].ct, nil)
				require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
			case "encrypt":
				_, err = enc.Encrypt(ctx, []byte("new PHI"), map[string]string{"tenant": "key-a"})
				require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
			case "backfill":
				rep, err := bk.Escrow(ctx, e.esc, "key-a")
				require.NoError(t, err)
				require.Equal(t, 1, rep.Destroyed)
			}
			require.True(t, ps.fired, "the custodian's destroy ran between the service's checks")

			value, err := e.record(t, keyring.BranchKeyEscrowRecordKind, target)
			require.NoError(t, err)
			require.Equal(t, []byte{0x00}, value, "a copy outlived its version")
			gone, err := e.store.Get(ctx, "key-a", target.Version)
			require.NoError(t, err)
			require.Equal(t, keystore.StateDestroyed, gone.State)
			_, err = e.svcKeys.OpenEscrow(ctx, e.recovery, gone)
			require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
		})
	}
}
