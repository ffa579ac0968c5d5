// Package steperr names the step that failed over an error that may
// already name its package: "keyring: reading the active version: keystore:
// no such branch key", never "keyring: ...: keyring: ...".
package steperr

import (
	"fmt"
	"strings"
)

// Wrap names step (format and args) of the package whose errors begin with
// prefix (such as "keyring: ") over err: the message says prefix once, then
// the step, then err's own words without a repeated prefix. errors.Is and
// errors.As see err.
func Wrap(prefix string, err error, format string, args ...any) error {
	return &stepError{prefix: prefix, step: fmt.Sprintf(format, args...), err: err}
}

type stepError struct {
	prefix, step string
	err          error
}

func (e *stepError) Error() string {
	return e.prefix + e.step + ": " + strings.TrimPrefix(e.err.Error(), e.prefix)
}

func (e *stepError) Unwrap() error { return e.err }
