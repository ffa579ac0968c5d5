package custody

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/phicrypt/phicrypt/audit"
	"github.com/phicrypt/phicrypt/keystore"
)

// KMSKeyAdmin is the part of the aws-sdk-go-v2 KMS client that Apply uses
// to disable and enable a KMS key; *kms.Client satisfies it.
type KMSKeyAdmin interface {
	DisableKey(ctx context.Context, in *kms.DisableKeyInput, optFns ...func(*kms.Options)) (*kms.DisableKeyOutput, error)
	EnableKey(ctx context.Context, in *kms.EnableKeyInput, optFns ...func(*kms.Options)) (*kms.EnableKeyOutput, error)
}

// ExecutorConfig says what an Executor carries changes out with.
type ExecutorConfig struct {
	// Authority authorizes each change (required); its audit log also
	// receives a destruction record after each destroy.
	Authority *Authority
	// Keys creates, rotates, retires and destroys branch keys (required).
	Keys *BranchKeys
	// KMS disables and enables KMS keys (ActionDisable, ActionEnable): the
	// custodian's KMS client. Nil refuses those changes.
	KMS KMSKeyAdmin
	// ReEncrypter moves wrapped versions under another KMS key
	// (ActionRewrap): the custodian's KMS client. Nil refuses rewrap.
	ReEncrypter KMSReEncrypter
	// Rewrap adjusts rewraps (progress, checkpoint and resume); its
	// EncryptionContext is filled in from Keys when unset.
	Rewrap RewrapOptions
	// AfterDestroy, when set, is called with the branch key id right after
	// a key or one of its versions is destroyed, so that caches in this
	// process forget it at once (keyring.Hierarchical.Forget,
	// phicrypt.Cache.ForgetBranchKey, fieldenc.Table.Forget); other
	// processes stop using it within their keyring's CacheTTL.
	AfterDestroy func(branchKeyID string)
}

// Executor carries out quorum-approved changes: Apply authorizes a request
// with its approvals (Authority.Authorize, which spends the request so it
// cannot be replayed, and records the change and its approvers in the
// audit log) and only then performs it. It is the gated path to every
// administrative operation; the methods of BranchKeys are ungated and are
// meant for set-up and tests.
type Executor struct {
	cfg ExecutorConfig
}

// NewExecutor returns an Executor over cfg.
func NewExecutor(cfg ExecutorConfig) (*Executor, error) {
	if cfg.Authority == nil || cfg.Keys == nil {
		return nil, errors.New("custody: ExecutorConfig needs an Authority and BranchKeys")
	}
	if cfg.Rewrap.EncryptionContext == nil {
		cfg.Rewrap.EncryptionContext = cfg.Keys.EncryptionContext
	}
	return &Executor{cfg: cfg}, nil
}

// Applied says what Apply did.
type Applied struct {
	// Authorization is the verified request and its approvers.
	Authorization *Authorization
	// Version is the version a create or rotate made (zero otherwise).
	Version keystore.BranchKeyVersion
	// Rewrap reports a rewrap (nil otherwise).
	Rewrap *RewrapReport
}

// ErrNotCarriedOut means a change was authorized (and its request spent)
// but performing it failed; the error says why. Propose it again to retry:
// every operation is safe to repeat (a destroy of what is destroyed, a
// retirement of what is retired and a rewrap of what has moved do
// nothing).
var ErrNotCarriedOut = errors.New("custody: the change was authorized but not carried out")

// Apply authorizes r with approvals and carries the change out. A refused
// authorization returns the Authority's error (ErrTooFewApprovals,
// ErrForgedApproval, ErrReplayed, ...) and changes nothing. A set-policy
// change is installed by the authorization itself.
func (x *Executor) Apply(ctx context.Context, r *Request, approvals []Approval) (*Applied, error) {
	if r != nil && r.Action == ActionRecover {
		// Refused before authorizing, so the request is not spent.
		return nil, fmt.Errorf("%w: a recover request is carried out with Authority.AuthorizeRecovery and the custodians' escrow shares", ErrInvalid)
	}
	auth, err := x.cfg.Authority.Authorize(ctx, r, approvals)
	if err != nil {
		return nil, err
	}
	out := &Applied{Authorization: auth}
	if err := x.perform(ctx, auth, out); err != nil {
		a := x.cfg.Authority
		if a.cfg.Audit != nil {
			err = errors.Join(err, a.audit(a.cfg.Hasher.Denial(a.cfg.Now(), safeName(r.Proposer), r.Action.String(), r.target(), "authorized but not carried out")))
		}
		return out, fmt.Errorf("%w: %s: %w", ErrNotCarriedOut, r.Action, err)
	}
	return out, nil
}

func (x *Executor) perform(ctx context.Context, auth *Authorization, out *Applied) error {
	c := auth.Request.Change
	keys := x.cfg.Keys
	switch c.Action {
	case ActionSetPolicy:
		return nil
	case ActionCreate:
		v, err := keys.CreateBranchKey(ctx, c.BranchKeyID)
		out.Version = v
		return err
	case ActionRotate:
		v, err := keys.Rotate(ctx, c.BranchKeyID)
		out.Version = v
		return err
	case ActionRetire:
		err := keys.Store().SetState(ctx, c.BranchKeyID, c.Version, keystore.StateDecryptOnly, keystore.StateRetired)
		if errors.Is(err, keystore.ErrConflict) {
			if v, gerr := keys.Store().Get(ctx, c.BranchKeyID, c.Version); gerr == nil && v.State == keystore.StateRetired {
				return nil
			}
		}
		return err
	case ActionDestroyVersion, ActionDestroyKey:
		var err error
		what := "destroy version " + c.Version
		if c.Action == ActionDestroyKey {
			err = keys.DestroyKey(ctx, c.BranchKeyID)
			what = "destroy key"
		} else {
			err = keys.DestroyVersion(ctx, c.BranchKeyID, c.Version)
		}
		if err != nil {
			return err
		}
		if x.cfg.AfterDestroy != nil {
			x.cfg.AfterDestroy(c.BranchKeyID)
		}
		a := x.cfg.Authority
		if a.cfg.Audit == nil {
			return nil
		}
		return a.audit(a.cfg.Hasher.Destruction(a.cfg.Now(), safeName(auth.Request.Proposer), what, c.BranchKeyID, auth.Approvers))
	case ActionDisable, ActionEnable:
		if x.cfg.KMS == nil {
			return errors.New("no KMS client to disable or enable keys with (ExecutorConfig.KMS)")
		}
		arn, err := x.kmsKeyOf(ctx, c)
		if err != nil {
			return err
		}
		if c.Action == ActionDisable {
			_, err = x.cfg.KMS.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(arn)})
		} else {
			_, err = x.cfg.KMS.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(arn)})
		}
		return err
	case ActionRewrap:
		if x.cfg.ReEncrypter == nil {
			return errors.New("no KMS client to rewrap with (ExecutorConfig.ReEncrypter)")
		}
		opts := x.cfg.Rewrap
		opts.BranchKeyID = c.BranchKeyID
		rep, err := Rewrap(ctx, keys.Store(), x.cfg.ReEncrypter, c.KMSKeyARN, opts)
		out.Rewrap = &rep
		return err
	}
	return fmt.Errorf("%w: no such change %d", ErrInvalid, c.Action)
}

// kmsKeyOf is the KMS key a disable or enable names: the one wrapping the
// named version, else the one wrapping the branch key's active version.
func (x *Executor) kmsKeyOf(ctx context.Context, c Change) (string, error) {
	var v keystore.BranchKeyVersion
	var err error
	if c.Version != "" {
		v, err = x.cfg.Keys.Store().Get(ctx, c.BranchKeyID, c.Version)
	} else {
		v, err = x.cfg.Keys.Store().Active(ctx, c.BranchKeyID)
	}
	if err != nil {
		return "", err
	}
	return v.KMSKeyARN, nil
}

// String names the type.
func (x Executor) String() string { return "custody.Executor" }

// Format implements fmt.Formatter: every verb prints String.
func (x Executor) Format(f fmt.State, _ rune) { io.WriteString(f, x.String()) }

// LogValue implements slog.LogValuer.
func (x Executor) LogValue() slog.Value { return slog.StringValue(x.String()) }

// audit appends e to the Authority's log, which must be set.
func (a *Authority) audit(e audit.Event) error {
	if _, err := a.cfg.Audit.Append(e); err != nil {
		return fmt.Errorf("custody: the audit log refused the record: %w", err)
	}
	return nil
}

// String describes the config without its callbacks' contents.
func (c ExecutorConfig) String() string {
	return fmt.Sprintf("custody.ExecutorConfig{KMS set: %t, ReEncrypter set: %t, AfterDestroy set: %t}", c.KMS != nil, c.ReEncrypter != nil, c.AfterDestroy != nil)
}

// Format implements fmt.Formatter: every verb prints String.
func (c ExecutorConfig) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// LogValue implements slog.LogValuer.
func (c ExecutorConfig) LogValue() slog.Value { return slog.StringValue(c.String()) }

// String describes what was applied: the authorization (branch keys by
// fingerprint) and the version made, if any.
func (a Applied) String() string {
	s := "custody.Applied{"
	if a.Authorization != nil && a.Authorization.Request != nil {
		s += a.Authorization.Request.String() + ", approved by " + strings.Join(a.Authorization.Approvers, ", ")
	}
	if a.Version.Version != "" {
		s += ", version " + a.Version.Version
	}
	if a.Rewrap != nil {
		s += fmt.Sprintf(", rewrapped %d of %d", a.Rewrap.Rewrapped, a.Rewrap.Total)
	}
	return s + "}"
}

// Format implements fmt.Formatter: every verb prints String.
func (a Applied) Format(f fmt.State, _ rune) { io.WriteString(f, a.String()) }

// LogValue implements slog.LogValuer.
func (a Applied) LogValue() slog.Value { return slog.StringValue(a.String()) }
