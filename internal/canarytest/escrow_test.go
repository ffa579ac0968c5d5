package canarytest

import (
	"time"

	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
)

// branchKeyEscrowErrors are the failures of branch-key escrow on branch key
// canaryID, in a store of their own (so the world's store is left as other
// entries expect it): no copy, a malformed record, a full record, a copy
// moved to another version, a shredded record, an unknown key. Each must
// name the key by fingerprint only.
func branchKeyEscrowErrors(w *world) []any {
	store, err := keystore.OpenFileStore(w.t.TempDir())
	w.must(err)
	w.t.Cleanup(func() { store.Close() })
	cfg := w.bk.Config()
	cfg.Store = store
	bk, err := keyring.NewBranchKeys(cfg)
	w.must(err)
	custodian := testkeys.Custodian(w.t, bk)
	v1, err := custodian.CreateBranchKey(w.ctx, canaryID)
	w.must(err)
	v2, err := custodian.Rotate(w.ctx, canaryID)
	w.must(err)
	escrow := func(name string) (svc, recovery *keyring.HPKEEscrow) {
		priv, err := keyring.GenerateHPKEEscrowKey()
		w.must(err)
		svc, err = keyring.NewHPKEEscrow(name, priv.PublicKey())
		w.must(err)
		recovery, err = keyring.NewHPKEEscrowRecovery(name, priv)
		w.must(err)
		return svc, recovery
	}
	service := func(e *keyring.HPKEEscrow) error {
		kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: canaryID, CacheTTL: time.Minute, Escrow: e})
		w.must(err)
		defer kr.Close()
		return kr.OnEncrypt(w.ctx, &keyring.EncryptionMaterials{SuiteID: 0x0478, DataKeyLength: 32, EncryptionContext: canaryContext()})
	}
	recs := keystore.Records(store)
	put := func(v keystore.BranchKeyVersion, value []byte) {
		name := keyring.BranchKeyEscrowRecordName(v.BranchKeyID, v.Version)
		var rev uint64
		if rec, err := recs.GetRecord(w.ctx, keyring.BranchKeyEscrowRecordKind, name); err == nil {
			rev = rec.Revision
		}
		_, err := recs.PutRecord(w.ctx, keyring.BranchKeyEscrowRecordKind, name, value, rev)
		w.must(err)
	}

	var errs []error
	add := func(err error) {
		if err == nil {
			w.t.Fatal("a branch-key escrow step succeeded where it must fail")
		}
		errs = append(errs, err)
	}
	_, recoveryA := escrow("escrow-a")
	_, err = bk.OpenEscrow(w.ctx, recoveryA, v1)
	add(err) // no copy
	for _, name := range []string{"escrow-a", "escrow-b", "escrow-c", "escrow-d"} {
		svc, _ := escrow(name)
		_, err := bk.Escrow(w.ctx, svc, canaryID)
		w.must(err)
	}
	svcE, _ := escrow("escrow-e")
	add(service(svcE)) // the record is full
	_, err = bk.Escrow(w.ctx, svcE, canaryID)
	add(err)
	_, err = bk.Escrow(w.ctx, svcE, canaryID+"-absent")
	add(err)

	rec, err := recs.GetRecord(w.ctx, keyring.BranchKeyEscrowRecordKind, keyring.BranchKeyEscrowRecordName(canaryID, v1.Version))
	w.must(err)
	put(v2, rec.Value) // v1's copies moved to v2
	_, err = bk.OpenEscrow(w.ctx, recoveryA, v2)
	add(err)
	put(v2, rec.Value[:len(rec.Value)-1]) // cut short
	_, err = bk.OpenEscrow(w.ctx, recoveryA, v2)
	add(err)
	_, err = bk.EscrowStatus(w.ctx, v2, recoveryA.KeyDigest())
	add(err)
	add(service(recoveryA))

	w.must(keyring.ShredBranchKeyEscrow(w.ctx, store, canaryID, v2.Version))
	_, err = bk.OpenEscrow(w.ctx, recoveryA, v2)
	add(err)
	add(service(recoveryA))
	add(keyring.ShredBranchKeyEscrow(w.ctx, store, canaryID, "not-a-version"))

	out := make([]any, len(errs))
	for i, err := range errs {
		out[i] = err
	}
	return out
}
