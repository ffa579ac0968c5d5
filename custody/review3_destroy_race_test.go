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

	"github.com/stretchr/testify/assert"
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

// review3CancelAfterCopy is a real store that ends the service's call
// (cancels its context, as a deadline or a crash would) right after the
// service stored an escrow copy, before it reads the version again.
type review3CancelAfterCopy struct {
	*review3PausingStore
	cancel context.CancelFunc
}

func (s *review3CancelAfterCopy) PutRecord(ctx context.Context, kind, name string, value []byte, expected uint64) (uint64, error) {
	rev, err := s.review3PausingStore.Records.PutRecord(ctx, kind, name, value, expected)
	if err == nil && kind == keyring.BranchKeyEscrowRecordKind && len(value) > 1 {
		s.cancel()
	}
	return rev, err
}

// TestReview3ShredOverTombstoneBeatsServiceWrite (a defect the review found, now fixed: the shred writes the tombstone again; the rest says how it was): a copy
// outlives its destroyed version. ShredBranchKeyEscrow
// (keyring/branchkey_escrow.go) returns at once when the record already
// holds the tombstone ("if len(rec.Value) == 1 && rec.Value[0] ==
// bkEscrowShredded { return nil }"), writing nothing, so the revision a
// service read stays current. Since this change a service (escrowTo) or
// the backfill writes its copy over a tombstone it finds over a live
// version. Sequence, with a tombstone planted over a live version (or
// written by ShredBranchKeyEscrow called too early, which FORMAT.md
// section 11 names as a case): service reads the tombstone and the
// version (live) → custodian DestroyVersion: Store.Destroy, then
// ShredBranchKeyEscrow sees the tombstone and returns → service
// PutRecord(copy, revision of the tombstone) succeeds. Only the service's
// read of the version after its put stands between this copy and the
// escrow key; if that read does not happen (the service's context ends,
// as here, or the process dies, or the store errs), the copy stays: the
// custodian's destroy succeeded and is never retried, the backfill and
// services skip destroyed versions, and keyctl escrow status shows the
// version "destroyed". Whoever holds the escrow private key then gets the
// destroyed material back (shown with OpenEscrow given the version as it
// was listed before the destroy; the HPKE copy itself needs nothing from
// the store). Crypto-shredding fails. Fix: ShredBranchKeyEscrow should
// put the tombstone again over a tombstone (a compare-and-swap that moves
// the revision on), so that a service's put with the revision it read
// fails and it reads the record again.
func TestReview3ShredOverTombstoneBeatsServiceWrite(t *testing.T) {
	for _, kind := range []string{"sqlite", "file"} {
		t.Run(kind, func(t *testing.T) { review3ShredLeavesTombstone(t, kind) })
	}
}

func review3ShredLeavesTombstone(t *testing.T, kind string) {
	ctx := t.Context()
	e := newReviewEnv(t, kind, "phicrypt-test")
	_, err := e.admin.CreateBranchKey(ctx, "key-a")
	require.NoError(t, err)
	target := e.versions(t, "key-a")[0]
	_, err = e.admin.Rotate(ctx, "key-a")
	require.NoError(t, err)
	e.replaceRecord(t, target, []byte{0x00}) // over the live version

	svcCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ps := &review3PausingStore{Store: e.store, Records: e.recs, version: target.Version}
	ps.betweenChecks = func() {
		require.NoError(t, e.admin.DestroyVersion(context.Background(), "key-a", target.Version))
	}
	store := &review3CancelAfterCopy{review3PausingStore: ps, cancel: cancel}
	cfg := e.cfg
	cfg.Store = store
	bk, err := keyring.NewBranchKeys(cfg)
	require.NoError(t, err)
	_, escErr := bk.Escrow(svcCtx, e.esc, "key-a")
	t.Logf("backfill: %v", escErr)
	require.True(t, ps.fired, "the destroy ran between the service's check and its put")

	gone, err := e.store.Get(ctx, "key-a", target.Version)
	require.NoError(t, err)
	require.Equal(t, keystore.StateDestroyed, gone.State, "the custodian's destroy succeeded")
	value, err := e.record(t, keyring.BranchKeyEscrowRecordKind, target)
	require.NoError(t, err)
	material, openErr := e.svcKeys.OpenEscrow(ctx, e.recovery, target)
	if openErr == nil {
		material.Wipe()
	}
	t.Logf("record: %d bytes; OpenEscrow of the version as listed before the destroy: %v", len(value), openErr)
	assert.True(t, len(value) == 1 && value[0] == 0x00, "an escrow copy (%d bytes) of the destroyed version is in the store", len(value))
	assert.ErrorIs(t, openErr, keyring.ErrKeyDestroyed, "the escrow key opened the destroyed version's material")
}

// review3DestroyAfterRead is a real store that runs a custodian's step
// (once) right after the service read the escrow record, and ends the
// service's call right after it stored a copy.
type review3DestroyAfterRead struct {
	keystore.Store
	keystore.Records
	once   sync.Once
	step   func()
	cancel context.CancelFunc
}

func (s *review3DestroyAfterRead) GetRecord(ctx context.Context, kind, name string) (keystore.Record, error) {
	rec, err := s.Records.GetRecord(ctx, kind, name)
	if kind == keyring.BranchKeyEscrowRecordKind {
		s.once.Do(s.step)
	}
	return rec, err
}

func (s *review3DestroyAfterRead) PutRecord(ctx context.Context, kind, name string, value []byte, expected uint64) (uint64, error) {
	rev, err := s.Records.PutRecord(ctx, kind, name, value, expected)
	if err == nil && kind == keyring.BranchKeyEscrowRecordKind && len(value) > 1 {
		s.cancel()
	}
	return rev, err
}

// The contrast to TestReview3Defect_ShredLeavesTombstoneServiceWritesOver:
// without a tombstone in the record beforehand (none, or the copy of
// another escrow key), the same interleaving, with the service's call
// ended right after any copy it stores, leaves only the tombstone: the
// custodian's ShredBranchKeyEscrow writes, so the service's
// compare-and-swap with the revision it read fails and it reads the
// tombstone. It is the tombstone left as it is that opens the gap.
func TestReview3DestroyAfterServiceReadWithoutTombstone(t *testing.T) {
	for _, before := range []string{"no record", "another key's copy"} {
		t.Run(before, func(t *testing.T) {
			ctx := t.Context()
			e := newReviewEnv(t, "sqlite", "phicrypt-test")
			_, err := e.admin.CreateBranchKey(ctx, "key-a")
			require.NoError(t, err)
			target := e.versions(t, "key-a")[0]
			_, err = e.admin.Rotate(ctx, "key-a")
			require.NoError(t, err)
			if before != "no record" {
				k, err := keyring.GenerateHPKEEscrowKey()
				require.NoError(t, err)
				other, err := keyring.NewHPKEEscrow("escrow-other", k.PublicKey())
				require.NoError(t, err)
				_, err = e.svcKeys.Escrow(ctx, other, "key-a")
				require.NoError(t, err)
			}
			svcCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			store := &review3DestroyAfterRead{Store: e.store, Records: e.recs, cancel: cancel, step: func() {
				require.NoError(t, e.admin.DestroyVersion(context.Background(), "key-a", target.Version))
			}}
			cfg := e.cfg
			cfg.Store = store
			bk, err := keyring.NewBranchKeys(cfg)
			require.NoError(t, err)
			_, escErr := bk.Escrow(svcCtx, e.esc, "key-a")
			t.Logf("backfill: %v", escErr)

			value, err := e.record(t, keyring.BranchKeyEscrowRecordKind, target)
			require.NoError(t, err)
			require.True(t, len(value) == 1 && value[0] == 0x00, "a copy (%d bytes) outlived its version", len(value))
			_, err = e.svcKeys.OpenEscrow(ctx, e.recovery, target)
			require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
		})
	}
}
