package custody

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

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
	rec, err := a.cfg.Store.GetRecord(ctx, RecordAppliedRequest, id.String())
	if err != nil {
		return nil, wrapStep(err, "reading applied request %s", id)
	}
	s, err := parseSigned(rec.Value)
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
