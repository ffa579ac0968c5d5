package phicrypt

import (
	"errors"
	"strings"

	"github.com/phicrypt/phicrypt/keyring"
)

// Sentinel errors; every error from Decrypt and its streaming forms wraps one
// of them (test with errors.Is). None of them, nor any error phicrypt returns,
// contains plaintext, key bytes or encryption-context values.
var (
	// ErrMalformed: the bytes are not a message phicrypt can parse
	// (unknown version or suite, bad lengths, truncation, trailing data).
	ErrMalformed = errors.New("phicrypt: malformed message")
	// ErrAuthentication: a tag or signature did not verify, or the key
	// commitment did not match. The message was altered, or it was not
	// made with this data key.
	ErrAuthentication = errors.New("phicrypt: message authentication failed")
	// ErrCommitmentPolicy: the configured commitment policy forbids the
	// message's algorithm suite.
	ErrCommitmentPolicy = errors.New("phicrypt: the commitment policy forbids this algorithm suite")
	// ErrLimit: the message exceeds a configured limit (encrypted data
	// keys, header size, frame length).
	ErrLimit = errors.New("phicrypt: message exceeds a configured limit")
	// ErrContext: the encryption context lacks a required key, or a pair
	// the caller expects does not match.
	ErrContext = errors.New("phicrypt: encryption context does not meet the requirements")
	// ErrNoKey: no keyring could unwrap the message's data key. The
	// keyring's own error is wrapped too.
	ErrNoKey = errors.New("phicrypt: no keyring could unwrap the data key")
)

// Stage names where in a message a failure was found.
type Stage string

// Stages of decryption, in the order they are reached.
const (
	StageHeader     Stage = "header"
	StageEDK        Stage = "encrypted data keys"
	StageCommitment Stage = "key commitment"
	StageFrame      Stage = "frame"
	StageSignature  Stage = "signature"
)

// MessageError reports a message that failed to decrypt: where, and which
// sentinel applies.
type MessageError struct {
	Stage Stage
	Err   error  // one of the sentinels above
	What  string // a fixed description, never message content; empty when the cause says it
	cause error  // an underlying error (keyring failures), if any
}

func (e *MessageError) Error() string {
	s := e.Err.Error() + " at " + string(e.Stage)
	if e.What != "" {
		s += ": " + e.What
	}
	if e.cause != nil {
		s += ": " + causeText(e.cause)
	}
	return s
}

// causeText is a keyring's error as it reads after ErrNoKey's "no keyring
// could unwrap the data key": without the keyring's own sentence saying the
// same (keyring.ErrUnwrapFailed), so the step is named once.
func causeText(err error) string {
	msg := err.Error()
	if errors.Is(err, keyring.ErrUnwrapFailed) {
		if rest, ok := strings.CutPrefix(msg, keyring.ErrUnwrapFailed.Error()+": "); ok {
			return rest
		}
	}
	return msg
}

// Unwrap returns the sentinel and the underlying cause.
func (e *MessageError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.Err, e.cause}
	}
	return []error{e.Err}
}

func malformed(stage Stage, what string) error {
	return &MessageError{Stage: stage, Err: ErrMalformed, What: what}
}

func authFailed(stage Stage, what string) error {
	return &MessageError{Stage: stage, Err: ErrAuthentication, What: what}
}
