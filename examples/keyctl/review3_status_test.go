package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// TestReview3EscrowStatusShowsCopyOfDestroyedVersion (a defect the review found, now fixed; the rest says how it was): keyctl
// escrow status (examples/keyctl/cmd_escrow_status.go, escrowStatus)
// counts every destroyed version as "destroyed" whatever its record holds
// ("case v.State == keystore.StateDestroyed: view.Destroyed++"), so a
// destroyed version whose escrow record still holds a copy (its material,
// which the escrow key opens) is shown "(destroyed): destroyed" and the
// command exits 0; only the --json field "escrowed": true gives it away.
// Such a copy is what a destroy interrupted between the store's Destroy
// and ShredBranchKeyEscrow leaves (custody.DestroyKey's two steps: "a
// retry finishes it", if anyone knows to retry), and what a service's
// copy written over a tombstone leaves when its re-check does not run
// (TestReview3Defect_ShredLeavesTombstoneServiceWritesOver in custody):
// crypto-shredding not done, and the routine check (OPERATIONS.md, "Break
// glass for branch keys", step 4) cannot see it. It should name such a
// version (e.g. "destroyed, COPY LEFT") and exit 1, as for MISSING and
// DAMAGED. Here the destroy's first step runs alone (Store.DestroyKey, as
// a custodian process that died before shredding).
func TestReview3EscrowStatusShowsCopyOfDestroyedVersion(t *testing.T) {
	w, _, _ := recoveryWorld(t)
	ctx := t.Context()
	_, pub := w.escrow2of3()
	id := "tenant-a"
	w.ok("create", id)
	store := w.serviceStore()
	svc := kmsClient(w.kmsURL, servicePrincipal)
	esc, err := keyring.NewHPKEEscrow("escrow-2026", pub)
	require.NoError(t, err)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: bkServiceKeyring(t, store, svc, w.keyARN, esc)})
	require.NoError(t, err)
	_, err = enc.Encrypt(ctx, []byte("x"), map[string]string{"tenant": id})
	require.NoError(t, err)
	require.NoError(t, store.DestroyKey(ctx, id))
	vs, err := store.List(ctx, id)
	require.NoError(t, err)
	require.Len(t, vs, 1)
	require.Equal(t, keystore.StateDestroyed, vs[0].State)
	rec, err := store.(keystore.Records).GetRecord(ctx, keyring.BranchKeyEscrowRecordKind, keyring.BranchKeyEscrowRecordName(id, vs[0].Version))
	require.NoError(t, err)
	require.Greater(t, len(rec.Value), 1, "the destroyed version's record still holds its copy")

	out, errOut, code := w.run("escrow", "status", "escrow-2026")
	t.Logf("escrow status (exit %d):\n%s%s", code, out, errOut)
	assert.Equal(t, 1, code, "escrow status passes a destroyed version whose escrow copy is still in the store")
	assert.NotContains(t, out, "(destroyed): destroyed\n", "the leftover copy is not named")
}
