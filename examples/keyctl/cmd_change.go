package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keystore"
)

// changeKinds are what propose takes, and the actions they make.
var changeKinds = map[string]custody.Action{
	"create": custody.ActionCreate, "rotate": custody.ActionRotate, "retire": custody.ActionRetire,
	"disable": custody.ActionDisable, "enable": custody.ActionEnable, "destroy": custody.ActionDestroyVersion,
	"rewrap": custody.ActionRewrap, "set-policy": custody.ActionSetPolicy, "recover": custody.ActionRecover,
}

const changeKindList = "create, rotate, retire, disable, enable, destroy, rewrap, set-policy or recover"

// proposalFlags are the flags of propose and its shortcuts.
type proposalFlags struct {
	version, to, out string
	escrow           string
	expires          time.Duration
	policy           trustPolicyFlags
}

func (p *proposalFlags) add(c *cobra.Command, version, to, policy bool) {
	f := c.Flags()
	if version {
		f.StringVar(&p.version, "version", "", "the branch key `VERSION` the change acts on")
	}
	if to {
		f.StringVar(&p.to, "to", "", "rewrap, recover: the KMS key `ARN` to move every branch key (or the recovered data keys) under")
		f.StringVar(&p.escrow, "escrow", "", "recover: the escrow key's `NAME` (from escrow init)")
	}
	if policy {
		p.policy.add(c)
	}
	f.StringVarP(&p.out, "out", "o", "", "write the change file to `FILE` (required)")
	f.DurationVar(&p.expires, "expires", 24*time.Hour, "the request expires after this long (at most 720h)")
}

const proposalHelp = `

This writes a change request to --out (mode 0600); nothing changes yet.
Custodians review and sign it with "keyctl approve FILE", and "keyctl apply
FILE" carries it out once the quorum of the trust policy in force has
signed, before it expires. The proposer must be a custodian (--identity).`

func (a *app) proposeCommand() *cobra.Command {
	var p proposalFlags
	c := &cobra.Command{
		Use:   "propose KIND [ID]",
		Short: "write a change request for custodians to approve (any change kind, set-policy included)",
		Long: `propose writes a change request of KIND for branch key ID:
  create ID, rotate ID
  retire ID --version V          V no longer decrypts
  disable ID [--version V]       disable the KMS key wrapping ID (or V)
  enable ID [--version V]        enable it again
  destroy ID [--version V]       crypto-shred V, or every version of ID
  rewrap [ID] --to ARN           move ID's versions (or every key's) under ARN
  set-policy --custodian NAME=PUBLIC_KEY ... --quorum N [--scope S]
                                 install or replace the trust policy of S
  recover --escrow NAME --to ARN break glass: reassemble escrow key NAME from
                                 custodians' shares and rewrap data keys to
                                 ARN (keyctl recover runs it)
retire, disable, enable and destroy are shortcuts for it.` + proposalHelp,
		Args: rangeArgs(1, 2, "KIND and a branch key ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 2 {
				id = args[1]
			}
			return a.propose(cmd.Context(), args[0], id, p)
		},
	}
	p.add(c, true, true, true)
	return c
}

// shortcut is a propose command for one kind.
func (a *app) shortcut(kind, use, short, long string, version bool) *cobra.Command {
	var p proposalFlags
	c := &cobra.Command{
		Use: use, Short: short, Long: long + proposalHelp,
		Args: exactArgs(1, "one branch key ID"),
		RunE: func(cmd *cobra.Command, args []string) error { return a.propose(cmd.Context(), kind, args[0], p) },
	}
	p.add(c, version, false, false)
	return c
}

func (a *app) retireCommand() *cobra.Command {
	return a.shortcut("retire", "retire ID --version V", "propose retiring a branch key version (it no longer decrypts)",
		"retire proposes retiring version V of the branch key: run it once every record under V is re-encrypted under a newer version.", true)
}

func (a *app) destroyCommand() *cobra.Command {
	return a.shortcut("destroy", "destroy ID [--version V]", "propose destroying (crypto-shredding) a branch key version, or the whole key",
		`destroy proposes crypto-shredding (NIST SP 800-88 cryptographic erase) version V of the
branch key, or with no --version every version: afterwards every ciphertext
under it fails to decrypt, in every process. It cannot be undone.`, true)
}

func (a *app) disableCommand() *cobra.Command {
	return a.shortcut("disable", "disable ID [--version V]", "propose disabling the KMS key that wraps a branch key (stops every unwrap under it)",
		`disable proposes disabling (KMS DisableKey) the KMS key that wraps the branch key's
active version, or version V: an emergency stop, reversible with enable. Every
branch key wrapped by that KMS key stops unwrapping, in every service, once
their caches expire.`, true)
}

func (a *app) enableCommand() *cobra.Command {
	return a.shortcut("enable", "enable ID [--version V]", "propose enabling the KMS key that wraps a branch key again",
		"enable proposes enabling (KMS EnableKey) the KMS key that wraps the branch key's active version, or version V.", true)
}

// changeFor builds the change that kind asks for.
func changeFor(kind, id string, p proposalFlags) (custody.Change, error) {
	action, ok := changeKinds[kind]
	if !ok {
		return custody.Change{}, usagef("change kind %q: want %s", kind, changeKindList)
	}
	c := custody.Change{Action: action, BranchKeyID: id, Version: p.version}
	switch action {
	case custody.ActionDestroyVersion:
		if p.version == "" {
			c.Action = custody.ActionDestroyKey
		}
	case custody.ActionRetire:
		if p.version == "" {
			return c, usagef("retire needs --version V")
		}
	case custody.ActionRewrap:
		if p.to == "" {
			return c, usagef("rewrap needs --to ARN")
		}
		c.KMSKeyARN = p.to
	case custody.ActionRecover:
		if p.to == "" || p.escrow == "" || id != "" || p.version != "" {
			return c, usagef("recover takes no branch key: give --escrow NAME and --to ARN")
		}
		c.KMSKeyARN = p.to
	case custody.ActionSetPolicy:
		if id != "" || p.version != "" {
			return c, usagef("set-policy takes no branch key: give --scope")
		}
		pol, err := p.policy.policy()
		if err != nil {
			return c, err
		}
		c.NewPolicy = pol
	}
	if action != custody.ActionRewrap && action != custody.ActionSetPolicy && action != custody.ActionRecover && id == "" {
		return c, usagef("%s needs a branch key ID", kind)
	}
	if action != custody.ActionRewrap && action != custody.ActionRecover && p.to != "" {
		return c, usagef("--to goes with rewrap and recover")
	}
	if action != custody.ActionRecover && p.escrow != "" {
		return c, usagef("--escrow goes with recover")
	}
	if action != custody.ActionSetPolicy && p.policy.given() {
		return c, usagef("the trust policy flags go with set-policy")
	}
	return c, nil
}

// propose writes a change file for a request of kind on branch key id.
func (a *app) propose(ctx context.Context, kind, id string, p proposalFlags) error {
	change, err := changeFor(kind, id, p)
	if err != nil {
		return err
	}
	if p.out == "" {
		return usagef("%s needs --out FILE for the change request", kind)
	}
	s, err := a.open(ctx, needs{store: true, audit: true, identity: true})
	if err != nil {
		return err
	}
	defer s.Close()
	auth, err := s.authority()
	if err != nil {
		return err
	}
	if change.Action == custody.ActionRecover {
		if change.EscrowKey, err = escrowDigest(ctx, s, p.escrow); err != nil {
			return err
		}
	}
	r, err := auth.Propose(ctx, s.me.Name, change, p.expires)
	if err != nil {
		return err
	}
	f := &changeFile{Request: r}
	if err := f.write(p.out); err != nil {
		return fmt.Errorf("writing the change file: %w", err)
	}
	return a.print(changeView(f, nil), func() {
		a.printf("proposed %s as request %s in %s; it expires %s\n", r, f.id(), p.out, r.Expiry.Format(time.RFC3339))
	})
}

// changeJSON is a change request as keyctl prints it: described with the
// key's fingerprint, never its id.
type changeJSON struct {
	Request   string    `json:"request"`
	Action    string    `json:"action"`
	Change    string    `json:"change"`
	Proposer  string    `json:"proposer"`
	Expires   time.Time `json:"expires"`
	Approvals []string  `json:"approvals"`
	Approvers []string  `json:"approvers,omitempty"`
}

func changeView(f *changeFile, approvers []string) changeJSON {
	return changeJSON{Request: f.id(), Action: f.Request.Action.String(), Change: f.Request.String(), Proposer: f.Request.Proposer,
		Expires: f.Request.Expiry, Approvals: f.signers(), Approvers: approvers}
}

func (a *app) approveCommand() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "approve FILE",
		Short: "sign a change request with your custodian identity",
		Long: `approve shows the change request in FILE and adds your approval: an Ed25519
signature (custody.Signer) over the request's encoding, with --identity.
It refuses an expired request, a second approval by you, and an identity
that is not a custodian of the trust policy in force for the change.
--out writes the signed copy elsewhere (apply merges copies of one request).`,
		Args: exactArgs(1, "one change FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := readChangeFile(args[0])
			if err != nil {
				return err
			}
			s, err := a.open(cmd.Context(), needs{store: true, identity: true, audit: true})
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.approve(cmd.Context(), f, time.Now()); err != nil {
				reason := custody.Reason(err)
				if errors.Is(err, errNotCustodian) {
					reason = "not-custodian"
				}
				e := s.audit.hasher.Denial(time.Now(), s.me.Name, "approve "+f.Request.Action.String(), f.Request.BranchKeyID, reason)
				return errors.Join(err, s.audit.record(e))
			}
			if out == "" {
				out = args[0]
			}
			if err := f.write(out); err != nil {
				return fmt.Errorf("writing the change file: %w", err)
			}
			return a.print(changeView(f, nil), func() {
				a.printf("%s approved %s (request %s); approvals: %s\n", s.me.Name, f.Request, f.id(), strings.Join(f.signers(), ", "))
			})
		},
	}
	c.Flags().StringVarP(&out, "out", "o", "", "write the signed change file to `FILE` (default: FILE itself)")
	return c
}

// errNotCustodian: approve refuses to sign for someone outside the policy.
var errNotCustodian = errors.New("you are not a custodian of the trust policy in force for this change (by name and key)")

// approve adds the identity's approval to f.
func (s *session) approve(ctx context.Context, f *changeFile, now time.Time) error {
	if !now.Before(f.Request.Expiry) {
		return custody.ErrExpired
	}
	for _, ap := range f.Approvals {
		if ap.Signer == s.me.Name {
			return fmt.Errorf("%w (%s)", custody.ErrDuplicateSigner, s.me.Name)
		}
	}
	if len(f.Approvals) >= custody.MaxApprovals {
		return fmt.Errorf("the change file already carries %d approvals", custody.MaxApprovals)
	}
	auth, err := s.authority()
	if err != nil {
		return err
	}
	p, err := policyInForce(ctx, auth, f.Request.Change)
	if err != nil {
		return err
	}
	// A set-policy needs the quorum of the new policy too, so its
	// custodians approve it as well as those of the policy in force.
	c := f.Request.Change
	newCustodian := c.Action == custody.ActionSetPolicy && c.NewPolicy != nil && isCustodian(c.NewPolicy, s.me.Name, s.me.public())
	if !isCustodian(p, s.me.Name, s.me.public()) && !newCustodian {
		return fmt.Errorf("%w: %s", errNotCustodian, s.me.Name)
	}
	signer, err := s.me.signer()
	if err != nil {
		return err
	}
	ap, err := signer.Approve(f.Request)
	if err != nil {
		return err
	}
	f.Approvals = append(f.Approvals, ap)
	return nil
}

// policyInForce is the policy whose quorum c needs first
// (custody.Authority.PolicyInForce): the one governing its key, or for a
// set-policy the one governing the new scope now; for the very first
// policy of a store, the new one itself.
func policyInForce(ctx context.Context, auth *custody.Authority, c custody.Change) (*custody.Policy, error) {
	p, err := auth.PolicyInForce(ctx, c)
	if errors.Is(err, custody.ErrNoPolicy) && c.Action == custody.ActionSetPolicy && c.NewPolicy != nil {
		return c.NewPolicy, nil
	}
	return p, err
}

func isCustodian(p *custody.Policy, name string, pub ed25519.PublicKey) bool {
	for _, c := range p.Custodians {
		if c.Name == name && c.PublicKey.Equal(pub) {
			return true
		}
	}
	return false
}

func (a *app) applyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "apply FILE...",
		Short: "carry out a change request once the quorum of custodians has approved it",
		Long: `apply hands the change request in FILE and its approvals (several files
holding copies of one request are merged) to custody.Authority.Authorize:
every approval must verify under the key of a custodian of the trust policy
in force, no custodian may count twice, the quorum must be met, the request
must not have expired, nor been applied before, nor been proposed under a
policy since replaced. Then apply carries the change out. The authorization
(with its approvers), each refusal and the outcome go to the audit log. An
authorized request is spent even if carrying it out then fails: propose it
again.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > custody.MaxApprovals {
				return usagef("want 1 to %d change files", custody.MaxApprovals)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := mergeChangeFiles(args)
			if err != nil {
				return err
			}
			if f.Request.Action == custody.ActionRecover {
				return usagef("a recover request is run by keyctl recover FILE... --share FILE... --messages DIR, with the custodians' shares")
			}
			s, err := a.open(cmd.Context(), needs{store: true, kms: true, audit: true})
			if err != nil {
				return err
			}
			defer s.Close()
			approvers, err := a.authorizeAndRun(cmd.Context(), s, f)
			if err != nil {
				return err
			}
			return a.print(changeView(f, approvers), func() {
				a.printf("applied %s (request %s), approved by %s\n", f.Request, f.id(), strings.Join(approvers, ", "))
			})
		},
	}
}

// authorizeAndRun hands f to custody.Executor.Apply, which authorizes it
// (spending the request, and logging the change with its approvers or the
// refusal) and only then carries it out.
func (a *app) authorizeAndRun(ctx context.Context, s *session, f *changeFile) ([]string, error) {
	// A replay goes straight to Apply, which refuses it and logs the
	// denial; any other request is checked first, so that a change the
	// store shows would fail does not spend it.
	if _, err := s.records().GetRecord(ctx, custody.RecordAppliedRequest, f.id()); !errors.Is(err, keystore.ErrNotFound) {
		if err != nil {
			return nil, err
		}
	} else if err := runnable(ctx, s, f.Request.Change); err != nil {
		return nil, err
	}
	auth, err := s.authority()
	if err != nil {
		return nil, err
	}
	cfg := custody.ExecutorConfig{Authority: auth, Keys: s.keys, KMS: s.kms, ReEncrypter: s.kms}
	var finish func(error) error
	if f.Request.Action == custody.ActionRewrap {
		if cfg.Rewrap, finish, err = a.rewrapRun(ctx, s, f.Request); err != nil {
			return nil, err
		}
	}
	x, err := custody.NewExecutor(cfg)
	if err != nil {
		return nil, err
	}
	applied, err := x.Apply(ctx, f.Request, f.Approvals)
	switch {
	case finish == nil:
	case err == nil || errors.Is(err, custody.ErrNotCarriedOut):
		err = finish(err)
		if applied != nil {
			s.rewrapReport = applied.Rewrap
		}
	default: // refused: nothing ran, and no checkpoint may outlive it
		if rerr := os.Remove(a.checkpointPath()); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	if err != nil {
		if errors.Is(err, custody.ErrNotCarriedOut) && f.Request.Action != custody.ActionRewrap && len(f.Approvals) > 1 {
			err = fmt.Errorf("%w (the request is spent: propose it again)", err)
		}
		return nil, err
	}
	return applied.Authorization.Approvers, nil
}

// runnable refuses, before the request is spent, a change that the store
// shows would fail now (another process may still change the store in
// between: then the change fails after it was authorized, and is proposed
// again).
func runnable(ctx context.Context, s *session, c custody.Change) error {
	switch c.Action {
	case custody.ActionCreate:
		if _, err := s.store.List(ctx, c.BranchKeyID); err == nil {
			return keystore.ErrExists
		}
	case custody.ActionRetire:
		v, err := s.store.Get(ctx, c.BranchKeyID, c.Version)
		if err != nil {
			return err
		}
		if v.State != keystore.StateDecryptOnly {
			return fmt.Errorf("%w: retire needs a decrypt_only version; version %s is %s", keystore.ErrConflict, c.Version, v.State)
		}
	case custody.ActionRotate, custody.ActionDestroyKey:
		if _, err := s.store.List(ctx, c.BranchKeyID); err != nil {
			return err
		}
	case custody.ActionRewrap:
		if c.BranchKeyID != "" {
			if _, err := s.store.List(ctx, c.BranchKeyID); err != nil {
				return err
			}
		}
	case custody.ActionDestroyVersion:
		if _, err := s.store.Get(ctx, c.BranchKeyID, c.Version); err != nil {
			return err
		}
	case custody.ActionDisable, custody.ActionEnable:
		if c.Version != "" {
			_, err := s.store.Get(ctx, c.BranchKeyID, c.Version)
			return err
		}
		_, err := s.store.Active(ctx, c.BranchKeyID)
		return err
	}
	return nil
}

// direct carries out change c at once when the trust policy lets one
// custodian make it alone (quorum 1): the identity proposes, approves and
// applies it in one step. Otherwise it says how to propose it.
func (a *app) direct(ctx context.Context, s *session, c custody.Change, kind string) ([]string, error) {
	auth, err := s.authority()
	if err != nil {
		return nil, err
	}
	p, err := policyInForce(ctx, auth, c)
	if err != nil {
		return nil, err
	}
	if q := p.QuorumFor(c.Action); q > 1 {
		return nil, fmt.Errorf("%s needs %d custodians' approvals under the trust policy: keyctl propose %s ... -o FILE, then approve and apply", kind, q, kind)
	}
	r, err := auth.Propose(ctx, s.me.Name, c, directLifetime)
	if err != nil {
		return nil, err
	}
	f := &changeFile{Request: r}
	if err := s.approve(ctx, f, time.Now()); err != nil {
		return nil, err
	}
	return a.authorizeAndRun(ctx, s, f)
}

// directLifetime is how long a request made and applied in one step lives.
const directLifetime = 10 * time.Minute
