package fieldenc

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"unsafe"
)

var bytesType = reflect.TypeFor[[]byte]()

type accessKind uint8

const (
	accString accessKind = iota + 1 // sealed in place, text form
	accBytes                        // sealed in place, binary form
	accSealed                       // a Sealed[T]
)

// access says how a Codec reads and writes one field.
type access struct {
	kind accessKind
	ptr  bool // a pointer field: nil is NULL and stays nil
	enc  indexEncoding
}

var errAlreadySealed = errors.New("holds a sealed value already (Seal twice?); Open it first")

// accessOf classifies a field type that holds an encrypted value and
// returns its plaintext type.
func accessOf(t reflect.Type) (access, reflect.Type, error) {
	var a access
	if t.Kind() == reflect.Pointer {
		a.ptr, t = true, t.Elem()
	}
	switch {
	case reflect.PointerTo(t).Implements(sealedFieldType):
		a.kind = accSealed
		return a, reflect.New(t).Interface().(sealedField).plainType(), nil
	case t.Kind() == reflect.String:
		a.kind = accString
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		a.kind = accBytes
	default:
		return a, nil, fmt.Errorf("a %v cannot hold its own ciphertext; declare it fieldenc.Sealed[%v]", t, t)
	}
	return a, t, nil
}

// target resolves the field f (addressable) through a pointer; ok is false
// for a nil pointer (NULL).
func (a access) target(f reflect.Value) (reflect.Value, bool) {
	if a.ptr {
		if f.IsNil() {
			return f, false
		}
		f = f.Elem()
	}
	return f, true
}

// plain returns the field's plaintext encoding: a view of the field's own
// bytes for strings and bytes (Seal writes fields only after it has read
// them all), else appended to dst. null reports NULL.
func (a access) plain(f reflect.Value, dst []byte) (pt, buf []byte, null bool, err error) {
	f, ok := a.target(f)
	if !ok {
		return nil, dst, true, nil
	}
	switch a.kind {
	case accString:
		return stringBytes(f.String()), dst, false, nil
	case accBytes:
		if f.IsNil() {
			return nil, dst, true, nil
		}
		return f.Bytes(), dst, false, nil
	}
	return sealedPlain(f.Addr().Interface().(sealedField), dst)
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
	a := f.access
	if a.ptr {
		if *(*unsafe.Pointer)(p) == nil {
			return nil, dst, true, nil
		}
		p = *(*unsafe.Pointer)(p)
	}
	switch a.kind {
	case accString:
		return stringBytes(*(*string)(p)), dst, false, nil
	case accBytes:
		b := *(*[]byte)(p)
		return b, dst, b == nil, nil
	}
	return sealedPlain(f.at(p), dst)
}

// setSealedAt is setSealed for a direct field at address p.
func (f *fieldPlan) setSealedAt(p unsafe.Pointer, bin []byte) {
	if f.access.ptr {
		p = *(*unsafe.Pointer)(p)
	}
	switch f.access.kind {
	case accString:
		*(*string)(p) = string(appendText(nil, bin))
	case accBytes:
		*(*[]byte)(p) = bin
	default:
		f.at(p).setSealed(bin)
	}
}

// setSealed stores the binary sealed form into the field.
func (a access) setSealed(f reflect.Value, bin []byte) {
	f, _ = a.target(f)
	switch a.kind {
	case accString:
		f.SetString(string(appendText(nil, bin)))
	case accBytes:
		f.SetBytes(bin)
	default:
		f.Addr().Interface().(sealedField).setSealed(bin)
	}
}

// stored returns the field's sealed binary form (decoded from text), or its
// legacy plaintext (legacy true), or null.
func (a access) stored(f reflect.Value) (bin []byte, legacy, null bool, err error) {
	f, ok := a.target(f)
	if !ok {
		return nil, false, true, nil
	}
	switch a.kind {
	case accString:
		s := stringBytes(f.String())
		if !isText(s) {
			return s, true, false, nil
		}
		bin, err = decodeText(nil, s)
		return bin, false, false, err
	case accBytes:
		if f.IsNil() {
			return nil, false, true, nil
		}
		b := f.Bytes()
		if _, err := parse(b); err != nil {
			return b, true, false, nil
		}
		return b, false, false, nil
	}
	sf := f.Addr().Interface().(sealedField)
	if sf.isNull() {
		return nil, false, true, nil
	}
	bin, legacy = sf.stored()
	if bin == nil { // plaintext only: nothing to open
		return nil, false, true, nil
	}
	return bin, legacy, false, nil
}

// setPlain stores an opened plaintext into the field.
func (a access) setPlain(f reflect.Value, b []byte) error {
	f, _ = a.target(f)
	switch a.kind {
	case accString:
		f.SetString(string(b))
	case accBytes:
		f.SetBytes(append([]byte{}, b...))
	default:
		return f.Addr().Interface().(sealedField).setPlain(b)
	}
	return nil
}

// setLegacy stores a legacy plaintext (Migration mode) into the field:
// strings and bytes as they are; a Sealed of another type parses its text.
func (a access) setLegacy(f reflect.Value, b []byte) error {
	if a.kind != accSealed {
		return nil // the field already holds it
	}
	f, _ = a.target(f)
	return f.Addr().Interface().(sealedField).setLegacy(b)
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
