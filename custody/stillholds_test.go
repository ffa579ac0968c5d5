package custody_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keystore"
)

// TestStillHoldsRecovery: an authorized recover request holds for a
// resume only while the policies in force would still authorize it: a
// prefix policy installed since, whose custodians did not approve, ends
// it, as does the "*" policy replaced, or the request's expiry. A request
// never applied is not found.
func TestStillHoldsRecovery(t *testing.T) {
	eachStore(t, func(t *testing.T, store custody.RecordStore) {
		w := newWorld(t, store)
		p := w.basePolicy("*")
		p.Quorum[custody.ActionRecover] = 2
		w.install(p, w.alice, w.bob)
		key, encs := splitEscrow(t, 3, 2)
		digest := custody.EscrowKeyDigest(key.PublicKey())
		propose := func() *custody.Request {
			r, err := w.auth.Propose(w.ctx, "alice", custody.Change{Action: custody.ActionRecover, EscrowKey: digest, KMSKeyARN: recoverTo}, time.Hour)
			require.NoError(t, err)
			return r
		}
		r := propose()
		id, err := r.ID()
		require.NoError(t, err)
		_, err = w.auth.StillHolds(w.ctx, id)
		require.ErrorIs(t, err, keystore.ErrNotFound, "not applied yet")

		_, _, err = w.auth.AuthorizeRecovery(w.ctx, r, approve(t, r, w.alice, w.bob), parseShares(t, encs[0], encs[1]))
		require.NoError(t, err)
		size := w.log.Size()
		auth, err := w.auth.StillHolds(w.ctx, id)
		require.NoError(t, err)
		require.Equal(t, []string{"alice", "bob"}, auth.Approvers)
		require.Equal(t, id, auth.ID)
		require.Equal(t, "*", auth.Policy.Scope)
		require.Equal(t, digest, auth.Request.EscrowKey)
		require.Equal(t, size, w.log.Size(), "StillHolds records nothing")

		// A second request, authorized under the same policies.
		r2 := propose()
		id2, err := r2.ID()
		require.NoError(t, err)
		_, _, err = w.auth.AuthorizeRecovery(w.ctx, r2, approve(t, r2, w.alice, w.bob), parseShares(t, encs[0], encs[1]))
		require.NoError(t, err)

		// A prefix policy of dave's: the recovery reaches its keys, and
		// dave did not approve it. A fresh authorization would fail the
		// same way.
		dave := signer(t, "dave")
		narrow := &custody.Policy{Scope: "tenant-*", Custodians: []custody.Principal{dave.Principal()},
			Quorum: map[custody.Action]int{custody.ActionSetPolicy: 1}}
		w.install(narrow, w.alice, w.bob, dave)
		_, err = w.auth.StillHolds(w.ctx, id)
		requireOnly(t, err, custody.ErrTooFewApprovals)

		// The "*" policy replaced (with dave's consent for his keys): the
		// request was proposed under another.
		next := w.basePolicy("*")
		next.Quorum[custody.ActionRecover] = 2
		w.install(next, w.alice, w.bob, dave)
		_, err = w.auth.StillHolds(w.ctx, id2)
		requireOnly(t, err, custody.ErrStalePolicy)

		// Expired: refused whatever the policies.
		w.advance(2 * time.Hour)
		_, err = w.auth.StillHolds(w.ctx, id2)
		requireOnly(t, err, custody.ErrExpired)
	})
}

// TestStillHoldsUntilExpiry: with the policies as they were, the
// authorization holds until the request expires, and a request of
// another action applied under them holds as well.
func TestStillHoldsUntilExpiry(t *testing.T) {
	w := newWorld(t, recordStore(t, "file"))
	w.install(w.basePolicy("*"), w.alice, w.bob)
	r := w.propose(rotateKey())
	_, err := w.auth.Authorize(w.ctx, r, approve(t, r, w.carol))
	require.NoError(t, err)
	id, err := r.ID()
	require.NoError(t, err)
	w.advance(59 * time.Minute)
	auth, err := w.auth.StillHolds(w.ctx, id)
	require.NoError(t, err)
	require.Equal(t, []string{"carol"}, auth.Approvers)
	w.advance(time.Minute)
	_, err = w.auth.StillHolds(w.ctx, id)
	requireOnly(t, err, custody.ErrExpired)
}
