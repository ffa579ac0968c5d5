package custody_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/phicrypt/phicrypt/audit"
	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/dynamodb"
	"github.com/phicrypt/phicrypt/keystore/postgres"
	"github.com/phicrypt/phicrypt/keystore/sqlite"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
)

// signers are the test's principals, each with a key derived from its
// name (so failures reproduce).
func signer(t testing.TB, name string) *custody.Signer {
	t.Helper()
	seed := sha256.Sum256([]byte("custody test key " + name))
	s, err := custody.NewSigner(name, ed25519.NewKeyFromSeed(seed[:]))
	require.NoError(t, err)
	return s
}

// world is an Authority over a record store, audited into a log, on a
// clock the test moves.
type world struct {
	t         *testing.T
	ctx       context.Context
	store     custody.RecordStore
	log       *audit.Log
	hasher    *audit.Hasher
	now       *atomic.Int64
	auth      *custody.Authority
	alice     *custody.Signer // custodians
	bob       *custody.Signer
	carol     *custody.Signer
	svc       *custody.Signer // a service
	audrey    *custody.Signer // an auditor
	mallory   *custody.Signer // holds no role
	installed *custody.Policy
}

const testKey = "tenant-general-hospital"

func newWorld(t *testing.T, store custody.RecordStore) *world {
	t.Helper()
	skey, _, err := note.GenerateKey(nil, "audit.test/custody")
	require.NoError(t, err)
	ns, err := note.NewSigner(skey)
	require.NoError(t, err)
	log, err := audit.NewLog(audit.Config{Sink: audit.NewMemorySink(), Signer: ns})
	require.NoError(t, err)
	hasher, err := audit.NewHasher(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	w := &world{t: t, ctx: context.Background(), store: store, log: log, hasher: hasher, now: new(atomic.Int64),
		alice: signer(t, "alice"), bob: signer(t, "bob"), carol: signer(t, "carol"),
		svc: signer(t, "svc-patients"), audrey: signer(t, "audrey"), mallory: signer(t, "mallory")}
	w.now.Store(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC).UnixNano())
	w.auth, err = custody.NewAuthority(custody.AuthorityConfig{Store: store, Audit: log, Hasher: hasher,
		Now: func() time.Time { return time.Unix(0, w.now.Load()).UTC() }})
	require.NoError(t, err)
	return w
}

func (w *world) advance(d time.Duration) { w.now.Add(int64(d)) }

// basePolicy: three custodians, destructive changes and policy changes 2
// of 3, rotation 1; one service that may rotate by usage; one auditor.
func (w *world) basePolicy(scope string) *custody.Policy {
	return &custody.Policy{
		Scope:      scope,
		Custodians: []custody.Principal{w.alice.Principal(), w.bob.Principal(), w.carol.Principal()},
		Services:   []custody.Principal{w.svc.Principal()},
		Auditors:   []custody.Principal{w.audrey.Principal()},
		Quorum: map[custody.Action]int{custody.ActionSetPolicy: 2, custody.ActionDestroyKey: 2,
			custody.ActionRotate: 1, custody.ActionDisable: 2},
		ServiceMayRotate: custody.ServiceRotation{ByUsage: true},
	}
}

// approve collects approvals of r from signers.
func approve(t testing.TB, r *custody.Request, signers ...*custody.Signer) []custody.Approval {
	t.Helper()
	out := make([]custody.Approval, 0, len(signers))
	for _, s := range signers {
		a, err := s.Approve(r)
		require.NoError(t, err)
		out = append(out, a)
	}
	return out
}

// install proposes p (by the first signer) and authorizes it with every
// signer's approval.
func (w *world) install(p *custody.Policy, signers ...*custody.Signer) *custody.Authorization {
	w.t.Helper()
	r, err := w.auth.Propose(w.ctx, signers[0].Principal().Name, custody.Change{Action: custody.ActionSetPolicy, NewPolicy: p}, time.Hour)
	require.NoError(w.t, err)
	auth, err := w.auth.Authorize(w.ctx, r, approve(w.t, r, signers...))
	require.NoError(w.t, err)
	return auth
}

// propose is a change of testKey proposed by alice.
func (w *world) propose(c custody.Change) *custody.Request {
	w.t.Helper()
	r, err := w.auth.Propose(w.ctx, "alice", c, time.Hour)
	require.NoError(w.t, err)
	return r
}

// lastRecord is the newest audit record, parsed.
func (w *world) lastRecord() audit.Record {
	w.t.Helper()
	n := w.log.Size()
	require.Positive(w.t, n)
	recs, err := w.log.Records(n-1, n)
	require.NoError(w.t, err)
	r, err := audit.ParseRecord(recs[0])
	require.NoError(w.t, err)
	return r
}

// denialsSince counts the Denial records from index from on.
func (w *world) denialsSince(from int64) int {
	w.t.Helper()
	recs, err := w.log.Records(from, w.log.Size())
	require.NoError(w.t, err)
	n := 0
	for _, b := range recs {
		r, err := audit.ParseRecord(b)
		require.NoError(w.t, err)
		if r.Kind == audit.KindDenial {
			n++
		}
	}
	return n
}

var sentinels = []error{custody.ErrInvalid, custody.ErrRoleConflict, custody.ErrNotPermitted, custody.ErrNoPolicy,
	custody.ErrForgedApproval, custody.ErrReplayed, custody.ErrExpired, custody.ErrDuplicateSigner,
	custody.ErrNotCustodian, custody.ErrTooFewApprovals, custody.ErrStalePolicy}

// requireOnly checks err is want and none of the other sentinels.
func requireOnly(t testing.TB, err, want error) {
	t.Helper()
	require.ErrorIs(t, err, want)
	for _, s := range sentinels {
		if s != want {
			require.NotErrorIs(t, err, s, "the error also matches another sentinel: %v", err)
		}
	}
}

func rotateKey() custody.Change {
	return custody.Change{Action: custody.ActionRotate, BranchKeyID: testKey}
}

func destroyKey() custody.Change {
	return custody.Change{Action: custody.ActionDestroyKey, BranchKeyID: testKey}
}

// The separation-of-duty attack table: each attack is refused with its
// own error, and the refusal is in the audit log (a Denial record naming
// the actor, the operation, the key's digest and the reason in words).
func TestSeparationOfDutyAttacks(t *testing.T) {
	for _, kind := range storeKinds(t) {
		t.Run(kind, func(t *testing.T) { runAttacks(t, kind) })
	}
}

func runAttacks(t *testing.T, kind string) {
	for _, tc := range attacks {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, recordStore(t, kind))
			w.installed = w.basePolicy("tenant-*")
			w.install(w.installed, w.alice, w.bob)
			before := w.log.Size()
			err := tc.attack(w)
			requireOnly(t, err, tc.want)
			require.NotContains(t, err.Error(), testKey, "an error names the branch key by its fingerprint only")
			require.Equal(t, 1, w.denialsSince(before), "one denial is recorded")
			rec := w.lastRecord()
			require.Equal(t, audit.KindDenial, rec.Kind)
			require.Equal(t, custody.Reason(tc.want), rec.Reason)
			require.Equal(t, tc.actor, rec.Actor)
			require.Equal(t, tc.operation.String(), rec.Operation)
			require.Equal(t, w.hasher.BranchKey(tc.key).String(), rec.Key.String())
			require.Empty(t, rec.Approvers)
		})
	}
}

var attacks = []struct {
	name      string
	want      error
	actor     string
	operation custody.Action
	key       string
	attack    func(w *world) error
}{
	{"a service proposes a change", custody.ErrNotPermitted, "svc-patients", custody.ActionDestroyKey, testKey,
		func(w *world) error {
			_, err := w.auth.Propose(w.ctx, "svc-patients", destroyKey(), time.Hour)
			return err
		}},
	{"a service's request, approved by custodians, is still refused", custody.ErrNotPermitted, "svc-patients", custody.ActionRotate, testKey,
		func(w *world) error {
			r := w.propose(rotateKey())
			r.Proposer = "svc-patients" // built by hand, bypassing Propose
			_, err := w.auth.Authorize(w.ctx, r, approve(w.t, r, w.alice, w.bob))
			return err
		}},
	{"a custodian decrypts (library side)", custody.ErrNotPermitted, "alice", custody.ActionDecrypt, testKey,
		func(w *world) error { return w.auth.Check(w.ctx, "alice", testKey, custody.ActionDecrypt) }},
	{"a service rotates by age where the policy allows only by usage", custody.ErrNotPermitted, "svc-patients", custody.ActionRotateByAge, testKey,
		func(w *world) error { return w.auth.Check(w.ctx, "svc-patients", testKey, custody.ActionRotateByAge) }},
	{"one approval where two are required", custody.ErrTooFewApprovals, "alice", custody.ActionDestroyKey, testKey,
		func(w *world) error {
			r := w.propose(destroyKey())
			_, err := w.auth.Authorize(w.ctx, r, approve(w.t, r, w.alice))
			return err
		}},
	{"a forged signature", custody.ErrForgedApproval, "alice", custody.ActionDestroyKey, testKey,
		func(w *world) error {
			r := w.propose(destroyKey())
			aps := approve(w.t, r, w.alice, w.bob)
			aps[1].Signature[7] ^= 1
			_, err := w.auth.Authorize(w.ctx, r, aps)
			return err
		}},
	{"bob's name on mallory's signature", custody.ErrForgedApproval, "alice", custody.ActionDestroyKey, testKey,
		func(w *world) error {
			r := w.propose(destroyKey())
			aps := approve(w.t, r, w.alice, w.mallory)
			aps[1].Signer = "bob"
			_, err := w.auth.Authorize(w.ctx, r, aps)
			return err
		}},
	{"a replayed approval (from an earlier request)", custody.ErrReplayed, "alice", custody.ActionDestroyKey, testKey,
		func(w *world) error {
			first := w.propose(destroyKey())
			old := approve(w.t, first, w.bob)
			r := w.propose(destroyKey()) // the same change, a new nonce
			_, err := w.auth.Authorize(w.ctx, r, append(approve(w.t, r, w.alice), old...))
			return err
		}},
	{"a replayed request", custody.ErrReplayed, "alice", custody.ActionRotate, testKey,
		func(w *world) error {
			r := w.propose(rotateKey())
			aps := approve(w.t, r, w.alice)
			if _, err := w.auth.Authorize(w.ctx, r, aps); err != nil {
				return fmt.Errorf("the first authorization failed: %w", err)
			}
			_, err := w.auth.Authorize(w.ctx, r, aps)
			return err
		}},
	{"an expired request", custody.ErrExpired, "alice", custody.ActionDestroyKey, testKey,
		func(w *world) error {
			r := w.propose(destroyKey())
			aps := approve(w.t, r, w.alice, w.bob)
			w.advance(time.Hour)
			_, err := w.auth.Authorize(w.ctx, r, aps)
			return err
		}},
	{"one signer counted twice", custody.ErrDuplicateSigner, "alice", custody.ActionDestroyKey, testKey,
		func(w *world) error {
			r := w.propose(destroyKey())
			_, err := w.auth.Authorize(w.ctx, r, approve(w.t, r, w.alice, w.alice))
			return err
		}},
	{"a signer who is not a custodian", custody.ErrNotCustodian, "alice", custody.ActionDestroyKey, testKey,
		func(w *world) error {
			r := w.propose(destroyKey())
			_, err := w.auth.Authorize(w.ctx, r, approve(w.t, r, w.alice, w.svc))
			return err
		}},
	{"a quorum lowered by a policy change with too few approvals", custody.ErrTooFewApprovals, "alice", custody.ActionSetPolicy, "tenant-*",
		func(w *world) error {
			lowered := &custody.Policy{Scope: "tenant-*", Custodians: []custody.Principal{w.alice.Principal()},
				Quorum: map[custody.Action]int{custody.ActionSetPolicy: 1}}
			r, err := w.auth.Propose(w.ctx, "alice", custody.Change{Action: custody.ActionSetPolicy, NewPolicy: lowered}, time.Hour)
			if err != nil {
				return fmt.Errorf("propose: %w", err)
			}
			_, err = w.auth.Authorize(w.ctx, r, approve(w.t, r, w.alice))
			return err
		}},
	{"a narrower policy that would take keys from the quorum in force", custody.ErrTooFewApprovals, "alice", custody.ActionSetPolicy, testKey,
		func(w *world) error {
			mine := &custody.Policy{Scope: testKey, Custodians: []custody.Principal{w.alice.Principal()},
				Quorum: map[custody.Action]int{custody.ActionSetPolicy: 1}}
			r, err := w.auth.Propose(w.ctx, "alice", custody.Change{Action: custody.ActionSetPolicy, NewPolicy: mine}, time.Hour)
			if err != nil {
				return fmt.Errorf("propose: %w", err)
			}
			_, err = w.auth.Authorize(w.ctx, r, approve(w.t, r, w.alice))
			return err
		}},
	{"a request proposed under a policy since replaced", custody.ErrStalePolicy, "alice", custody.ActionDestroyKey, testKey,
		func(w *world) error {
			r := w.propose(destroyKey())
			aps := approve(w.t, r, w.alice, w.bob)
			next := w.basePolicy("tenant-*")
			next.Quorum[custody.ActionRotate] = 2
			w.install(next, w.alice, w.bob)
			_, err := w.auth.Authorize(w.ctx, r, aps)
			return err
		}},
	{"a policy making one principal custodian and service", custody.ErrRoleConflict, "alice", custody.ActionSetPolicy, "tenant-*",
		func(w *world) error {
			p := w.basePolicy("tenant-*")
			p.Services = append(p.Services, w.bob.Principal())
			_, err := w.auth.Propose(w.ctx, "alice", custody.Change{Action: custody.ActionSetPolicy, NewPolicy: p}, time.Hour)
			return err
		}},
}

// Authorized changes are audited with their approvers; the request is
// recorded as applied.
func TestAuthorizeRecordsTheChange(t *testing.T) {
	eachStore(t, func(t *testing.T, store custody.RecordStore) {
		w := newWorld(t, store)
		inst := w.install(w.basePolicy("tenant-*"), w.bob, w.alice)
		require.Equal(t, []string{"alice", "bob"}, inst.Approvers)
		require.Nil(t, inst.Policy, "the first policy replaced none")
		rec := w.lastRecord()
		require.Equal(t, audit.KindAdminChange, rec.Kind)
		require.Equal(t, "set-policy", rec.Operation)
		require.Equal(t, "bob", rec.Actor)
		require.Equal(t, []string{"alice", "bob"}, rec.Approvers)

		r := w.propose(destroyKey())
		auth, err := w.auth.Authorize(w.ctx, r, approve(t, r, w.carol, w.alice))
		require.NoError(t, err)
		require.Equal(t, []string{"alice", "carol"}, auth.Approvers)
		id, err := r.ID()
		require.NoError(t, err)
		require.Equal(t, id, auth.ID)
		require.Equal(t, "tenant-*", auth.Policy.Scope)
		_, err = w.store.GetRecord(w.ctx, custody.RecordAppliedRequest, id.String())
		require.NoError(t, err, "the request is recorded as applied")
		rec = w.lastRecord()
		require.Equal(t, audit.KindAdminChange, rec.Kind)
		require.Equal(t, "destroy-key", rec.Operation)
		require.Equal(t, []string{"alice", "carol"}, rec.Approvers)
		require.Equal(t, w.hasher.BranchKey(testKey).String(), rec.Key.String())
	})
}

// The first policy of a scope is anchored in its own custodians; a
// replacement needs the set-policy quorum of the policy in force and of
// the new one (as TUF's root rotation does).
func TestPolicyReplacementNeedsBothQuorums(t *testing.T) {
	eachStore(t, func(t *testing.T, store custody.RecordStore) {
		w := newWorld(t, store)
		_, err := w.auth.PolicyFor(w.ctx, testKey)
		requireOnly(t, err, custody.ErrNoPolicy)
		_, err = w.auth.Propose(w.ctx, "alice", destroyKey(), time.Hour)
		requireOnly(t, err, custody.ErrNoPolicy)

		w.install(w.basePolicy("tenant-*"), w.alice, w.bob)
		got, err := w.auth.PolicyFor(w.ctx, testKey)
		require.NoError(t, err)
		require.Equal(t, uint64(1), got.Revision)

		// New custodians dave and erin, 2 of 2: the old quorum (2 of alice,
		// bob, carol) and the new (dave and erin) must both sign.
		dave, erin := signer(t, "dave"), signer(t, "erin")
		next := &custody.Policy{Scope: "tenant-*", Custodians: []custody.Principal{dave.Principal(), erin.Principal()},
			Quorum: map[custody.Action]int{custody.ActionSetPolicy: 2}}
		r, err := w.auth.Propose(w.ctx, "carol", custody.Change{Action: custody.ActionSetPolicy, NewPolicy: next}, time.Hour)
		require.NoError(t, err)
		require.Equal(t, uint64(2), r.NewPolicy.Revision, "Propose sets the revision")
		require.Zero(t, next.Revision, "Propose does not change the caller's policy")
		for _, signers := range [][]*custody.Signer{{w.alice, w.bob}, {dave, erin}, {w.alice, dave, erin}} {
			_, err := w.auth.Authorize(w.ctx, r, approve(t, r, signers...))
			requireOnly(t, err, custody.ErrTooFewApprovals)
		}
		auth, err := w.auth.Authorize(w.ctx, r, approve(t, r, w.alice, dave, w.carol, erin))
		require.NoError(t, err)
		require.Equal(t, []string{"alice", "carol", "dave", "erin"}, auth.Approvers)
		require.Equal(t, uint64(1), auth.Policy.Revision)
		got, err = w.auth.PolicyFor(w.ctx, testKey)
		require.NoError(t, err)
		require.Equal(t, uint64(2), got.Revision)
		require.Equal(t, "dave", got.Custodians[0].Name)

		// The old custodians now hold no role.
		_, err = w.auth.Propose(w.ctx, "alice", destroyKey(), time.Hour)
		requireOnly(t, err, custody.ErrNotPermitted)
	})
}

// The most specific scope wins, and installing a narrower one needs the
// quorum of the policy that governed its keys.
func TestMostSpecificScopeWins(t *testing.T) {
	eachStore(t, func(t *testing.T, store custody.RecordStore) {
		w := newWorld(t, store)
		w.install(w.basePolicy("*"), w.alice, w.bob)
		dave := signer(t, "dave")
		narrow := &custody.Policy{Scope: "tenant-*", Custodians: []custody.Principal{dave.Principal(), w.carol.Principal()},
			Services: []custody.Principal{w.svc.Principal()}, Quorum: map[custody.Action]int{custody.ActionSetPolicy: 1}}
		r, err := w.auth.Propose(w.ctx, "alice", custody.Change{Action: custody.ActionSetPolicy, NewPolicy: narrow}, time.Hour)
		require.NoError(t, err)
		_, err = w.auth.Authorize(w.ctx, r, approve(t, r, dave))
		requireOnly(t, err, custody.ErrTooFewApprovals) // "*" needs 2 of its own
		_, err = w.auth.Authorize(w.ctx, r, approve(t, r, w.alice, w.bob, dave))
		require.NoError(t, err)

		for id, want := range map[string]string{testKey: "tenant-*", "tenant-": "tenant-*", "clinic-1": "*", "tenant": "*"} {
			p, err := w.auth.PolicyFor(w.ctx, id)
			require.NoError(t, err)
			require.Equal(t, want, p.Scope, "key %q", id)
		}
		exact := &custody.Policy{Scope: testKey, Custodians: []custody.Principal{w.carol.Principal()},
			Quorum: map[custody.Action]int{custody.ActionSetPolicy: 1}}
		w.install(exact, w.carol) // carol is a custodian of tenant-* (quorum 1) and of the new one
		p, err := w.auth.PolicyFor(w.ctx, testKey)
		require.NoError(t, err)
		require.Equal(t, testKey, p.Scope)
		all, err := w.auth.Policies(w.ctx)
		require.NoError(t, err)
		require.Len(t, all, 3)
		require.Equal(t, []string{"*", "tenant-*", testKey}, []string{all[0].Scope, all[1].Scope, all[2].Scope})
		// dave governs tenant-* but not the key with its own policy.
		_, err = w.auth.Propose(w.ctx, "dave", destroyKey(), time.Hour)
		requireOnly(t, err, custody.ErrNotPermitted)
	})
}

// A stored policy whose record was edited in the store (a signature, the
// encoding, or a record moved to another scope) fails verification and
// is not used.
func TestStoredPolicyIsVerified(t *testing.T) {
	store := recordStore(t, "sqlite")
	w := newWorld(t, store)
	w.install(w.basePolicy("tenant-*"), w.alice, w.bob)
	rec, err := store.GetRecord(w.ctx, custody.RecordPolicy, "tenant-*")
	require.NoError(t, err)
	for name, edit := range map[string]func(v []byte) (string, []byte){
		"a signature bit":   func(v []byte) (string, []byte) { v[len(v)-1] ^= 1; return "tenant-*", v },
		"truncated":         func(v []byte) (string, []byte) { return "tenant-*", v[:len(v)-1] },
		"trailing byte":     func(v []byte) (string, []byte) { return "tenant-*", append(v, 0) },
		"moved to a scope":  func(v []byte) (string, []byte) { return "*", v },
		"one approval less": func(v []byte) (string, []byte) { return "tenant-*", dropLastApproval(t, v) },
	} {
		t.Run(name, func(t *testing.T) {
			s := recordStore(t, "file")
			scope, v := edit(bytes.Clone(rec.Value))
			_, err := s.PutRecord(w.ctx, custody.RecordPolicy, scope, v, 0)
			require.NoError(t, err)
			a, err := custody.NewAuthority(custody.AuthorityConfig{Store: s})
			require.NoError(t, err)
			_, err = a.PolicyFor(w.ctx, testKey)
			require.Error(t, err)
			require.NotErrorIs(t, err, custody.ErrNoPolicy)
		})
	}
}

// dropLastApproval rewrites a stored signed record with one approval
// fewer (format in docs/FORMAT.md): the last approval is its final
// 2+len bytes, and the count byte follows the request.
func dropLastApproval(t *testing.T, v []byte) []byte {
	reqLen := int(v[1])<<16 | int(v[2])<<8 | int(v[3])
	countAt := 4 + reqLen
	at := countAt + 1
	for range int(v[countAt]) - 1 {
		at += 2 + (int(v[at])<<8 | int(v[at+1]))
	}
	out := append(bytes.Clone(v[:at]), []byte{}...)
	out[countAt]--
	require.Less(t, len(out), len(v))
	return out
}

// Two processes authorizing the same request at once: one wins, the
// others get ErrReplayed.
func TestConcurrentAuthorizeAppliesOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, store custody.RecordStore) {
		w := newWorld(t, store)
		w.install(w.basePolicy("tenant-*"), w.alice, w.bob)
		r := w.propose(rotateKey())
		aps := approve(t, r, w.alice)
		var wins atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				if _, err := w.auth.Authorize(w.ctx, r, aps); err == nil {
					wins.Add(1)
				} else {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		require.Equal(t, int32(1), wins.Load())
		for err := range errs {
			requireOnly(t, err, custody.ErrReplayed)
		}
	})
}

// Request lifetimes and expiries are bounded.
func TestRequestLifetimeIsCapped(t *testing.T) {
	w := newWorld(t, recordStore(t, "file"))
	w.install(w.basePolicy("tenant-*"), w.alice, w.bob)
	for _, d := range []time.Duration{0, -time.Second, custody.MaxRequestLifetime + time.Second} {
		_, err := w.auth.Propose(w.ctx, "alice", rotateKey(), d)
		requireOnly(t, err, custody.ErrInvalid)
	}
	r := w.propose(rotateKey())
	r.Expiry = r.Expiry.Add(custody.MaxRequestLifetime)
	_, err := w.auth.Authorize(w.ctx, r, approve(t, r, w.alice))
	requireOnly(t, err, custody.ErrInvalid)
	_, err = w.auth.Authorize(w.ctx, r, slices.Repeat(approve(t, r, w.alice), custody.MaxApprovals+1))
	requireOnly(t, err, custody.ErrInvalid)
	_, err = w.auth.Authorize(w.ctx, nil, nil)
	requireOnly(t, err, custody.ErrInvalid)
}

// A failing audit log (a file log whose files were closed) fails the
// authorization closed, and a refusal still says why it was refused.
func TestAuditFailureFailsClosed(t *testing.T) {
	w := newWorld(t, recordStore(t, "file"))
	w.install(w.basePolicy("tenant-*"), w.alice, w.bob)
	sink, err := audit.OpenFileSink(t.TempDir())
	require.NoError(t, err)
	skey, _, err := note.GenerateKey(nil, "audit.test/closed")
	require.NoError(t, err)
	ns, err := note.NewSigner(skey)
	require.NoError(t, err)
	down, err := audit.NewLog(audit.Config{Sink: sink, Signer: ns})
	require.NoError(t, err)
	require.NoError(t, sink.Close())
	a, err := custody.NewAuthority(custody.AuthorityConfig{Store: w.store, Audit: down, Hasher: w.hasher})
	require.NoError(t, err)
	r, err := a.Propose(w.ctx, "alice", rotateKey(), time.Hour)
	require.NoError(t, err)
	_, err = a.Authorize(w.ctx, r, approve(t, r, w.alice))
	require.ErrorIs(t, err, os.ErrClosed)
	_, err = a.Propose(w.ctx, "svc-patients", rotateKey(), time.Hour)
	require.ErrorIs(t, err, os.ErrClosed)
	require.ErrorIs(t, err, custody.ErrNotPermitted)

	_, err = custody.NewAuthority(custody.AuthorityConfig{Store: w.store, Audit: down})
	require.Error(t, err, "Audit without a Hasher")
	_, err = custody.NewAuthority(custody.AuthorityConfig{})
	require.Error(t, err, "no store")
}

// forbidden are what a path to plaintext goes through: KMS operations that
// return plaintext keys, keyring operations that unwrap, and the keyring
// types that hold or produce unwrapped keys.
var forbidden = map[string]bool{
	"Decrypt": true, "GenerateDataKey": true, "GenerateDataKeyPair": true, "Unwrap": true, "OnDecrypt": true,
	"NewHierarchical": true, "NewRawAES": true, "NewKMS": true, "NewMulti": true, "AcquireActive": true,
	"Hierarchical": true, "Keyring": true, "Secret": true, "DecryptionMaterials": true,
	"OpenEscrow": true,
}

// breakGlass is the one exception, by file: RecoverBranchKeys opens branch
// keys' escrow copies with the escrow private key (which only
// AuthorizeRecovery reassembles, through the quorum) to wrap them under a
// new KMS key at once. No other file may name these.
var breakGlass = map[string]map[string]bool{"recover_branchkeys.go": {"OpenEscrow": true, "Secret": true}}

// plaintextPaths lists, for the non-test Go files of dir, every call of or
// reference to a forbidden name, and every exported function or method
// whose name says it decrypts, unwraps or opens.
func plaintextPaths(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	var found []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if forbidden[n.Sel.Name] && !breakGlass[filepath.Base(name)][n.Sel.Name] {
					found = append(found, fset.Position(n.Pos()).String()+": "+n.Sel.Name)
				}
			case *ast.FuncDecl:
				lower := strings.ToLower(n.Name.Name)
				if n.Name.IsExported() && (strings.Contains(lower, "decrypt") && !strings.Contains(lower, "decryptionversion") ||
					strings.Contains(lower, "unwrap") || strings.HasPrefix(lower, "open") || strings.Contains(lower, "plaintext")) {
					found = append(found, fset.Position(n.Pos()).String()+": func "+n.Name.Name)
				}
			}
			return true
		})
	}
	return found
}

// "A custodian decrypting", library side: custody (and the internal
// package it makes branch keys with) calls no KMS operation that returns a
// plaintext key, no keyring operation that unwraps one, names no keyring
// type that holds one, and exports nothing that decrypts; the check finds
// such paths in keyring, so it can see them. This is what the library
// offers; a custodian's program could still import keyring itself, which
// is why the custodian's KMS principal must also be denied kms:Decrypt
// (the KMS key policy, checked on the KMS side).
func TestCustodyHasNoDecryptPath(t *testing.T) {
	require.Empty(t, plaintextPaths(t, "."))
	require.Empty(t, plaintextPaths(t, "../internal/branchkey"))
	require.NotEmpty(t, plaintextPaths(t, "../keyring"), "the check finds nothing in keyring: it cannot see a decrypt path")
}

// Three custodians install a policy for every key whose id starts with
// "tenant-": destroying a key needs two of them, and the service may only
// encrypt and decrypt. A destruction approved by one custodian is refused;
// approved by two, it is authorized once.
func ExampleNewAuthority() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "custody-example")
	defer os.RemoveAll(dir)
	store, err := keystore.OpenFileStore(dir) // or SQLite, PostgreSQL, DynamoDB: every store keeps records
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	auth, err := custody.NewAuthority(custody.AuthorityConfig{Store: store})
	if err != nil {
		fmt.Println(err)
		return
	}
	alice, bob, carol := exampleSigner("alice"), exampleSigner("bob"), exampleSigner("carol")
	policy := &custody.Policy{
		Scope:      "tenant-*",
		Custodians: []custody.Principal{alice.Principal(), bob.Principal(), carol.Principal()},
		Services:   []custody.Principal{exampleSigner("svc-patients").Principal()},
		Quorum:     map[custody.Action]int{custody.ActionSetPolicy: 2, custody.ActionDestroyKey: 2},
	}
	install, err := auth.Propose(ctx, "alice", custody.Change{Action: custody.ActionSetPolicy, NewPolicy: policy}, time.Hour)
	if err != nil {
		fmt.Println(err)
		return
	}
	a1, _ := alice.Approve(install)
	a2, _ := bob.Approve(install)
	if _, err := auth.Authorize(ctx, install, []custody.Approval{a1, a2}); err != nil {
		fmt.Println(err)
		return
	}

	destroy, err := auth.Propose(ctx, "carol", custody.Change{Action: custody.ActionDestroyKey, BranchKeyID: "tenant-general-hospital"}, time.Hour)
	if err != nil {
		fmt.Println(err)
		return
	}
	c, _ := carol.Approve(destroy)
	_, err = auth.Authorize(ctx, destroy, []custody.Approval{c})
	fmt.Println(errors.Is(err, custody.ErrTooFewApprovals))
	b, _ := bob.Approve(destroy)
	ok, err := auth.Authorize(ctx, destroy, []custody.Approval{c, b})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ok.Approvers) // now carry out the destruction
	_, err = auth.Authorize(ctx, destroy, []custody.Approval{c, b})
	fmt.Println(errors.Is(err, custody.ErrReplayed))
	fmt.Println(auth.Check(ctx, "svc-patients", "tenant-general-hospital", custody.ActionDestroyKey) != nil)
	// Output:
	// true
	// [bob carol]
	// true
	// true
}

// A request travels as bytes: each approver parses it, reviews the
// change, and sends back an approval.
func ExampleSigner_Approve() {
	dave := exampleSigner("dave")
	r := &custody.Request{
		Change:   custody.Change{Action: custody.ActionRotate, BranchKeyID: "tenant-general-hospital"},
		Proposer: "alice",
		Expiry:   time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC),
	}
	wire, err := r.MarshalBinary()
	if err != nil {
		fmt.Println(err)
		return
	}
	received, err := custody.ParseRequest(wire)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(received.Action, received.Proposer)
	a, err := dave.Approve(received)
	if err != nil {
		fmt.Println(err)
		return
	}
	back, err := a.MarshalBinary()
	if err != nil {
		fmt.Println(err)
		return
	}
	approval, err := custody.ParseApproval(back)
	id, _ := r.ID()
	fmt.Println(err, approval.Signer, approval.Request == id)
	// Output:
	// rotate alice
	// <nil> dave true
}

// exampleSigner is a custodian with a fresh key.
func exampleSigner(name string) *custody.Signer {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	s, err := custody.NewSigner(name, key)
	if err != nil {
		panic(err)
	}
	return s
}

// Two first policies for one scope proposed at once: one is installed,
// the other refused as stale, whatever the order.
func TestConcurrentFirstPoliciesInstallOne(t *testing.T) {
	eachStore(t, func(t *testing.T, store custody.RecordStore) {
		w := newWorld(t, store)
		var reqs []*custody.Request
		for _, s := range []*custody.Signer{w.alice, w.bob} {
			p := w.basePolicy("tenant-*")
			p.Custodians = []custody.Principal{s.Principal()}
			p.Quorum = map[custody.Action]int{custody.ActionSetPolicy: 1}
			r, err := w.auth.Propose(w.ctx, s.Principal().Name, custody.Change{Action: custody.ActionSetPolicy, NewPolicy: p}, time.Hour)
			require.NoError(t, err)
			reqs = append(reqs, r)
		}
		_, err := w.auth.Authorize(w.ctx, reqs[1], approve(t, reqs[1], w.bob))
		require.NoError(t, err)
		_, err = w.auth.Authorize(w.ctx, reqs[0], approve(t, reqs[0], w.alice))
		requireOnly(t, err, custody.ErrStalePolicy) // proposed when no policy was in force
		p, err := w.auth.PolicyFor(w.ctx, testKey)
		require.NoError(t, err)
		require.Equal(t, "bob", p.Custodians[0].Name)
	})
}

// Services rotate only as the policy says; a rewrap of every key is
// governed by the "*" policy.
func TestServiceRotationAndStoreWideRewrap(t *testing.T) {
	w := newWorld(t, recordStore(t, "file"))
	w.install(w.basePolicy("tenant-*"), w.alice, w.bob)
	require.NoError(t, w.auth.Check(w.ctx, "svc-patients", testKey, custody.ActionRotateByUsage))
	require.NoError(t, w.auth.Check(w.ctx, "svc-patients", testKey, custody.ActionDecrypt))
	requireOnly(t, w.auth.Check(w.ctx, "svc-patients", testKey, custody.ActionRotate), custody.ErrNotPermitted)
	requireOnly(t, w.auth.Check(w.ctx, "svc-patients", "clinic-1", custody.ActionDecrypt), custody.ErrNoPolicy)
	require.NoError(t, w.auth.Check(w.ctx, "audrey", testKey, custody.ActionReadAudit))

	const arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	rewrapAll := custody.Change{Action: custody.ActionRewrap, KMSKeyARN: arn}
	_, err := w.auth.Propose(w.ctx, "alice", rewrapAll, time.Hour)
	requireOnly(t, err, custody.ErrNoPolicy) // tenant-* does not govern every key
	w.install(w.basePolicy("*"), w.alice, w.bob)
	r := w.propose(rewrapAll)
	auth, err := w.auth.Authorize(w.ctx, r, approve(t, r, w.alice, w.carol))
	require.NoError(t, err)
	require.Equal(t, "*", auth.Policy.Scope)
}

// recordStore is a fresh store of the named kind, holding records as every
// keystore store does: "file" and "sqlite" always, "postgres" at
// PHICRYPT_POSTGRES_URL and "dynamodb" in moto_server at PHICRYPT_MOTO_URL
// (a schema or table of its own, dropped afterwards).
func recordStore(t *testing.T, kind string) custody.RecordStore {
	t.Helper()
	ctx := context.Background()
	switch kind {
	case "file":
		s, err := keystore.OpenFileStore(t.TempDir())
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	case "sqlite":
		s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keys.db"))
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	case "postgres":
		return postgresStore(t, os.Getenv("PHICRYPT_POSTGRES_URL"))
	case "dynamodb":
		return dynamoStore(t, os.Getenv("PHICRYPT_MOTO_URL"))
	}
	t.Fatalf("no store %q", kind)
	return nil
}

// storeKinds are the stores this run can reach. PostgreSQL and DynamoDB
// are left out of a plain go test when their servers are not configured;
// the full suite (PHICRYPT_FULL_SUITE) fails instead.
func storeKinds(t *testing.T) []string {
	kinds := []string{"file", "sqlite"}
	for kind, env := range map[string]string{"postgres": "PHICRYPT_POSTGRES_URL", "dynamodb": "PHICRYPT_MOTO_URL"} {
		switch {
		case os.Getenv(env) != "":
			kinds = append(kinds, kind)
		case os.Getenv("PHICRYPT_FULL_SUITE") != "":
			t.Fatalf("the full suite must set %s (scripts/test.sh starts the server)", env)
		}
	}
	slices.Sort(kinds)
	return kinds
}

func postgresStore(t *testing.T, base string) custody.RecordStore {
	var b [8]byte
	rand.Read(b[:])
	schema := "phicrypt_custody_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", base)
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	_, err = admin.Exec("CREATE SCHEMA " + schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		require.NoError(t, err)
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := sql.Open("pgx", u.String())
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	s, err := postgres.New(context.Background(), db)
	require.NoError(t, err)
	return s
}

func dynamoStore(t *testing.T, endpoint string) custody.RecordStore {
	client := awsdynamodb.New(awsdynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("custody", "x", "")})
	var b [8]byte
	rand.Read(b[:])
	table := "phicrypt-custody-" + hex.EncodeToString(b[:])
	_, err := dynamodb.CreateTable(context.Background(), client, table)
	require.NoError(t, err)
	t.Cleanup(func() {
		// A retried DeleteTable (the first answer lost to a busy moto
		// server) finds the table gone: that is the end sought.
		_, err := client.DeleteTable(context.Background(), &awsdynamodb.DeleteTableInput{TableName: &table})
		var gone *ddbtypes.ResourceNotFoundException
		if !errors.As(err, &gone) {
			require.NoError(t, err)
		}
	})
	s, err := dynamodb.New(client, table)
	require.NoError(t, err)
	return s
}

// eachStore runs f on a fresh store of every kind this run can reach.
func eachStore(t *testing.T, f func(t *testing.T, store custody.RecordStore)) {
	for _, kind := range storeKinds(t) {
		t.Run(kind, func(t *testing.T) { f(t, recordStore(t, kind)) })
	}
}
