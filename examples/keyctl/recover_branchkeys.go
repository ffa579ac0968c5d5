package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
)

// Break-glass recovery of branch keys: keyctl recover --branch-keys moves
// the configured store's branch key versions from their escrow copies
// (services with keyring.HierarchicalConfig.Escrow set store them) to the
// recover request's KMS key, with custody.RecoverBranchKeys, under the
// same authorization as the messages and before them. It is idempotent: a
// re-run under the same authorization (the position file) skips versions
// already moved.

// branchKeyRecoverFlags are recover's branch-key flags.
type branchKeyRecoverFlags struct {
	all      bool
	id       string
	noRotate bool
}

// register adds the flags to fl.
func (f *branchKeyRecoverFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&f.all, "branch-keys", false, "recover the store's branch key versions from their escrow copies to the request's KMS key (before any messages)")
	fl.StringVar(&f.id, "branch-key", "", "recover the versions of branch key `ID` only (implies --branch-keys)")
	fl.BoolVar(&f.noRotate, "no-rotate", false, "do not rotate the branch keys whose active version was recovered (services cannot write under them until they are rotated: keyctl propose rotate)")
}

// on reports whether branch keys are to be recovered.
func (f branchKeyRecoverFlags) on() bool { return f.all || f.id != "" }

// branchKeyRecoveryView is what recover prints of the branch keys.
type branchKeyRecoveryView struct {
	Total        int      `json:"total"`
	Recovered    int      `json:"recovered"`
	AlreadyMoved int      `json:"already_moved"`
	MovedByOther int      `json:"moved_by_other"`
	Missing      int      `json:"missing"`
	Damaged      int      `json:"damaged"`
	MissingNames []string `json:"missing_versions,omitempty"`
	Destroyed    int      `json:"destroyed"`
	Rotated      int      `json:"rotated"`
}

// recoverBranchKeys runs the branch-key part of an authorized recovery
// (nothing when f does not ask for it) and audits it with the approvers.
// An error wrapping keyring.ErrNoEscrowCopy means every other version was
// recovered: the messages may go on.
func (a *app) recoverBranchKeys(ctx context.Context, s *session, r *custody.Request, key *keyring.HPKEEscrowPrivateKey, name string,
	approvers []string, f branchKeyRecoverFlags, view *recoverView) error {
	if !f.on() {
		return nil
	}
	recovery, err := keyring.NewHPKEEscrowRecovery(name, key)
	if err != nil {
		return err
	}
	prog, err := a.newProgress("recover", "branch key versions")
	if err != nil {
		return err
	}
	rep, runErr := custody.RecoverBranchKeys(ctx, s.keys, recovery, s.kms, r.KMSKeyARN, custody.RecoverBranchKeysOptions{
		BranchKeyID: f.id,
		Progress:    prog.Set,
		Rotate:      !f.noRotate,
	})
	prog.Finish()
	bv := &branchKeyRecoveryView{Total: rep.Total, Recovered: rep.Recovered, AlreadyMoved: rep.AlreadyMoved, MovedByOther: rep.MovedByOther,
		Missing: rep.Missing, Damaged: rep.Damaged, Destroyed: rep.Destroyed, Rotated: rep.Rotated}
	for _, m := range rep.MissingVersions {
		bv.MissingNames = append(bv.MissingNames, m.String())
	}
	view.BranchKeys = bv
	op := "recover: branch key versions rewrapped from escrow"
	if runErr != nil && !errors.Is(runErr, keyring.ErrNoEscrowCopy) && !errors.Is(runErr, keyring.ErrEscrowRecord) {
		op = "recover: branch key versions interrupted"
	}
	e := s.audit.hasher.AdminChange(time.Now(), s.actor, op, "", approvers)
	e.Reason = fmt.Sprintf("request %s: %d of %d versions recovered, %d already moved, %d missing an escrow copy, %d with a damaged copy, %d destroyed, %d keys rotated, to %s",
		view.Request, rep.Recovered, rep.Total, rep.AlreadyMoved+rep.MovedByOther, rep.Missing, rep.Damaged, rep.Destroyed, rep.Rotated, kmsKeyID(r.KMSKeyARN))
	if err := s.audit.record(e); err != nil {
		return errors.Join(runErr, err)
	}
	if !a.json {
		a.printf("branch key versions: %d recovered, %d already under the key, %d without an escrow copy, %d with a damaged copy, %d destroyed, of %d; %d key(s) rotated\n",
			rep.Recovered, rep.AlreadyMoved+rep.MovedByOther, rep.Missing, rep.Damaged, rep.Destroyed, rep.Total, rep.Rotated)
	}
	if runErr == nil && f.id == "" {
		// Every key is under the new one: make new branch keys there too.
		if err := a.setKMSKey(r.KMSKeyARN); err != nil {
			return err
		}
	}
	return runErr
}

// messagesAfterBranchKeys reports whether the messages are rewrapped after
// the branch keys ended with err: yes unless it stopped them midway.
func messagesAfterBranchKeys(err error) bool {
	return err == nil || errors.Is(err, keyring.ErrNoEscrowCopy) || errors.Is(err, keyring.ErrEscrowRecord)
}

// checkBranchKeys refuses, before the request is spent, a --branch-key the
// store does not hold and --branch-keys over a store without branch keys:
// a typo would otherwise spend the custodians' approvals on nothing.
func checkBranchKeys(ctx context.Context, s *session, f branchKeyRecoverFlags) error {
	if !f.on() {
		return nil
	}
	if f.id != "" {
		if err := keystore.CheckID(f.id); err != nil {
			return usagef("--branch-key: %v", err)
		}
		if _, err := s.store.List(ctx, f.id); errors.Is(err, keystore.ErrNotFound) {
			return usagef("--branch-key: the store holds no branch key %s", keystore.Fingerprint(f.id))
		} else if err != nil {
			return fmt.Errorf("reading branch key %s: %w", keystore.Fingerprint(f.id), err)
		}
		return nil
	}
	ids, err := s.store.IDs(ctx)
	if err != nil {
		return fmt.Errorf("listing branch keys: %w", err)
	}
	if len(ids) == 0 {
		return usagef("--branch-keys: the store holds no branch key")
	}
	return nil
}
