package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/spf13/cobra"

	"github.com/phicrypt/phicrypt/audit"
)

// proposal flags shared by propose and its shortcuts.
type proposalFlags struct {
	version, kmsKey, reason, out string
	expires                      time.Duration
}

func (p *proposalFlags) add(c *cobra.Command, withVersion, withKMSKey bool) {
	f := c.Flags()
	if withVersion {
		f.StringVar(&p.version, "version", "", "the branch key `VERSION` (retire: versions older than it; destroy: this one, or every version if omitted)")
	}
	if withKMSKey {
		f.StringVar(&p.kmsKey, "key", "", "the KMS key `ARN` (default: the configured KMS key)")
	}
	f.StringVar(&p.reason, "reason", "", "why, in words for the audit log (no PHI)")
	f.StringVarP(&p.out, "out", "o", "", "write the change file to `FILE` (required)")
	f.DurationVar(&p.expires, "expires", 24*time.Hour, "the request expires after this long")
}

const proposalHelp = `
This writes a change request to --out (mode 0600); nothing changes yet.
Custodians review and sign it with "keyctl approve FILE", and "keyctl apply
FILE" runs it once the trust policy's quorum has signed, before it expires.`

func (a *app) proposeCommand() *cobra.Command {
	var p proposalFlags
	c := &cobra.Command{
		Use:   "propose KIND [ID]",
		Short: "write a change request (retire, disable, enable, destroy) for custodians to approve",
		Long: `propose writes a change request of KIND: retire ID --version V (retire every
version older than V), destroy ID [--version V] (crypto-shred one version, or
every version), disable [--key ARN] or enable [--key ARN] (the KMS key).
retire, disable, enable and destroy are shortcuts for it.` + proposalHelp,
		Args: rangeArgs(1, 2, "KIND and, for retire and destroy, a branch key ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 2 {
				id = args[1]
			}
			return a.propose(cmd.Context(), args[0], id, p)
		},
	}
	p.add(c, true, true)
	return c
}

func (a *app) retireCommand() *cobra.Command {
	var p proposalFlags
	c := &cobra.Command{
		Use:   "retire ID --version V",
		Short: "propose retiring every version of a branch key older than V",
		Long:  "retire proposes retiring every decrypt-only version of the branch key older than --version (custody.SetMinDecryptionVersion): run it once every record is re-encrypted under V or newer." + proposalHelp,
		Args:  exactArgs(1, "one branch key ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.propose(cmd.Context(), kindRetire, args[0], p)
		},
	}
	p.add(c, true, false)
	return c
}

func (a *app) destroyCommand() *cobra.Command {
	var p proposalFlags
	c := &cobra.Command{
		Use:   "destroy ID [--version V]",
		Short: "propose destroying (crypto-shredding) a branch key version, or the whole key",
		Long: `destroy proposes crypto-shredding (NIST SP 800-88 cryptographic erase) one
version of the branch key, or with no --version every version: afterwards
every ciphertext under it fails to decrypt, in every process. It cannot be
undone.` + proposalHelp,
		Args: exactArgs(1, "one branch key ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.propose(cmd.Context(), kindDestroy, args[0], p)
		},
	}
	p.add(c, true, false)
	return c
}

func (a *app) disableCommand() *cobra.Command {
	var p proposalFlags
	c := &cobra.Command{
		Use:   "disable",
		Short: "propose disabling the KMS key (stops every service's unwrap)",
		Long:  "disable proposes disabling the KMS key (KMS DisableKey): no service can unwrap a branch key or data key under it until it is enabled again. An emergency stop, reversible." + proposalHelp,
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.propose(cmd.Context(), kindDisable, "", p)
		},
	}
	p.add(c, false, true)
	return c
}

func (a *app) enableCommand() *cobra.Command {
	var p proposalFlags
	c := &cobra.Command{
		Use:   "enable",
		Short: "propose enabling the KMS key again",
		Long:  "enable proposes enabling a disabled KMS key (KMS EnableKey)." + proposalHelp,
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.propose(cmd.Context(), kindEnable, "", p)
		},
	}
	p.add(c, false, true)
	return c
}

// propose writes a change file for a request of kind on branch key id.
func (a *app) propose(ctx context.Context, kind, id string, p proposalFlags) error {
	if !slices.Contains(changeKinds, kind) {
		return usagef("change kind %q: want one of %s", kind, strings.Join(changeKinds, ", "))
	}
	if p.out == "" {
		return usagef("%s needs --out FILE for the change request", kind)
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	me, err := a.loadIdentity(cfg)
	if err != nil {
		return err
	}
	r := request{Kind: kind, Reason: p.reason, Proposer: me.Name}
	switch kind {
	case kindRetire, kindDestroy:
		if id == "" {
			return usagef("%s needs a branch key ID", kind)
		}
		if kind == kindRetire && p.version == "" {
			return usagef("retire needs --version V: every version older than V is retired")
		}
		r.BranchKeyID, r.KeyVersion = id, p.version
	default:
		if id != "" || p.version != "" {
			return usagef("%s acts on the KMS key: it takes --key ARN, no branch key", kind)
		}
		r.KMSKeyARN = p.kmsKey
		if r.KMSKeyARN == "" {
			r.KMSKeyARN = cfg.KMSKeyARN
		}
	}
	if r, err = newRequest(r, time.Now(), p.expires); err != nil {
		var u usageError
		if errors.As(err, &u) {
			return err
		}
		return usageError{err.Error()}
	}
	f := &changeFile{Request: r, Approvals: []approval{}}
	if err := f.write(p.out); err != nil {
		return fmt.Errorf("writing the change file: %w", err)
	}
	return a.print(requestJSON(f, nil), func() {
		a.printf("proposed %s of %s as request %s in %s; expires %s\n", kind, r.subject(), r.ID(), p.out, r.ExpiresAt.Format(time.RFC3339))
	})
}

// requestView is a change request as keyctl prints it: the subject by
// fingerprint, never the branch key id.
type requestView struct {
	Request   string    `json:"request"`
	Kind      string    `json:"kind"`
	Subject   string    `json:"subject"`
	Proposer  string    `json:"proposer"`
	Reason    string    `json:"reason"`
	ExpiresAt time.Time `json:"expires_at"`
	Approvals []string  `json:"approvals"`
	Approvers []string  `json:"approvers,omitempty"`
}

func requestJSON(f *changeFile, approvers []string) requestView {
	v := requestView{Request: f.Request.ID(), Kind: f.Request.Kind, Subject: f.Request.subject(), Proposer: f.Request.Proposer,
		Reason: f.Request.Reason, ExpiresAt: f.Request.ExpiresAt, Approvals: []string{}, Approvers: approvers}
	for _, ap := range f.Approvals {
		v.Approvals = append(v.Approvals, ap.Signer)
	}
	return v
}

func (a *app) approveCommand() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "approve FILE",
		Short: "sign a change request with your custodian identity",
		Long: `approve shows the change request in FILE and adds your signature (Ed25519,
over the request's canonical bytes) with --identity. It refuses an expired
request, an identity that is not a custodian of the trust policy, and a
second signature by the same custodian. --out writes the signed copy
elsewhere (apply merges copies of one request).`,
		Args: exactArgs(1, "one change FILE"),
		RunE: func(_ *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			me, err := a.loadIdentity(cfg)
			if err != nil {
				return err
			}
			f, err := readChangeFile(args[0])
			if err != nil {
				return err
			}
			if err := approve(cfg, me, f, time.Now()); err != nil {
				return err
			}
			if out == "" {
				out = args[0]
			}
			if err := f.write(out); err != nil {
				return fmt.Errorf("writing the change file: %w", err)
			}
			return a.print(requestJSON(f, nil), func() {
				a.printf("%s approved %s of %s (request %s); %d approval(s), the quorum is %d\n",
					me.Name, f.Request.Kind, f.Request.subject(), f.Request.ID(), len(f.Approvals), cfg.Quorum)
			})
		},
	}
	c.Flags().StringVarP(&out, "out", "o", "", "write the signed change file to `FILE` (default: FILE itself)")
	return c
}

// approve adds me's signature to f.
func approve(cfg *config, me *identity, f *changeFile, now time.Time) error {
	policy, err := newTrustPolicy(cfg.Custodians, cfg.Quorum)
	if err != nil {
		return err
	}
	pub := policy.custodians[me.Name]
	if pub == nil || !pub.Equal(me.key.Public()) {
		return fmt.Errorf("%w: %s with this key", errNotCustodian, me.Name)
	}
	if !now.Before(f.Request.ExpiresAt) {
		return errExpired
	}
	for _, ap := range f.Approvals {
		if ap.Signer == me.Name {
			return fmt.Errorf("%w (%s)", errDuplicateSigner, me.Name)
		}
	}
	if len(f.Approvals) >= maxApprovals {
		return fmt.Errorf("the change file already carries %d approvals", maxApprovals)
	}
	sig := me.Sign(f.Request.canonical())
	f.Approvals = append(f.Approvals, approval{Signer: me.Name, Signature: encodeSig(sig)})
	return nil
}

func (a *app) applyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "apply FILE...",
		Short: "run a change request once the quorum of custodians has approved it",
		Long: `apply checks the approvals of the change request in FILE (several files
holding copies of one request are merged): every signature must verify
under a custodian's key in the trust policy, no custodian may count twice,
the quorum must be met, the request must not have expired nor been applied
before. Then it runs the change and writes it to the audit log with its
approvers. A refusal is written to the audit log too.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > maxApprovals {
				return usagef("want 1 to %d change files", maxApprovals)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := mergeChangeFiles(args)
			if err != nil {
				return err
			}
			s, err := a.open(cmd.Context(), needs{store: true, kms: true, audit: true})
			if err != nil {
				return err
			}
			defer s.Close()
			approvers, err := a.authorize(s, f)
			if err != nil {
				return err
			}
			if err := a.execute(cmd.Context(), s, f, approvers); err != nil {
				return err
			}
			return a.print(requestJSON(f, approvers), func() {
				a.printf("applied %s of %s (request %s), approved by %s\n", f.Request.Kind, f.Request.subject(), f.Request.ID(), strings.Join(approvers, ", "))
			})
		},
	}
}

// authorize checks the change against the trust policy and the audit log
// (a request applied before is a replay); a refusal is logged.
func (a *app) authorize(s *session, f *changeFile) ([]string, error) {
	policy, err := newTrustPolicy(s.cfg.Custodians, s.cfg.Quorum)
	if err != nil {
		return nil, err
	}
	approvers, err := policy.authorize(f, time.Now())
	if err == nil {
		var applied bool
		if applied, err = s.audit.applied(f.Request.ID()); err == nil && applied {
			err = errReplayed
		}
	}
	if err != nil {
		id := f.Request.BranchKeyID
		e := s.audit.hasher.Denial(time.Now(), s.actor, "apply "+f.Request.Kind, id, "request "+f.Request.ID()+": "+denialWord(err))
		if aerr := s.audit.record(e); aerr != nil {
			return nil, errors.Join(err, aerr)
		}
		return nil, err
	}
	return approvers, nil
}

// denialWord is the audit log's fixed word for a refusal.
func denialWord(err error) string {
	for _, c := range []struct {
		err  error
		word string
	}{{errNotCustodian, "not a custodian"}, {errForgedApproval, "forged approval"}, {errDuplicateSigner, "duplicate signer"},
		{errTooFewApprovals, "too few approvals"}, {errExpired, "expired"}, {errReplayed, "replayed"}} {
		if errors.Is(err, c.err) {
			return c.word
		}
	}
	return "refused"
}

// appliedPrefix starts the reason of every applied change's audit record,
// followed by the request's ID.
const appliedPrefix = "applied request "

// execute runs an authorized change and logs it with its approvers.
func (a *app) execute(ctx context.Context, s *session, f *changeFile, approvers []string) error {
	r := f.Request
	var e audit.Event
	now := time.Now()
	switch r.Kind {
	case kindRetire:
		n, err := s.keys.SetMinDecryptionVersion(ctx, r.BranchKeyID, r.KeyVersion)
		if err != nil {
			return err
		}
		e = s.audit.hasher.AdminChange(now, s.actor, fmt.Sprintf("retire %d version(s) before %s", n, r.KeyVersion), r.BranchKeyID, approvers)
	case kindDestroy:
		op, err := a.destroy(ctx, s, r)
		if err != nil {
			return err
		}
		e = s.audit.hasher.Destruction(now, s.actor, op, r.BranchKeyID, approvers)
	case kindDisable:
		if _, err := s.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(r.KMSKeyARN)}); err != nil {
			return fmt.Errorf("disabling the KMS key: %w", err)
		}
		e = s.audit.hasher.AdminChange(now, s.actor, "disable kms key", "", approvers)
	case kindEnable:
		if _, err := s.kms.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(r.KMSKeyARN)}); err != nil {
			return fmt.Errorf("enabling the KMS key: %w", err)
		}
		e = s.audit.hasher.AdminChange(now, s.actor, "enable kms key", "", approvers)
	}
	e.Reason = appliedPrefix + r.ID()
	if r.Reason != "" {
		e.Reason += ": " + r.Reason
	}
	return s.audit.record(e)
}

// applied reports whether the log holds the record of request id applied.
func (l *auditLog) applied(id string) (bool, error) {
	const batch = 1024
	size := l.log.Size()
	for start := int64(0); start < size; start += batch {
		recs, err := l.log.Records(start, min(start+batch, size))
		if err != nil {
			return false, fmt.Errorf("reading the audit log: %w", err)
		}
		for _, b := range recs {
			r, err := audit.ParseRecord(b)
			if err != nil {
				return false, fmt.Errorf("reading the audit log: %w", err)
			}
			if (r.Kind == audit.KindAdminChange || r.Kind == audit.KindDestruction) && strings.HasPrefix(r.Reason, appliedPrefix+id) {
				return true, nil
			}
		}
	}
	return false, nil
}
