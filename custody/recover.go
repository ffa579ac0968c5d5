package custody

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/phicrypt/phicrypt/keyring"
)

// AuthorizeRecovery is the gate of break-glass recovery. It checks that
// shares are at least M distinct, intact shares of the escrow key r names
// (r.EscrowKey), then authorizes r, a recover request, with approvals
// (Authorize: the quorum for recover of every installed policy, each
// approval valid, not expired, not applied before; the authorization and
// its approvers are audited), and only then reassembles the escrow private
// key in memory (CombineEscrowShares) and returns it with the
// authorization. The caller unwraps data keys with it
// (keyring.NewHPKEEscrowRecovery), rewraps them to r.KMSKeyARN, and drops
// it.
//
// A bad share or too few of them are refused before the request is spent
// (ErrEscrowShare, ErrTooFewShares); a refused authorization returns
// Authorize's error; a key that does not reassemble after the request was
// authorized returns ErrEscrowKeyMismatch (the request is spent: propose it
// again with intact shares). Every refusal is audited.
func (a *Authority) AuthorizeRecovery(ctx context.Context, r *Request, approvals []Approval, shares []*EscrowShare) (*Authorization, *keyring.HPKEEscrowPrivateKey, error) {
	if r == nil || r.Action != ActionRecover {
		err := fmt.Errorf("%w: AuthorizeRecovery takes a recover request", ErrInvalid)
		if r == nil {
			return nil, nil, a.deny("", ActionRecover, "", err)
		}
		return nil, nil, a.deny(r.Proposer, r.Action, r.target(), err)
	}
	if err := checkEscrowShares(shares, r.EscrowKey); err != nil {
		return nil, nil, a.deny(r.Proposer, r.Action, "", err)
	}
	auth, err := a.Authorize(ctx, r, approvals)
	if err != nil {
		return nil, nil, err
	}
	key, err := CombineEscrowShares(shares, r.EscrowKey)
	if err != nil {
		return auth, nil, a.deny(r.Proposer, r.Action, "", err)
	}
	if a.cfg.Audit != nil {
		e := a.cfg.Hasher.AdminChange(a.cfg.Now(), r.Proposer, "recover: escrow key reassembled", "", auth.Approvers)
		e.Reason = "escrow " + EscrowKeyFingerprint(r.EscrowKey) + " from " + strconv.Itoa(len(shares)) + " shares, request " + auth.ID.String()
		if err := a.audit(e); err != nil {
			return nil, nil, errors.Join(err, errors.New("custody: the escrow key was reassembled but not recorded; it was dropped"))
		}
	}
	return auth, key, nil
}

// Approvers returns the custodians whose approvals were stored with
// applied request id (sorted; they verified when it was authorized), or an
// error wrapping keystore.ErrNotFound if id was never applied: what a
// resumed operation records as its approvers.
func (a *Authority) Approvers(ctx context.Context, id RequestID) ([]string, error) {
	s, err := a.applied(ctx, id)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(s.approvals))
	for i, ap := range s.approvals {
		names[i] = ap.Signer
	}
	slices.Sort(names)
	return names, nil
}

// applied reads the stored record of applied request id: the request and
// its approvals, as Authorize stored them.
func (a *Authority) applied(ctx context.Context, id RequestID) (signed, error) {
	rec, err := a.cfg.Store.GetRecord(ctx, RecordAppliedRequest, id.String())
	if err != nil {
		return signed{}, wrapStep(err, "reading applied request %s", id)
	}
	return parseSigned(rec.Value)
}

// StillHolds checks that the request applied as id still holds under the
// policies installed now, by the rule Authorize applied to it: it has
// not expired (ErrExpired), the policy in force for it is the one it was
// proposed under (ErrStalePolicy), its proposer may still propose it, and
// its stored approvals, verified again, reach the quorum of every policy
// it needs now (for recover, every installed policy: a policy installed
// or changed since, whose custodians did not approve, fails with
// ErrTooFewApprovals, ErrNotCustodian or ErrForgedApproval). It returns
// the authorization as Authorize did (Policy is the policy in force now),
// or an error wrapping keystore.ErrNotFound if id was never applied.
//
// An operation that resumes under an earlier authorization (keyctl
// recover after an interruption) calls it before it carries on. It spends
// nothing and records nothing in the audit log: the caller audits its
// resume or its refusal.
func (a *Authority) StillHolds(ctx context.Context, id RequestID) (*Authorization, error) {
	s, err := a.applied(ctx, id)
	if err != nil {
		return nil, err
	}
	if RequestID(sha256.Sum256(s.request)) != id {
		return nil, fmt.Errorf("%w: the record of applied request %s holds another request", ErrInvalid, id)
	}
	r, err := ParseRequest(s.request)
	if err != nil {
		return nil, err
	}
	if !a.cfg.Now().Before(r.Expiry) {
		return nil, fmt.Errorf("%w: it expired at %s", ErrExpired, r.Expiry.Format(time.RFC3339))
	}
	in, approvers, err := a.holds(ctx, r, s.request, s.approvals)
	if err != nil {
		return nil, err
	}
	auth := &Authorization{Request: r, ID: id, Approvers: approvers}
	if in != nil {
		auth.Policy = in.policy
	}
	return auth, nil
}
