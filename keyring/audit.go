package keyring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/phicrypt/phicrypt/audit"
)

// AuditLog is the part of *audit.Log the keyrings write to.
type AuditLog interface {
	Append(e audit.Event) (int64, error)
}

// AuditConfig says where a service's key use is recorded: every call that
// reaches KMS (AuditedKMS) and every stale branch key served
// (AuditStaleUses). Branch key ids and encryption contexts reach the log
// only as the Hasher's keyed digests.
type AuditConfig struct {
	Log    AuditLog
	Hasher *audit.Hasher
	// Actor names the principal the records are about: the service's name
	// (for example its IAM role), never data.
	Actor string
	// Now is the clock for record times (default time.Now).
	Now func() time.Time
}

// Validate reports whether c names a log, a hasher and an actor.
func (c AuditConfig) Validate() error {
	if c.Log == nil || c.Hasher == nil {
		return errors.New("keyring: AuditConfig needs a Log and a Hasher")
	}
	if c.Actor == "" || len(c.Actor) > audit.MaxActor {
		return fmt.Errorf("keyring: AuditConfig.Actor must be 1 to %d bytes", audit.MaxActor)
	}
	return nil
}

// Time is the time a record made now carries (AuditConfig.Now, default
// time.Now).
func (c AuditConfig) Time() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// ErrAuditFailed means a KMS call was made but its audit record could not
// be stored; AuditedKMS then withholds the call's result, so no key is used
// without a record.
var ErrAuditFailed = errors.New("keyring: the audit record of a KMS call could not be stored; the call's result was withheld")

// AuditedKMS wraps a KMS client and records every call in an audit log
// (audit.KindKeyUse): operation, the branch key id (from the
// "branch-key-id" encryption-context key, when the call unwraps or wraps a
// branch key) and the whole encryption context, both as keyed digests, and
// for a failed call the error's code (such as AccessDeniedException) as the
// reason. The record is written after the call returns; if it cannot be
// written the call fails with ErrAuditFailed and its result is dropped
// (fail closed: no data key without an audit record). Give the wrapper to
// NewKMS, NewKMSDiscovery or BranchKeysConfig.Client. It is safe for
// concurrent use if the log is.
type AuditedKMS struct {
	client KMSClient
	cfg    AuditConfig
}

// NewAuditedKMS wraps client.
func NewAuditedKMS(client KMSClient, cfg AuditConfig) (*AuditedKMS, error) {
	if client == nil {
		return nil, errors.New("keyring: NewAuditedKMS needs a client")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &AuditedKMS{client: client, cfg: cfg}, nil
}

func (a *AuditedKMS) record(op string, ec map[string]string, callErr error) error {
	e := a.cfg.Hasher.KeyUse(a.cfg.Time(), a.cfg.Actor, op, ec[bkContextID], ec)
	if callErr != nil {
		e.Reason = "failed"
		var api smithy.APIError
		if errors.As(callErr, &api) {
			if code := api.ErrorCode(); len(code) < audit.MaxReason-len("failed: ") && printableASCII(code) {
				e.Reason = "failed: " + code
			}
		}
	}
	if _, err := a.cfg.Log.Append(e); err != nil {
		return fmt.Errorf("%w: %w", ErrAuditFailed, err)
	}
	return nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// GenerateDataKey implements KMSClient.
func (a *AuditedKMS) GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	out, err := a.client.GenerateDataKey(ctx, in, optFns...)
	if aerr := a.record("GenerateDataKey", in.EncryptionContext, err); aerr != nil {
		if out != nil {
			clear(out.Plaintext)
		}
		return nil, aerr
	}
	return out, err
}

// Encrypt implements KMSClient.
func (a *AuditedKMS) Encrypt(ctx context.Context, in *kms.EncryptInput, optFns ...func(*kms.Options)) (*kms.EncryptOutput, error) {
	out, err := a.client.Encrypt(ctx, in, optFns...)
	if aerr := a.record("Encrypt", in.EncryptionContext, err); aerr != nil {
		return nil, aerr
	}
	return out, err
}

// Decrypt implements KMSClient.
func (a *AuditedKMS) Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	out, err := a.client.Decrypt(ctx, in, optFns...)
	if aerr := a.record("Decrypt", in.EncryptionContext, err); aerr != nil {
		if out != nil {
			clear(out.Plaintext)
		}
		return nil, aerr
	}
	return out, err
}

// String names the type and the actor; the Hasher's key never shows.
func (a AuditedKMS) String() string { return a.cfg.String() }

// Format implements fmt.Formatter: every verb prints String.
func (a AuditedKMS) Format(f fmt.State, _ rune) { io.WriteString(f, a.String()) }

// LogValue implements slog.LogValuer.
func (a AuditedKMS) LogValue() slog.Value { return slog.StringValue(a.String()) }

// String names the actor; the Hasher's key never shows.
func (c AuditConfig) String() string { return fmt.Sprintf("keyring.AuditConfig(actor %q)", c.Actor) }

// Format implements fmt.Formatter: every verb prints String.
func (c AuditConfig) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// LogValue implements slog.LogValuer.
func (c AuditConfig) LogValue() slog.Value { return slog.StringValue(c.String()) }

// staleHook joins a HierarchicalConfig's OnStaleUse and Audit into the
// cache's callback, which also gets the branch key id to digest.
func staleHook(user func(StaleUse), cfg *AuditConfig) (func(id string, u StaleUse), error) {
	if cfg == nil {
		if user == nil {
			return nil, nil
		}
		return func(_ string, u StaleUse) { user(u) }, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := *cfg
	return func(id string, u StaleUse) {
		reason := "store unavailable"
		if errors.Is(u.Err, context.DeadlineExceeded) {
			reason = "store read timed out"
		}
		_, _ = c.Log.Append(c.Hasher.StaleServe(c.Time(), c.Actor, id, reason))
		if user != nil {
			user(u)
		}
	}, nil
}
