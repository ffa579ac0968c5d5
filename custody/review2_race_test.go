package custody_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// A destroy racing the retrying write path: a service whose copy could
// not be stored (the record full with four other escrow keys' copies)
// retries it on every write, while a custodian frees a slot
// (DropEscrowCopies) and destroys the key. Whatever the interleaving,
// once both are done the version's record is the tombstone and no escrow
// key opens a copy.
func TestReview2DestroyRacesRetriedCopy(t *testing.T) {
	ctx := t.Context()
	e := newReviewEnv(t, "sqlite", "phicrypt-test")
	for i := range 8 {
		id := fmt.Sprintf("key-%d", i)
		_, err := e.admin.CreateBranchKey(ctx, id)
		require.NoError(t, err)
		var others []*keyring.HPKEEscrow
		var otherRec []*keyring.HPKEEscrow
		for range keyring.MaxBranchKeyEscrowCopies {
			k, err := keyring.GenerateHPKEEscrowKey()
			require.NoError(t, err)
			o, err := keyring.NewHPKEEscrow("escrow-old", k.PublicKey())
			require.NoError(t, err)
			r, err := keyring.NewHPKEEscrowRecovery("escrow-old", k)
			require.NoError(t, err)
			_, err = e.svcKeys.Escrow(ctx, o, id)
			require.NoError(t, err)
			others, otherRec = append(others, o), append(otherRec, r)
		}
		h := serviceKeyring(t, e.store, e.svc, e.oldARN, e.esc)
		enc, err := phicrypt.New(phicrypt.Config{Keyring: h})
		require.NoError(t, err)
		_, err = enc.Encrypt(ctx, []byte("x"), map[string]string{"tenant": id})
		require.ErrorIs(t, err, keyring.ErrEscrowRecord, "the record is full")
		v := e.versions(t, id)[0]

		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 20 {
				_, _ = enc.Encrypt(context.Background(), []byte("x"), map[string]string{"tenant": id})
			}
		}()
		go func() {
			defer wg.Done()
			_, err := keyring.DropEscrowCopies(context.Background(), e.store, others[i%len(others)].KeyDigest(), id)
			require.NoError(t, err)
			require.NoError(t, e.admin.DestroyKey(context.Background(), id))
		}()
		wg.Wait()

		value, err := e.record(t, keyring.BranchKeyEscrowRecordKind, v)
		require.NoError(t, err)
		require.Equal(t, []byte{0}, value, "round %d", i)
		for _, r := range append(otherRec, e.recovery) {
			_, err := e.svcKeys.OpenEscrow(ctx, r, v)
			require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
		}
	}
}
