package fieldenc

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"time"
	"unsafe"
)

var bytesType = reflect.TypeFor[[]byte]()

// access says how a Codec reads and writes one field: an encrypted field
// is a Sealed[T] (ptr: a *Sealed[T], where nil is NULL and stays nil), a
// blind index field is stored as enc.
type access struct {
	ptr bool
	enc indexEncoding
}

var errAlreadySealed = errors.New("holds a sealed value that was not opened (Seal of a row read back?); Open it first")

// accessOf classifies a field type that holds an encrypted value and
// returns its plaintext type. Only a Sealed[T] may: it refuses to be
// written to a database unsealed, so a failed Seal cannot put its
// plaintext in a column, where a plain string or []byte would.
func accessOf(t reflect.Type) (access, reflect.Type, error) {
	var a access
	if t.Kind() == reflect.Pointer {
		a.ptr, t = true, t.Elem()
	}
	if reflect.PointerTo(t).Implements(sealedFieldType) {
		return a, reflect.New(t).Interface().(sealedField).plainType(), nil
	}
	name := t.String()
	if t == bytesType {
		name = "[]byte"
	}
	if t.Kind() == reflect.String || (t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8) {
		return a, nil, fmt.Errorf("a plain %s would still hold its plaintext after a failed Seal, and an INSERT would store it; declare it fieldenc.Sealed[%s], which refuses to be written unsealed", name, name)
	}
	if sealable(t) {
		return a, nil, fmt.Errorf("a %s cannot hold its own ciphertext; declare it fieldenc.Sealed[%s]", name, name)
	}
	return a, nil, fmt.Errorf("a %s cannot be sealed: an encrypted field is a fieldenc.Sealed[T] whose T is a string, []byte, time.Time, bool or integer type (for a nullable column, use a *fieldenc.Sealed[T] that is nil for NULL)", name)
}

// target resolves the field f (addressable) to its Sealed value; ok is
// false for a nil pointer (NULL).
func (a access) target(f reflect.Value) (sealedField, bool) {
	if a.ptr {
		if f.IsNil() {
			return nil, false
		}
		f = f.Elem()
	}
	return f.Addr().Interface().(sealedField), true
}

// plain returns the field's plaintext encoding: a view of the field's own
// bytes for strings and bytes (Seal writes fields only after it has read
// them all), else appended to dst. null reports NULL.
func (a access) plain(f reflect.Value, dst []byte) (pt, buf []byte, null bool, err error) {
	sf, ok := a.target(f)
	if !ok {
		return nil, dst, true, nil
	}
	return sealedPlain(sf, dst)
}

func sealedPlain(sf sealedField, dst []byte) (pt, buf []byte, null bool, err error) {
	if v, ok := sf.plainView(); ok {
		return v, dst, false, nil
	}
	start := len(dst)
	dst, ok := sf.appendPlain(dst)
	if !ok {
		if sf.isNull() {
			return nil, dst, true, nil
		}
		return nil, dst, false, errAlreadySealed
	}
	return dst[start:], dst, false, nil
}

// plainAt is plain for a direct field at address p.
func (f *fieldPlan) plainAt(p unsafe.Pointer, dst []byte) (pt, buf []byte, null bool, err error) {
	if f.access.ptr {
		if *(*unsafe.Pointer)(p) == nil {
			return nil, dst, true, nil
		}
		p = *(*unsafe.Pointer)(p)
	}
	return sealedPlain(f.at(p), dst)
}

// setSealedAt is setSealed for a direct field at address p.
func (f *fieldPlan) setSealedAt(p unsafe.Pointer, bin []byte) {
	if f.access.ptr {
		p = *(*unsafe.Pointer)(p)
	}
	f.at(p).setSealed(bin)
}

// setSealed stores the binary sealed form into the field.
func (a access) setSealed(f reflect.Value, bin []byte) {
	if sf, ok := a.target(f); ok {
		sf.setSealed(bin)
	}
}

// stored returns the field's sealed binary form, or its legacy plaintext
// (legacy true), or null.
func (a access) stored(f reflect.Value) (bin []byte, legacy, null bool) {
	sf, ok := a.target(f)
	if !ok || sf.isNull() {
		return nil, false, true
	}
	bin, legacy = sf.stored()
	if bin == nil { // plaintext only: nothing to open
		return nil, false, true
	}
	return bin, legacy, false
}

// setPlain stores an opened plaintext into the field.
func (a access) setPlain(f reflect.Value, b []byte) error {
	sf, _ := a.target(f)
	return sf.setPlain(b)
}

// setLegacy stores a legacy plaintext (Migration mode) into the field,
// parsed from its text for types other than strings and bytes.
func (a access) setLegacy(f reflect.Value, b []byte) error {
	sf, _ := a.target(f)
	return sf.setLegacy(b)
}

// stringBytes views s as bytes without copying; the bytes must not be
// written.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// indexEncoding is the Go type a blind index is stored as.
type indexEncoding uint8

const (
	indexBytes indexEncoding = iota + 1 // the truncated MAC
	indexHex                            // lowercase hex of the truncated MAC
	indexInt64                          // the first bits of the MAC as a non-negative integer
)

func indexEncodingOf(t reflect.Type) (indexEncoding, bool) {
	switch {
	case t == bytesType:
		return indexBytes, true
	case t.Kind() == reflect.String:
		return indexHex, true
	case t.Kind() == reflect.Int64:
		return indexInt64, true
	}
	return 0, false
}

// value converts a truncated MAC of bits bits into the index's Go value.
func (e indexEncoding) value(mac []byte, bits int) any {
	switch e {
	case indexHex:
		return hex.EncodeToString(mac)
	case indexInt64:
		var buf [8]byte
		copy(buf[:], mac)
		return int64(binary.BigEndian.Uint64(buf[:]) >> (64 - bits))
	}
	return append([]byte(nil), mac...)
}

// set stores an index value into the index field.
func (e indexEncoding) set(f reflect.Value, mac []byte, bits int) {
	switch v := e.value(mac, bits).(type) {
	case string:
		f.SetString(v)
	case int64:
		f.SetInt(v)
	case []byte:
		f.SetBytes(v)
	}
}

// zero clears an index field (a source was NULL).
func (e indexEncoding) zero(f reflect.Value) { f.SetZero() }

// rowIDBytes encodes the row identity: strings and bytes as they are,
// integers as 8 bytes big-endian.
func rowIDBytes(f reflect.Value, dst []byte) []byte {
	switch f.Kind() {
	case reflect.String:
		return append(dst, f.String()...)
	case reflect.Slice:
		return append(dst, f.Bytes()...)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return binary.BigEndian.AppendUint64(dst, uint64(f.Int()))
	}
	return binary.BigEndian.AppendUint64(dst, f.Uint())
}

// sealable reports whether fieldenc.Sealed[t] is a type (t satisfies Plain).
func sealable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return t == bytesType || t == reflect.TypeFor[time.Time]()
}
