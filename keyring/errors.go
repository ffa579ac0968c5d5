package keyring

import (
	"errors"
	"fmt"
)

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
// test with errors.Is and operators can still read why each key failed.
func unwrapError(attempts []error) error {
	if len(attempts) == 0 {
		return ErrNoMatchingKey
	}
	if len(attempts) == 1 && errors.Is(attempts[0], ErrUnwrapFailed) {
		return attempts[0] // a nested keyring has said it already
	}
	return fmt.Errorf("%w: %w", ErrUnwrapFailed, errors.Join(attempts...))
}
