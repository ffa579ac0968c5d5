package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keystore"
)

// rewrapCheckpoint is the rewrap checkpoint file (JSON, mode 0600; it
// names a branch key id): the authorized rewrap request and the last
// version settled. The request's id is recorded as applied in the store,
// which is what lets an interrupted rewrap resume without a new quorum:
// the file cannot authorize a rewrap the custodians did not.
type rewrapCheckpoint struct {
	Request     string `json:"request"` // base64 of custody.Request.MarshalBinary
	To          string `json:"to"`
	BranchKeyID string `json:"branch_key_id,omitempty"`
	Version     string `json:"version,omitempty"`
}

// checkpointEvery is how often rewrap saves its position: resuming is only
// a saving (a re-run skips versions already moved), so not every version
// is worth an fsync.
const checkpointEvery = time.Second

func (a *app) rewrapCommand() *cobra.Command {
	var to string
	var restart bool
	c := &cobra.Command{
		Use:   "rewrap [ID] --to ARN",
		Short: "move every branch key version (or one key's) under another KMS key (KMS ReEncrypt), resumable",
		Long: `rewrap moves every version of every branch key (or of branch key ID) under the
KMS key --to with KMS ReEncrypt (custody.Rewrap): the branch keys never leave
KMS in plaintext and no data is touched. It is a change: keyctl makes it in
one step where the trust policy sets rewrap's quorum to 1, and otherwise
"keyctl propose rewrap [ID] --to ARN" must be approved, and apply runs it. A
rewrap of every key sets kms_key_arn in the configuration to --to, so new
versions are made under it.

Progress shows as a bar on a terminal and as plain lines otherwise. The
position is saved to --checkpoint with the authorized request; after an
interruption, run "keyctl rewrap --to ARN" again and it resumes there, under
the same authorization (the store records it as applied). The custodian
needs kms:ReEncryptFrom on the old key and kms:ReEncryptTo on the new one.`,
		Args: rangeArgs(0, 1, "at most one branch key ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usagef("rewrap needs --to, a KMS key ARN")
			}
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			ctx := cmd.Context()
			s, err := a.open(ctx, needs{store: true, kms: true, audit: true, identity: true})
			if err != nil {
				return err
			}
			defer s.Close()
			cp, err := a.readRewrapCheckpoint(to, restart)
			if err != nil {
				return err
			}
			if cp != nil {
				err = a.resumeRewrap(ctx, s, cp, id)
			} else {
				_, err = a.direct(ctx, s, custody.Change{Action: custody.ActionRewrap, BranchKeyID: id, KMSKeyARN: to}, "rewrap")
			}
			if err != nil {
				return err
			}
			rep := s.rewrapReport
			out := map[string]any{"to": to, "total": rep.Total, "rewrapped": rep.Rewrapped, "already_moved": rep.AlreadyMoved, "moved_by_other": rep.MovedByOther, "resumed": rep.Resumed}
			return a.print(out, func() {
				a.printf("%d version(s): %d rewrapped, %d already under the key, %d moved by another process, %d skipped on resume\n",
					rep.Total, rep.Rewrapped, rep.AlreadyMoved, rep.MovedByOther, rep.Resumed)
			})
		},
	}
	c.Flags().StringVar(&to, "to", "", "the new KMS key `ARN`")
	c.Flags().StringVar(&a.rewrapCheckpoint, "checkpoint", "", "save and resume the position in `FILE` (default: rewrap.checkpoint beside the configuration)")
	c.Flags().BoolVar(&restart, "restart", false, "ignore a checkpoint left by an earlier rewrap (a new rewrap then needs its own authorization)")
	return c
}

// checkpointPath is the rewrap checkpoint file.
func (a *app) checkpointPath() string {
	if a.rewrapCheckpoint != "" {
		return a.rewrapCheckpoint
	}
	path, _ := a.configFile()
	return filepath.Join(filepath.Dir(path), "rewrap.checkpoint")
}

// resumeRewrap continues the rewrap cp saved (of branch key id, or of
// every key), once the store confirms its request was authorized.
func (a *app) resumeRewrap(ctx context.Context, s *session, cp *rewrapCheckpoint, branchKeyID string) error {
	raw, err := base64.StdEncoding.DecodeString(cp.Request)
	if err != nil {
		return fmt.Errorf("the rewrap checkpoint's request is not base64")
	}
	r, err := custody.ParseRequest(raw)
	if err != nil {
		return fmt.Errorf("the rewrap checkpoint's request: %w", err)
	}
	id, err := r.ID()
	if err != nil {
		return err
	}
	if r.Action != custody.ActionRewrap || r.KMSKeyARN != cp.To || r.BranchKeyID != branchKeyID {
		return usagef("the rewrap checkpoint is of another rewrap (%s); finish that one, or give --restart", r)
	}
	if _, err := s.records().GetRecord(ctx, custody.RecordAppliedRequest, id.String()); err != nil {
		return fmt.Errorf("the rewrap checkpoint's request %s was never authorized in this store: %w", id, err)
	}
	if err := mayResume(ctx, s, r, id); err != nil {
		e := s.audit.hasher.Denial(time.Now(), s.actor, "resume rewrap", r.BranchKeyID, "resume refused")
		return errors.Join(err, s.audit.record(e))
	}
	e := s.audit.hasher.AdminChange(time.Now(), s.actor, "resume rewrap", r.BranchKeyID, nil)
	e.Reason = "request " + id.String()
	if err := s.audit.record(e); err != nil {
		return err
	}
	opts, finish, err := a.rewrapRun(ctx, s, r, cp)
	if err != nil {
		return err
	}
	rep, err := custody.Rewrap(ctx, s.store, s.kms, cp.To, opts)
	s.rewrapReport = &rep
	return finish(err)
}

// rewrapRun prepares a rewrap for request r: the checkpoint file holds r
// (and, as the rewrap goes, its position; resume starts from it), progress
// goes to stderr. finish, given the outcome of a rewrap that ran, makes r's
// KMS key the configuration's, and removes the checkpoint after a success
// or saves the last position after a failure.
func (a *app) rewrapRun(ctx context.Context, s *session, r *custody.Request, resume ...*rewrapCheckpoint) (custody.RewrapOptions, func(error) error, error) {
	var opts custody.RewrapOptions
	raw, err := r.MarshalBinary()
	if err != nil {
		return opts, nil, err
	}
	id, err := r.ID()
	if err != nil {
		return opts, nil, err
	}
	last := rewrapCheckpoint{Request: base64.StdEncoding.EncodeToString(raw), To: r.KMSKeyARN}
	opts.BranchKeyID = r.BranchKeyID
	if len(resume) > 0 && resume[0].BranchKeyID != "" {
		last.BranchKeyID, last.Version = resume[0].BranchKeyID, resume[0].Version
		opts.Resume = &custody.RewrapPosition{BranchKeyID: last.BranchKeyID, Version: last.Version}
	}
	path := a.checkpointPath()
	if err := writeRewrapCheckpoint(path, &last); err != nil {
		return opts, nil, err
	}
	prog, err := a.newProgress("rewrap", "versions")
	if err != nil {
		return opts, nil, err
	}
	var saved time.Time
	opts.EncryptionContext = s.keys.EncryptionContext
	opts.Progress = prog.Set
	marked := len(resume) > 0
	opts.Checkpoint = func(bk, version string) error {
		if !marked {
			// The rewrap is authorized and under way (Rewrap calls this
			// only after the Executor authorized it): it is now the one
			// that may resume.
			if err := markCurrentRewrap(ctx, s, id); err != nil {
				return err
			}
			marked = true
		}
		last.BranchKeyID, last.Version = bk, version
		if time.Since(saved) < checkpointEvery {
			return nil
		}
		saved = time.Now()
		return writeRewrapCheckpoint(path, &last)
	}
	finish := func(err error) error {
		prog.Finish()
		// Every key's versions are moving under the new key: make new
		// ones there too.
		if r.BranchKeyID == "" {
			if serr := a.setKMSKey(r.KMSKeyARN); serr != nil {
				return errors.Join(err, serr)
			}
		}
		if err != nil {
			return errors.Join(fmt.Errorf("%w (run the same keyctl rewrap again to resume)", err), writeRewrapCheckpoint(path, &last))
		}
		// A finished rewrap is recorded in the store, so that no
		// checkpoint, kept or forged, can run its request again.
		if _, err := s.records().PutRecord(ctx, recordRewrapFinished, id.String(), []byte{1}, 0); err != nil && !errors.Is(err, keystore.ErrExists) {
			return fmt.Errorf("the rewrap finished but could not be recorded as finished: %w", err)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return opts, finish, nil
}

// setKMSKey saves arn as the configuration's KMS key.
func (a *app) setKMSKey(arn string) error {
	path, err := a.configFile()
	if err != nil {
		return err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	if cfg.KMSKeyARN == arn {
		return nil
	}
	cfg.KMSKeyARN = arn
	return cfg.save(path)
}

// readRewrapCheckpoint returns the checkpoint of an unfinished rewrap to
// arn: nil when there is none (or restart).
func (a *app) readRewrapCheckpoint(arn string, restart bool) (*rewrapCheckpoint, error) {
	path := a.checkpointPath()
	if restart {
		return nil, nil
	}
	b, err := readSmallFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the rewrap checkpoint: %w", err)
	}
	var cp rewrapCheckpoint
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cp); err != nil {
		return nil, fmt.Errorf("%s is not a rewrap checkpoint (remove it, or give --restart)", path)
	}
	if cp.To != arn {
		return nil, usagef("the checkpoint %s is of a rewrap to another KMS key; finish that one, or give --restart", path)
	}
	return &cp, nil
}

func writeRewrapCheckpoint(path string, cp *rewrapCheckpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving the rewrap checkpoint: %w", err)
	}
	return nil
}

// recordRewrapFinished is the record kind keyctl writes when a rewrap
// request has run to its end (name: the request id).
const recordRewrapFinished = "keyctl-rewrap-finished"

// mayResume refuses to resume a rewrap whose approval no longer holds: a
// checkpoint names an authorized request, but only the approvers' intent
// at the time, so a resume must still be within the request's expiry,
// under the same policy, by a custodian of it, and of a rewrap that has
// not finished (a finished one is recorded in the store).
func mayResume(ctx context.Context, s *session, r *custody.Request, id custody.RequestID) error {
	if !time.Now().Before(r.Expiry) {
		return fmt.Errorf("%w: the rewrap's approval expired at %s; propose it again", custody.ErrExpired, r.Expiry.UTC().Format(time.RFC3339))
	}
	if _, err := s.records().GetRecord(ctx, recordRewrapFinished, id.String()); err == nil {
		return fmt.Errorf("%w: rewrap request %s has finished; propose a new one", custody.ErrReplayed, id)
	} else if !errors.Is(err, keystore.ErrNotFound) {
		return err
	}
	auth, err := s.authority()
	if err != nil {
		return err
	}
	p, err := auth.PolicyFor(ctx, r.BranchKeyID)
	if err != nil {
		return err
	}
	if d, err := p.Digest(); err != nil || d != r.PolicyDigest {
		return fmt.Errorf("%w: the policy changed since the rewrap was approved; propose it again", custody.ErrStalePolicy)
	}
	// Only the rewrap started last may resume, and only while every
	// installed policy is as it was when it started: a later rewrap, or
	// any policy change (a narrower policy whose quorum a new rewrap
	// would need, say), ends it.
	cur, err := s.records().GetRecord(ctx, recordRewrapCurrent, "current")
	if err != nil && !errors.Is(err, keystore.ErrNotFound) {
		return err
	}
	set, err := policySetDigest(ctx, auth)
	if err != nil {
		return err
	}
	if !bytes.Equal(cur.Value, append(id[:], set[:]...)) {
		return fmt.Errorf("%w: a later rewrap or a policy change superseded this one; propose it again", custody.ErrStalePolicy)
	}
	// The resuming custodian proves it is one by name and key.
	if s.me == nil || !isCustodian(p, s.me.Name, s.me.public()) {
		return fmt.Errorf("%w: resuming a rewrap takes a custodian of its policy (by name and key)", custody.ErrNotCustodian)
	}
	return nil
}

// recordRewrapCurrent names the rewrap keyctl started last (one record,
// "current"): the request id and the digest of every installed policy
// then.
const recordRewrapCurrent = "keyctl-rewrap-current"

// policySetDigest is SHA-256 over every installed policy's digest, in the
// order Authority.Policies gives them.
func policySetDigest(ctx context.Context, auth *custody.Authority) ([32]byte, error) {
	ps, err := auth.Policies(ctx)
	if err != nil {
		return [32]byte{}, err
	}
	h := sha256.New()
	for _, p := range ps {
		d, err := p.Digest()
		if err != nil {
			return [32]byte{}, err
		}
		h.Write(d[:])
	}
	return [32]byte(h.Sum(nil)), nil
}

// markCurrentRewrap records r as the rewrap started last.
func markCurrentRewrap(ctx context.Context, s *session, id custody.RequestID) error {
	auth, err := s.authority()
	if err != nil {
		return err
	}
	set, err := policySetDigest(ctx, auth)
	if err != nil {
		return err
	}
	value := append(id[:], set[:]...)
	for range 5 {
		var expected uint64
		cur, err := s.records().GetRecord(ctx, recordRewrapCurrent, "current")
		switch {
		case err == nil:
			expected = cur.Revision
		case !errors.Is(err, keystore.ErrNotFound):
			return err
		}
		_, err = s.records().PutRecord(ctx, recordRewrapCurrent, "current", value, expected)
		if !errors.Is(err, keystore.ErrConflict) && !errors.Is(err, keystore.ErrExists) {
			return err
		}
	}
	return errors.New("recording the rewrap as current: the store kept changing")
}
