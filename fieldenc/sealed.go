package fieldenc

import (
	"database/sql/driver"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"time"
	"unsafe"
)

// Redacted is what a PHI value prints as.
const Redacted = "[REDACTED]"

// Plain lists the types a Sealed column may hold.
type Plain interface {
	~string | ~[]byte | time.Time | ~bool |
		~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

// Sealed is a PHI column value of type T: the plaintext (once set or
// opened) and the sealed form (once sealed or scanned). It prints as
// [REDACTED] with every fmt verb, through slog, and in JSON when it holds
// only plaintext; JSON of a sealed value is its sealed text form. A
// Table's Seal fills the sealed form from the plaintext, Open the reverse.
// Encrypted fields are always Sealed (Sealed[string] and Sealed[[]byte]
// where a plain string or []byte would be), so that a row whose Seal
// failed cannot be written with its plaintext.
//
// For SQL it is a driver.Valuer (the text form, so it fits TEXT and
// VARCHAR columns, or NULL; ErrNotSealed while it holds only a plaintext)
// and a sql.Scanner (text or binary form, or NULL). The zero value is
// NULL.
type Sealed[T Plain] struct {
	v      T
	valid  bool   // v holds a plaintext
	sealed []byte // binary sealed form, or legacy plaintext when legacy
	legacy bool
}

// Of returns a Sealed holding plaintext v, ready to seal.
func Of[T Plain](v T) Sealed[T] { return Sealed[T]{v: v, valid: true} }

// Set replaces the plaintext, dropping any sealed form.
func (s *Sealed[T]) Set(v T) { *s = Sealed[T]{v: v, valid: true} }

// SetNull makes the value NULL.
func (s *Sealed[T]) SetNull() { *s = Sealed[T]{} }

// Get returns the plaintext; ok is false when there is none (NULL, or
// sealed and not yet opened).
func (s Sealed[T]) Get() (v T, ok bool) { return s.v, s.valid }

// IsNull reports whether the value is NULL: no plaintext, nothing sealed.
func (s Sealed[T]) IsNull() bool { return !s.valid && s.sealed == nil }

// Ciphertext returns the binary sealed form (nil if not sealed).
func (s Sealed[T]) Ciphertext() []byte {
	if s.legacy {
		return nil
	}
	return s.sealed
}

// String returns Redacted.
func (Sealed[T]) String() string { return Redacted }

// GoString returns a redacted Go form.
func (Sealed[T]) GoString() string { return "fieldenc.Sealed{" + Redacted + "}" }

// Format prints Redacted for every verb (%v, %+v, %#v, %s, %q, %x, ...).
func (Sealed[T]) Format(f fmt.State, _ rune) { f.Write([]byte(Redacted)) }

// LogValue implements slog.LogValuer.
func (Sealed[T]) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON writes the sealed text form, null, or "[REDACTED]" for a
// plaintext that was never sealed (put the plaintext from Get into JSON
// yourself when it is really meant to leave).
func (s Sealed[T]) MarshalJSON() ([]byte, error) {
	switch {
	case s.sealed != nil && !s.legacy:
		return json.Marshal(string(appendText(nil, s.sealed)))
	case s.IsNull():
		return []byte("null"), nil
	}
	return json.Marshal(Redacted)
}

// UnmarshalJSON reads what MarshalJSON writes, except "[REDACTED]".
func (s *Sealed[T]) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = Sealed[T]{}
		return nil
	}
	var text string
	if err := json.Unmarshal(b, &text); err != nil {
		return fmt.Errorf("%w: a sealed JSON value is a string", ErrMalformed)
	}
	bin, err := decodeText(nil, []byte(text))
	if err != nil {
		return err
	}
	*s = Sealed[T]{sealed: bin}
	return nil
}

// Value implements driver.Valuer: the sealed text form, or NULL.
// ErrNotSealed if it holds a plaintext that was never sealed.
func (s Sealed[T]) Value() (driver.Value, error) {
	switch {
	case s.sealed != nil && !s.legacy:
		return string(appendText(nil, s.sealed)), nil
	case s.IsNull():
		return nil, nil
	}
	return nil, ErrNotSealed
}

// Scan implements sql.Scanner: a text or binary sealed form, or NULL.
// Anything else is kept as legacy plaintext, which only a Table in
// Migration mode opens.
func (s *Sealed[T]) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*s = Sealed[T]{}
		return nil
	case string:
		b = []byte(v)
	case []byte:
		b = v
	case time.Time: // legacy plaintext columns of native types (Migration)
		b = []byte(v.UTC().Format(time.RFC3339Nano))
	case int64:
		b = strconv.AppendInt(nil, v, 10)
	case bool:
		b = strconv.AppendBool(nil, v)
	default:
		return fmt.Errorf("fieldenc: cannot scan a %T into a Sealed column", src)
	}
	*s = Sealed[T]{}
	if isText(b) {
		bin, err := decodeText(nil, b)
		if err != nil {
			return err
		}
		s.sealed = bin
		return nil
	}
	if _, err := parse(b); err == nil {
		s.sealed = append([]byte(nil), b...)
		return nil
	}
	s.sealed, s.legacy = append([]byte(nil), b...), true
	return nil
}

// sealedField is how a Codec reaches any Sealed[T].
type sealedField interface {
	appendPlain(dst []byte) (b []byte, ok bool)
	setPlain(b []byte) error
	stored() (b []byte, legacy bool)
	setLegacy(b []byte) error
	setSealed(b []byte)
	isNull() bool
	plainType() reflect.Type
	plainView() ([]byte, bool)
	at() func(unsafe.Pointer) sealedField
}

func (s *Sealed[T]) isNull() bool { return s.IsNull() }

func (s *Sealed[T]) stored() ([]byte, bool) { return s.sealed, s.legacy }

func (s *Sealed[T]) setSealed(b []byte) { s.sealed, s.legacy = b, false }

func (s *Sealed[T]) appendPlain(dst []byte) ([]byte, bool) {
	if !s.valid {
		return dst, false
	}
	return appendEncoded(dst, &s.v), true
}

// setLegacy takes a legacy plaintext (Migration mode): strings and bytes as
// they are, other types from their text: decimal integers, true or false,
// RFC 3339 times or dates (2006-01-02). The value then needs sealing.
func (s *Sealed[T]) setLegacy(b []byte) error {
	var v T
	if t, ok := any(&v).(*time.Time); ok {
		parsed, err := parseLegacyTime(string(b))
		if err != nil {
			return err
		}
		*t = parsed
	} else if err := parseLegacy(&v, b); err != nil {
		return err
	}
	*s = Sealed[T]{v: v, valid: true}
	return nil
}

func parseLegacyTime(text string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly, time.DateTime} {
		if t, err := time.Parse(layout, text); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errPlainEncoding
}

func parseLegacy[T Plain](v *T, b []byte) error {
	ok := true
	switch kindOf(v) {
	case kString:
		setReflectString(v, string(b))
	case kBytes:
		setReflectBytes(v, append([]byte{}, b...))
	case kBool:
		x, err := strconv.ParseBool(string(b))
		ok = err == nil
		setReflectBool(v, x)
	case kInt:
		x, err := strconv.ParseInt(string(b), 10, 64)
		ok = err == nil && setReflectInt(v, x)
	default:
		x, err := strconv.ParseUint(string(b), 10, 64)
		ok = err == nil && setReflectUint(v, x)
	}
	if !ok {
		return errPlainEncoding
	}
	return nil
}

// plainView is the plaintext's own bytes, for strings and bytes.
func (s *Sealed[T]) plainView() ([]byte, bool) {
	if !s.valid {
		return nil, false
	}
	switch v := any(s.v).(type) {
	case string:
		return stringBytes(v), true
	case []byte:
		return v, true
	}
	switch kindOf(&s.v) { // named types: type MRN string
	case kString:
		return stringBytes(elem(&s.v).String()), true
	case kBytes:
		return elem(&s.v).Bytes(), true
	}
	return nil, false
}

func (s *Sealed[T]) setPlain(b []byte) error {
	if err := decodeInto(&s.v, b); err != nil {
		return err
	}
	s.valid = true
	return nil
}

// The plaintext encodings: strings and bytes as they are, booleans as one
// byte, integers as 8 bytes big-endian (two's complement when signed), times
// as 8 bytes of Unix seconds and 4 of nanoseconds (restored in UTC).
func appendEncoded[T Plain](dst []byte, v *T) []byte {
	switch x := any(v).(type) {
	case *time.Time:
		dst = binary.BigEndian.AppendUint64(dst, uint64(x.Unix()))
		return binary.BigEndian.AppendUint32(dst, uint32(x.Nanosecond()))
	}
	switch x := any(*v).(type) {
	case string:
		return append(dst, x...)
	case []byte:
		return append(dst, x...)
	}
	switch k := kindOf(v); k {
	case kString:
		return appendReflectString(dst, v)
	case kBytes:
		return appendReflectBytes(dst, v)
	case kBool:
		if reflectBool(v) {
			return append(dst, 1)
		}
		return append(dst, 0)
	case kInt:
		return binary.BigEndian.AppendUint64(dst, uint64(reflectInt(v)))
	default:
		return binary.BigEndian.AppendUint64(dst, reflectUint(v))
	}
}

var errPlainEncoding = errors.New("fieldenc: the opened plaintext does not fit the column's type")

func decodeInto[T Plain](v *T, b []byte) error {
	if t, ok := any(v).(*time.Time); ok {
		if len(b) != 12 {
			return errPlainEncoding
		}
		sec, nsec := int64(binary.BigEndian.Uint64(b)), binary.BigEndian.Uint32(b[8:])
		if nsec >= 1e9 {
			return errPlainEncoding
		}
		*t = time.Unix(sec, int64(nsec)).UTC()
		return nil
	}
	switch kindOf(v) {
	case kString:
		setReflectString(v, string(b))
	case kBytes:
		setReflectBytes(v, append([]byte{}, b...))
	case kBool:
		if len(b) != 1 || b[0] > 1 {
			return errPlainEncoding
		}
		setReflectBool(v, b[0] == 1)
	case kInt:
		if len(b) != 8 {
			return errPlainEncoding
		}
		if !setReflectInt(v, int64(binary.BigEndian.Uint64(b))) {
			return errPlainEncoding
		}
	default:
		if len(b) != 8 {
			return errPlainEncoding
		}
		if !setReflectUint(v, binary.BigEndian.Uint64(b)) {
			return errPlainEncoding
		}
	}
	return nil
}

func (s *Sealed[T]) plainType() reflect.Type { return reflect.TypeFor[T]() }

// at returns how to view a Sealed[T] at an address (a struct field the
// Codec located once, at compile time).
func (*Sealed[T]) at() func(unsafe.Pointer) sealedField {
	return func(p unsafe.Pointer) sealedField { return (*Sealed[T])(p) }
}
