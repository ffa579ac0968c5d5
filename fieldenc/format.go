package fieldenc

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// The field format (docs/FORMAT.md, "Fields"):
//
//	randomized:    01 || key ref (4) || nonce (12) || ciphertext || tag (16)
//	deterministic: 02 || key ref (4) || SIV (16)   || ciphertext
//
// The key ref is the first four bytes of the branch key version's UUID.
// String columns hold the text form: TextPrefix followed by the binary form
// in unpadded base64url.
const (
	versionRandomized    byte = 0x01
	versionDeterministic byte = 0x02

	refLen     = 4
	headerLen  = 1 + refLen
	nonceLen   = 12
	tagLen     = 16
	sivLen     = 16
	randomized = headerLen + nonceLen + tagLen // bytes added to a plaintext
	determined = headerLen + sivLen

	// TextPrefix starts the text form of every sealed value, so a string
	// column can tell sealed values from legacy plaintext (Config.Migration).
	TextPrefix = "phi:"

	// MaxPlaintext caps one field's plaintext: fields are column values,
	// not documents (seal those with the phicrypt package).
	MaxPlaintext = 1 << 20
	// MaxNameLen caps table, column and index names.
	MaxNameLen = 255
	// MaxRowIDLen caps the encoded row identity bound into a field.
	MaxRowIDLen = 1024
)

// maxSealed is the longest binary form a reader accepts.
const maxSealed = MaxPlaintext + randomized

// b64 is strict, so one value has one text form (deterministic fields are
// compared as text); decodeText also refuses the line breaks it skips.
var b64 = base64.RawURLEncoding.Strict()

var (
	// ErrMalformed: the value is not a sealed field (too short, bad text
	// form, too long). In Migration mode a string without TextPrefix is
	// legacy plaintext instead.
	ErrMalformed = errors.New("fieldenc: not a sealed field value")
	// ErrUnsupportedVersion: the value names a field format this phicrypt
	// does not know; upgrade phicrypt.
	ErrUnsupportedVersion = errors.New("fieldenc: unknown field format version; upgrade phicrypt")
	// ErrUnknownKey: no live version of the table's branch key matches the
	// value's key reference (destroyed, or sealed under another branch key).
	ErrUnknownKey = errors.New("fieldenc: no live branch key version matches this value")
	// ErrWrongField: the value does not open for this table, column and
	// row. It was copied from another row or column, or altered; the
	// authenticated encryption cannot tell which, and refuses both.
	ErrWrongField = errors.New("fieldenc: the value does not belong to this table, column and row (copied from elsewhere, or altered)")
	// ErrNotSealed: a value that must be sealed (an index query, a SQL
	// write of a Sealed value that holds only plaintext) is not.
	ErrNotSealed = errors.New("fieldenc: the value is not sealed; call Seal first")
	// ErrTooLarge: a plaintext, name or row identity over its cap.
	ErrTooLarge = errors.New("fieldenc: value over its size cap")
)

// FieldError says which field of a struct failed, by its Go path and
// column name, never by its value.
type FieldError struct {
	Path string // Go field path, for example "Address.Street"
	Err  error
}

func (e *FieldError) Error() string { return "fieldenc: field " + e.Path + ": " + cause(e.Err) }
func (e *FieldError) Unwrap() error { return e.Err }

// stepError is an error of one step of fieldenc ("re-sealing a row"),
// wrapping its cause.
type stepError struct {
	step string
	err  error
}

// wrap names the step that failed with err: "fieldenc: step: cause", with
// the cause's own "fieldenc: " dropped, so a message names the package once.
func wrap(step string, err error) error { return &stepError{step: step, err: err} }

func (e *stepError) Error() string { return "fieldenc: " + e.step + ": " + cause(e.err) }
func (e *stepError) Unwrap() error { return e.err }

// cause is err's message without the "fieldenc: " it may start with.
func cause(err error) string { return strings.TrimPrefix(err.Error(), "fieldenc: ") }

// keyRef is what a sealed value names its branch key version by.
type keyRef [refLen]byte

// parsed is a sealed value split into its parts (aliasing the input).
type parsed struct {
	version byte
	ref     keyRef
	body    []byte // nonce || ciphertext || tag, or SIV || ciphertext
}

// parse splits the binary form, checking only its shape.
func parse(b []byte) (parsed, error) {
	if len(b) < headerLen {
		return parsed{}, ErrMalformed
	}
	p := parsed{version: b[0], body: b[headerLen:]}
	copy(p.ref[:], b[1:headerLen])
	switch p.version {
	case versionRandomized:
		if len(b) < randomized {
			return parsed{}, ErrMalformed
		}
	case versionDeterministic:
		if len(b) < determined {
			return parsed{}, ErrMalformed
		}
	default:
		return parsed{}, fmt.Errorf("%w (version byte %#02x)", ErrUnsupportedVersion, p.version)
	}
	if len(b) > maxSealed {
		return parsed{}, fmt.Errorf("%w: a sealed field is at most %d bytes", ErrMalformed, maxSealed)
	}
	return p, nil
}

// appendText appends the text form of the binary sealed value b.
func appendText(dst, b []byte) []byte {
	dst = append(dst, TextPrefix...)
	return b64.AppendEncode(dst, b)
}

// isText reports whether s has the text form's prefix.
func isText(s []byte) bool {
	return len(s) >= len(TextPrefix) && string(s[:len(TextPrefix)]) == TextPrefix
}

// decodeText appends the binary form of the text form s to dst.
func decodeText(dst, s []byte) ([]byte, error) {
	if !isText(s) {
		return nil, ErrMalformed
	}
	enc := s[len(TextPrefix):]
	if bytes.ContainsAny(enc, "\r\n") {
		return nil, fmt.Errorf("%w: line breaks in the text form", ErrMalformed)
	}
	if b64.DecodedLen(len(enc)) > maxSealed {
		return nil, fmt.Errorf("%w: a sealed field is at most %d bytes", ErrMalformed, maxSealed)
	}
	out, err := b64.AppendDecode(dst, enc)
	if err != nil {
		return nil, fmt.Errorf("%w: bad base64url in the text form", ErrMalformed)
	}
	return out, nil
}

// appendLenPrefixed appends a 2-byte length and b.
func appendLenPrefixed(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// derivationInfo is the HKDF info for one per-table key: a label, the
// purpose, then the table and the column (or index, or purpose) name.
func derivationInfo(purpose byte, table, name string) []byte {
	info := append([]byte("phicrypt fieldenc v1\x00"), purpose)
	info = appendLenPrefixed(info, []byte(table))
	return appendLenPrefixed(info, []byte(name))
}

// Key purposes in derivationInfo.
const (
	purposeRandomized    = 'E'
	purposeDeterministic = 'D'
	purposeBlindIndex    = 'B'
	purposePseudonym     = 'P'
)

func checkName(what, name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("fieldenc: a %s name is 1 to %d bytes", what, MaxNameLen)
	}
	return nil
}
