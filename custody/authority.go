package custody

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/phicrypt/phicrypt/audit"
	"github.com/phicrypt/phicrypt/keystore"
)

// RecordStore is the part of a key store an Authority keeps policies and
// applied requests in: every store of package keystore implements it.
type RecordStore interface {
	// GetRecord returns the record of kind named name, or an error
	// wrapping keystore.ErrNotFound.
	GetRecord(ctx context.Context, kind, name string) (keystore.Record, error)
	// PutRecord writes the record if its revision is expected (0: only if
	// absent, else keystore.ErrExists; otherwise keystore.ErrConflict) and
	// returns its new revision.
	PutRecord(ctx context.Context, kind, name string, value []byte, expected uint64) (uint64, error)
	// ListRecords returns every record of kind, sorted by name.
	ListRecords(ctx context.Context, kind string) ([]keystore.Record, error)
}

// AuditLog is where an Authority records what it authorizes and refuses:
// an *audit.Log.
type AuditLog interface {
	Append(e audit.Event) (int64, error)
}

// Record kinds an Authority writes (RecordStore names).
const (
	// RecordPolicy holds a signed policy, named by its scope.
	RecordPolicy = "policy"
	// RecordAppliedRequest marks a request applied, named by its RequestID
	// in hex; writing it only if absent is what refuses a replay.
	RecordAppliedRequest = "applied-request"
)

// AuthorityConfig configures an Authority.
type AuthorityConfig struct {
	// Store keeps the policies and the applied requests.
	Store RecordStore
	// Audit, optional, records every authorization (with its approvers)
	// and every refusal (with the reason, in words).
	Audit AuditLog
	// Hasher hashes the branch key ids (and scopes) audit records name;
	// required with Audit.
	Hasher *audit.Hasher
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Authority installs policies and authorizes quorum-signed changes over a
// store. It carries out no change itself, except installing policies:
// Authorize says a change may go ahead, once, and records that it did.
// It is safe for concurrent use by several goroutines and processes
// sharing the store.
//
// Trust is anchored in the first policy that covers a key, which its own
// custodians sign (as TUF's first root is): pin it by checking the
// Digest of PolicyFor against a value kept out of band. A writer of the
// store who bypasses the Authority can replace a policy with one it
// signed itself; the audit log, which records every installation, is what
// shows that.
type Authority struct {
	cfg AuthorityConfig
}

// NewAuthority returns an Authority over c.Store.
func NewAuthority(c AuthorityConfig) (*Authority, error) {
	if c.Store == nil {
		return nil, errors.New("custody: AuthorityConfig.Store is required (a key store: every keystore store keeps records)")
	}
	if c.Audit != nil && c.Hasher == nil {
		return nil, errors.New("custody: AuthorityConfig.Hasher is required with Audit (the log's audit.Hasher)")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Authority{cfg: c}, nil
}

// String names the type; an Authority holds no secret but the audit
// hasher's key, which it never prints.
func (a Authority) String() string { return "custody.Authority" }

// Format implements fmt.Formatter: every verb prints String.
func (a Authority) Format(f fmt.State, _ rune) { formatRedacted(f, a.String()) }

// Authorization is a change an Authority authorized: carry it out.
type Authorization struct {
	Request *Request
	ID      RequestID
	// Approvers are the custodians whose approvals verified, sorted.
	Approvers []string
	// Policy is the policy in force for the change (for a set-policy
	// change, the policy it replaced, nil if none).
	Policy *Policy

	install installing
}

// installed is a verified stored policy and its store revision.
type installed struct {
	policy *Policy
	digest [32]byte
	record uint64
}

// policies reads and verifies every stored policy.
func (a *Authority) policies(ctx context.Context) ([]installed, error) {
	recs, err := a.cfg.Store.ListRecords(ctx, RecordPolicy)
	if err != nil {
		return nil, wrapStep(err, "reading the policies")
	}
	out := make([]installed, 0, len(recs))
	for _, rec := range recs {
		p, err := verifyStored(rec)
		if err != nil {
			return nil, wrapStep(err, "the stored policy for %s does not verify", scopeName(rec.Name))
		}
		d, err := p.Digest()
		if err != nil {
			return nil, err
		}
		out = append(out, installed{policy: p, digest: d, record: rec.Revision})
	}
	return out, nil
}

// verifyStored checks a stored policy: a set-policy request for the
// record's scope, with its own custodians' set-policy quorum of approvals.
// (The policy it replaced also approved it; that policy is gone.)
func verifyStored(rec keystore.Record) (*Policy, error) {
	s, err := parseSigned(rec.Value)
	if err != nil {
		return nil, err
	}
	r, err := ParseRequest(s.request)
	if err != nil {
		return nil, err
	}
	if r.Action != ActionSetPolicy || r.NewPolicy.Scope != rec.Name {
		return nil, fmt.Errorf("%w: the record is not a policy for its scope", ErrInvalid)
	}
	// Signers who were custodians of the replaced policy only are skipped.
	own := slices.DeleteFunc(s.approvals, func(a Approval) bool {
		_, ok := r.NewPolicy.custodian(a.Signer)
		return !ok
	})
	if _, err := verifyApprovals(s.request, own, ActionSetPolicy, r.NewPolicy); err != nil {
		return nil, err
	}
	return r.NewPolicy, nil
}

// forKey is the installed policy governing branch key id: its own, else
// the longest matching prefix, else "*". For "" (every key) only "*".
func forKey(list []installed, id string) *installed {
	return mostSpecific(list, func(p *Policy) bool { return p.Covers(id) })
}

// forScope is the installed policy that governs every key of scope: the
// one a set-policy for scope must satisfy.
func forScope(list []installed, scope string) *installed {
	return mostSpecific(list, func(p *Policy) bool { return p.coversScope(scope) })
}

func mostSpecific(list []installed, match func(*Policy) bool) *installed {
	var best *installed
	for i := range list {
		if match(list[i].policy) && (best == nil || specificity(list[i].policy.Scope) > specificity(best.policy.Scope)) {
			best = &list[i]
		}
	}
	return best
}

// inForce is the installed policy a change must satisfy, or nil.
func inForce(list []installed, c Change) *installed {
	if c.Action == ActionSetPolicy && c.NewPolicy != nil {
		return forScope(list, c.NewPolicy.Scope)
	}
	return forKey(list, c.BranchKeyID)
}

// PolicyInForce returns the installed policy whose quorum change c needs
// first: the most specific one governing c's branch key (for a change of
// no one key, the policy for every key, "*"), or for a set-policy the one
// governing every key of the new policy's scope: the policy of that
// scope, or for the first policy of a scope the broader one in force. A
// set-policy also needs the quorum of the new policy and of every
// narrower policy it reaches (Authorize checks them all). ErrNoPolicy if
// none governs c (before the first policy is installed).
func (a *Authority) PolicyInForce(ctx context.Context, c Change) (*Policy, error) {
	list, err := a.policies(ctx)
	if err != nil {
		return nil, err
	}
	in := inForce(list, c)
	if in == nil {
		return nil, fmt.Errorf("%w: none is installed for this change", ErrNoPolicy)
	}
	return in.policy, nil
}

// PolicyFor returns the policy governing branch key id (ErrNoPolicy if
// none), verified.
func (a *Authority) PolicyFor(ctx context.Context, id string) (*Policy, error) {
	list, err := a.policies(ctx)
	if err != nil {
		return nil, err
	}
	in := forKey(list, id)
	if in == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoPolicy, keystore.Fingerprint(id))
	}
	return in.policy, nil
}

// Policies returns every installed policy, verified, sorted by scope.
func (a *Authority) Policies(ctx context.Context) ([]*Policy, error) {
	list, err := a.policies(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Policy, len(list))
	for i, in := range list {
		out[i] = in.policy
	}
	slices.SortFunc(out, func(x, y *Policy) int { return strings.Compare(x.Scope, y.Scope) })
	return out, nil
}

// Check reports whether principal may do act on branch key id under the
// policy governing it (Policy.Allows), recording a refusal in the audit
// log. A change it allows still needs its quorum, through Authorize.
func (a *Authority) Check(ctx context.Context, principal, id string, act Action) error {
	err := a.check(ctx, principal, id, act)
	if err != nil {
		return a.deny(principal, act, id, err)
	}
	return nil
}

func (a *Authority) check(ctx context.Context, principal, id string, act Action) error {
	p, err := a.PolicyFor(ctx, id)
	if err != nil {
		return err
	}
	return p.Allows(principal, act)
}

// Propose makes a request for change c by proposer, a custodian of the
// policy in force (for the first policy of a scope, of the new policy),
// expiring after lifetime (at most MaxRequestLifetime). For a set-policy
// change it sets the new policy's Revision. A refusal is audited.
func (a *Authority) Propose(ctx context.Context, proposer string, c Change, lifetime time.Duration) (*Request, error) {
	r, err := a.propose(ctx, proposer, c, lifetime)
	if err != nil {
		return nil, a.deny(proposer, c.Action, c.target(), err)
	}
	return r, nil
}

func (a *Authority) propose(ctx context.Context, proposer string, c Change, lifetime time.Duration) (*Request, error) {
	if lifetime <= 0 || lifetime > MaxRequestLifetime {
		return nil, fmt.Errorf("%w: a request's lifetime is more than 0 and at most %s", ErrInvalid, MaxRequestLifetime)
	}
	list, err := a.policies(ctx)
	if err != nil {
		return nil, err
	}
	in := inForce(list, c)
	if in == nil && c.Action != ActionSetPolicy {
		return nil, fmt.Errorf("%w: %s", ErrNoPolicy, keystore.Fingerprint(c.BranchKeyID))
	}
	if c.Action == ActionSetPolicy && c.NewPolicy != nil {
		c.NewPolicy = c.NewPolicy.clone()
		c.NewPolicy.Revision = nextRevision(in, c.NewPolicy.Scope)
	}
	r := &Request{Change: c, Proposer: proposer, Expiry: time.Unix(a.cfg.Now().Add(lifetime).Unix(), 0).UTC()}
	if err := r.check(); err != nil {
		return nil, err
	}
	if err := proposerPolicy(in, c).Allows(proposer, c.Action); err != nil {
		return nil, err
	}
	if in != nil {
		r.PolicyDigest = in.digest
	}
	rand.Read(r.Nonce[:])
	return r, nil
}

// nextRevision is the revision a new policy for scope must carry.
func nextRevision(in *installed, scope string) uint64 {
	if in != nil && in.policy.Scope == scope {
		return in.policy.Revision + 1
	}
	return 1
}

// proposerPolicy is the policy whose custodians may propose c: the one in
// force, or for the first policy of a scope, the new one.
func proposerPolicy(in *installed, c Change) *Policy {
	if in != nil {
		return in.policy
	}
	if c.NewPolicy != nil {
		return c.NewPolicy
	}
	return &Policy{Scope: c.BranchKeyID} // no roles: Allows refuses
}

// Authorize verifies request r and its approvals and, if they carry it,
// records r as applied (so it is authorized once) and returns the
// verified approvers; for a set-policy change it also installs the new
// policy. It refuses, each with its own error: ErrExpired, ErrReplayed (r
// applied already, or an approval of another request), ErrStalePolicy (the
// policy in force is not the one r was proposed under), ErrNoPolicy,
// ErrNotPermitted (the proposer is not a custodian), ErrDuplicateSigner,
// ErrNotCustodian, ErrForgedApproval, ErrTooFewApprovals, ErrInvalid.
// Every approval must be valid; the verified custodians of the policy in
// force must reach its quorum for r's action. A set-policy change needs
// the set-policy quorum of the policy in force (if any) and of the new
// policy. Every authorization and refusal is audited; an authorization
// the audit log refused is returned as an error (for a set-policy change,
// after the policy was installed: the error says so).
//
// The caller carries out the change after Authorize returns, and only
// then: the request is spent even if the change then fails.
func (a *Authority) Authorize(ctx context.Context, r *Request, approvals []Approval) (*Authorization, error) {
	auth, err := a.authorize(ctx, r, approvals)
	if r == nil {
		r = &Request{}
	}
	if err != nil {
		return nil, a.deny(r.Proposer, r.Action, r.target(), err)
	}
	if a.cfg.Audit != nil {
		e := a.cfg.Hasher.AdminChange(a.cfg.Now(), r.Proposer, r.Action.String(), r.target(), auth.Approvers)
		if _, err := a.cfg.Audit.Append(e); err != nil {
			return nil, fmt.Errorf("custody: %s was authorized and recorded as applied, but the audit log refused the record; nothing was carried out (a policy is not installed): %w", r.Action, err)
		}
	}
	if r.Action == ActionSetPolicy {
		if err := a.install(ctx, r, auth.install); err != nil {
			return nil, a.deny(r.Proposer, r.Action, r.target(), err)
		}
	}
	return auth, nil
}

func (a *Authority) authorize(ctx context.Context, r *Request, approvals []Approval) (*Authorization, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: no request", ErrInvalid)
	}
	enc, err := r.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if len(approvals) > MaxApprovals {
		return nil, fmt.Errorf("%w: %d approvals, the cap is %d", ErrInvalid, len(approvals), MaxApprovals)
	}
	id := RequestID(sha256.Sum256(enc))
	if err := a.checkFresh(ctx, r, id); err != nil {
		return nil, err
	}
	in, approvers, err := a.holds(ctx, r, enc, approvals)
	if err != nil {
		return nil, err
	}
	value, err := a.spend(ctx, id, signed{request: enc, approvals: approvals})
	if err != nil {
		return nil, err
	}
	auth := &Authorization{Request: r, ID: id, Approvers: approvers, install: installing{in: in, value: value}}
	if in != nil {
		auth.Policy = in.policy
	}
	return auth, nil
}

// holds checks r (encoded as enc) and its approvals against the policies
// installed now: r was proposed under the policy in force, its proposer
// may propose it, and the approvals reach the quorum of every policy r
// needs (checkInForce, alsoAffected). It returns the policy in force and
// the verified approvers. Authorize and Holds share it, so an operation
// resumed under an earlier authorization meets the rule a new one would.
func (a *Authority) holds(ctx context.Context, r *Request, enc []byte, approvals []Approval) (*installed, []string, error) {
	list, err := a.policies(ctx)
	if err != nil {
		return nil, nil, err
	}
	in := inForce(list, r.Change)
	quorums, err := checkInForce(in, r)
	if err != nil {
		return nil, nil, err
	}
	quorums = alsoAffected(list, r.Change, quorums)
	if err := proposerPolicy(in, r.Change).Allows(r.Proposer, r.Action); err != nil {
		return nil, nil, err
	}
	approvers, err := verifyApprovals(enc, approvals, r.Action, quorums...)
	if err != nil {
		return nil, nil, err
	}
	return in, approvers, nil
}

// checkFresh refuses an expired request, one expiring too far ahead, and
// one applied already.
func (a *Authority) checkFresh(ctx context.Context, r *Request, id RequestID) error {
	now := a.cfg.Now()
	if !now.Before(r.Expiry) {
		return fmt.Errorf("%w: it expired at %s", ErrExpired, r.Expiry.Format(time.RFC3339))
	}
	if r.Expiry.After(now.Add(MaxRequestLifetime)) {
		return fmt.Errorf("%w: the request expires more than %s ahead", ErrInvalid, MaxRequestLifetime)
	}
	_, err := a.cfg.Store.GetRecord(ctx, RecordAppliedRequest, id.String())
	switch {
	case err == nil:
		return fmt.Errorf("%w: request %s was applied already", ErrReplayed, id)
	case !errors.Is(err, keystore.ErrNotFound):
		return wrapStep(err, "reading the applied requests")
	}
	return nil
}

// checkInForce checks r was proposed under the policy in force, and
// returns the policies whose quorums r needs.
func checkInForce(in *installed, r *Request) ([]*Policy, error) {
	var digest [32]byte
	var quorums []*Policy
	if in != nil {
		digest = in.digest
		quorums = append(quorums, in.policy)
	}
	if r.PolicyDigest != digest {
		return nil, fmt.Errorf("%w: %s was proposed under another policy than the one in force", ErrStalePolicy, r.Action)
	}
	if r.Action != ActionSetPolicy {
		if in == nil {
			return nil, fmt.Errorf("%w: %s", ErrNoPolicy, keystore.Fingerprint(r.BranchKeyID))
		}
		return quorums, nil
	}
	if want := nextRevision(in, r.NewPolicy.Scope); r.NewPolicy.Revision != want {
		return nil, fmt.Errorf("%w: the new policy's revision is %d; it must be %d", ErrInvalid, r.NewPolicy.Revision, want)
	}
	return append(quorums, r.NewPolicy), nil
}

// alsoAffected adds to quorums every other installed policy whose keys
// the change reaches beyond the one key it names: a set-policy reaches
// every key of its scope, so every installed policy of a narrower (or the
// same) scope must approve it too, or a first policy for "*" would take
// over keys a stricter policy governs; a store-wide rewrap reaches every
// key, and disabling or enabling the KMS key that wraps a branch key
// reaches every branch key under that KMS key, so those need the quorum of
// every installed policy.
func alsoAffected(list []installed, c Change, quorums []*Policy) []*Policy {
	add := func(p *Policy) {
		for _, q := range quorums {
			if q == p {
				return
			}
		}
		quorums = append(quorums, p)
	}
	for i := range list {
		p := list[i].policy
		switch {
		case c.Action == ActionSetPolicy && c.NewPolicy != nil && c.NewPolicy.coversScope(p.Scope):
			add(p)
		case c.Action == ActionDisable || c.Action == ActionEnable || c.Action == ActionRewrap && c.BranchKeyID == "" || c.Action == ActionRecover:
			add(p)
		}
	}
	return quorums
}

// installing is what installing an authorized set-policy needs: the
// policy it replaces (if any) and the stored value.
type installing struct {
	in    *installed
	value []byte
}

// spend records the request as applied, refusing a replay, and returns
// the stored value (the request and its approvals). The applied record is
// written first: a request whose change then fails is spent, and is
// proposed again.
func (a *Authority) spend(ctx context.Context, id RequestID, s signed) ([]byte, error) {
	value, err := s.marshal()
	if err != nil {
		return nil, err
	}
	_, err = a.cfg.Store.PutRecord(ctx, RecordAppliedRequest, id.String(), value, 0)
	switch {
	case errors.Is(err, keystore.ErrExists):
		return nil, fmt.Errorf("%w: request %s was applied already", ErrReplayed, id)
	case err != nil:
		return nil, wrapStep(err, "recording the request as applied")
	}
	return value, nil
}

// install stores an authorized set-policy's policy, on condition that the
// policy it replaces is still the one installed.
func (a *Authority) install(ctx context.Context, r *Request, i installing) error {
	var expected uint64
	if i.in != nil && i.in.policy.Scope == r.NewPolicy.Scope {
		expected = i.in.record
	}
	_, err := a.cfg.Store.PutRecord(ctx, RecordPolicy, r.NewPolicy.Scope, i.value, expected)
	switch {
	case errors.Is(err, keystore.ErrExists) || errors.Is(err, keystore.ErrConflict):
		return fmt.Errorf("%w: another policy for %s was installed meanwhile", ErrStalePolicy, scopeName(r.NewPolicy.Scope))
	case err != nil:
		return wrapStep(err, "installing the policy for %s", scopeName(r.NewPolicy.Scope))
	}
	return nil
}

// verifyApprovals checks every approval of the request encoded as enc:
// for the right request, by a custodian of one of policies, one per
// signer, with a valid signature under that custodian's key. Then each of
// policies must count at least its quorum for action among the signers
// its own keys verified. It returns the signers, sorted.
func verifyApprovals(enc []byte, approvals []Approval, action Action, policies ...*Policy) ([]string, error) {
	if len(approvals) > MaxApprovals {
		return nil, fmt.Errorf("%w: %d approvals, the cap is %d", ErrInvalid, len(approvals), MaxApprovals)
	}
	id := RequestID(sha256.Sum256(enc))
	msg := signingMessage(enc)
	counts := make([]int, len(policies))
	signers := make([]string, 0, len(approvals))
	for _, ap := range approvals {
		if slices.Contains(signers, ap.Signer) {
			return nil, fmt.Errorf("%w: %s", ErrDuplicateSigner, safeName(ap.Signer))
		}
		if ap.Request != id {
			return nil, fmt.Errorf("%w: the approval by %s is for another request", ErrReplayed, safeName(ap.Signer))
		}
		if err := verifyOne(msg, ap, policies, counts); err != nil {
			return nil, err
		}
		signers = append(signers, ap.Signer)
	}
	for i, p := range policies {
		if m := p.QuorumFor(action); counts[i] < m {
			return nil, fmt.Errorf("%w: %s needs %d custodians of the policy for %s (revision %d); %d approved",
				ErrTooFewApprovals, action, m, scopeName(p.Scope), p.Revision, counts[i])
		}
	}
	slices.Sort(signers)
	return signers, nil
}

// verifyOne checks one approval against each policy that names its signer
// a custodian, counting it for each whose key verifies it.
func verifyOne(msg []byte, ap Approval, policies []*Policy, counts []int) error {
	custodian, verified := false, false
	for i, p := range policies {
		c, ok := p.custodian(ap.Signer)
		if !ok {
			continue
		}
		custodian = true
		if len(ap.Signature) == ed25519.SignatureSize && ed25519.Verify(c.PublicKey, msg, ap.Signature) {
			verified = true
			counts[i]++
		}
	}
	switch {
	case !custodian:
		return fmt.Errorf("%w: %s", ErrNotCustodian, safeName(ap.Signer))
	case !verified:
		return fmt.Errorf("%w: the approval by %s", ErrForgedApproval, ap.Signer)
	}
	return nil
}

// reasons are the words audit records give for a refusal, by error.
var reasons = []struct {
	err  error
	word string
}{
	{ErrForgedApproval, "forged-approval"}, {ErrReplayed, "replayed"}, {ErrExpired, "expired"},
	{ErrDuplicateSigner, "duplicate-signer"}, {ErrNotCustodian, "not-custodian"},
	{ErrTooFewApprovals, "too-few-approvals"}, {ErrRoleConflict, "role-conflict"},
	{ErrStalePolicy, "stale-policy"}, {ErrNotPermitted, "not-permitted"}, {ErrNoPolicy, "no-policy"},
	{ErrEscrowShare, "bad-escrow-share"}, {ErrTooFewShares, "too-few-escrow-shares"},
	{ErrEscrowKeyMismatch, "escrow-key-mismatch"}, {ErrInvalid, "invalid"},
}

// Reason is the word an audit record gives for err: "forged-approval",
// "replayed", "expired", "duplicate-signer", "not-custodian",
// "too-few-approvals", "role-conflict", "stale-policy", "not-permitted",
// "no-policy", "bad-escrow-share", "too-few-escrow-shares",
// "escrow-key-mismatch", "invalid", or "failed" for any other error.
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.word
		}
	}
	return "failed"
}

// deny records a refusal of act on id to actor and returns err, joined
// with the audit log's error if it refused the record.
func (a *Authority) deny(actor string, act Action, id string, err error) error {
	if a.cfg.Audit == nil {
		return err
	}
	actor = safeName(actor)
	e := a.cfg.Hasher.Denial(a.cfg.Now(), actor, act.String(), id, Reason(err))
	if _, aerr := a.cfg.Audit.Append(e); aerr != nil {
		return errors.Join(err, fmt.Errorf("custody: the audit log refused the denial record: %w", aerr))
	}
	return err
}

// LogValue implements slog.LogValuer.
func (a Authority) LogValue() slog.Value { return slog.StringValue(a.String()) }

// String says which parts are set; the Hasher's key never shows.
func (c AuthorityConfig) String() string {
	return fmt.Sprintf("custody.AuthorityConfig{store %t, audit %t, hasher %t, clock %t}", c.Store != nil, c.Audit != nil, c.Hasher != nil, c.Now != nil)
}

// Format implements fmt.Formatter: every verb prints String.
func (c AuthorityConfig) Format(f fmt.State, _ rune) { formatRedacted(f, c.String()) }

// LogValue implements slog.LogValuer.
func (c AuthorityConfig) LogValue() slog.Value { return slog.StringValue(c.String()) }
