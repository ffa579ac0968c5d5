package keyring

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/phicrypt/phicrypt/internal/steperr"
	"github.com/phicrypt/phicrypt/keystore"
)

// ErrInvalid is keystore.ErrInvalid: a request refused whatever the store
// holds (an id, version or count out of range).
var ErrInvalid = keystore.ErrInvalid

var (
	// ErrNoMatchingKey means no encrypted data key of the message was one
	// this keyring could try: the message was written for other keys.
	ErrNoMatchingKey = errors.New("keyring: no encrypted data key of the message is for this keyring's keys")
	// ErrUnwrapFailed means the keyring tried its keys and none unwrapped
	// the data key (a wrong key, a wrong encryption context, or KMS refused).
	ErrUnwrapFailed = errors.New("keyring: no encrypted data key could be unwrapped")
	// ErrDataKeyPresent is a programming error in a keyring chain: the
	// materials already hold a data key where the keyring must produce it.
	ErrDataKeyPresent = errors.New("keyring: the decryption materials already hold a data key")
)

// unwrapError joins the per-key failures under ErrUnwrapFailed, so callers
// test with errors.Is and operators can still read why each key failed. A
// nested keyring's unwrap failure contributes its own per-key failures, so
// ErrUnwrapFailed's sentence appears once however deep the keyrings nest.
func unwrapError(attempts []error) error {
	if len(attempts) == 0 {
		return ErrNoMatchingKey
	}
	if len(attempts) == 1 && errors.Is(attempts[0], ErrUnwrapFailed) {
		return attempts[0] // a nested keyring has said it already
	}
	var flat []error
	for _, err := range attempts {
		if nested, ok := err.(*unwrapFailure); ok {
			flat = append(flat, nested.attempts...)
		} else {
			flat = append(flat, err)
		}
	}
	return &unwrapFailure{attempts: flat}
}

// unwrapFailure is ErrUnwrapFailed with each key's failure.
type unwrapFailure struct{ attempts []error }

func (e *unwrapFailure) Error() string {
	return ErrUnwrapFailed.Error() + ": " + errors.Join(e.attempts...).Error()
}

func (e *unwrapFailure) Unwrap() []error { return append([]error{ErrUnwrapFailed}, e.attempts...) }

// IsTransient reports whether err is a failure worth retrying later, such as
// KMS throttling, a KMS internal error or a network failure, as opposed to a
// refusal (a disabled key, denied access, a wrong context) that must stand.
// It follows the AWS SDK's own retry classification.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	// A shared cache load that ran out of its own time (the KMS or store
	// call hung) is worth retrying; a caller's own deadline never reaches
	// it, since loads run detached from callers.
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	return retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary
}

// wrapStep names a step of this package over err, which may already begin
// "keyring: " (a step below this one): the message says "keyring:" once,
// then each step, then err's own words.
func wrapStep(err error, format string, args ...any) error {
	return steperr.Wrap("keyring: ", err, format, args...)
}
