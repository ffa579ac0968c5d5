package fieldenc

import "reflect"

// Named types (type MRN string) reach the encodings through reflect; the
// common unnamed ones are handled by type switches first.

type plainKind uint8

const (
	kString plainKind = iota + 1
	kBytes
	kBool
	kInt
	kUint
)

func kindOf[T Plain](v *T) plainKind {
	switch reflect.TypeFor[T]().Kind() {
	case reflect.String:
		return kString
	case reflect.Slice:
		return kBytes
	case reflect.Bool:
		return kBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return kInt
	}
	return kUint
}

func elem[T any](v *T) reflect.Value { return reflect.ValueOf(v).Elem() }

func appendReflectString[T any](dst []byte, v *T) []byte { return append(dst, elem(v).String()...) }
func appendReflectBytes[T any](dst []byte, v *T) []byte  { return append(dst, elem(v).Bytes()...) }
func reflectBool[T any](v *T) bool                       { return elem(v).Bool() }
func reflectInt[T any](v *T) int64                       { return elem(v).Int() }
func reflectUint[T any](v *T) uint64                     { return elem(v).Uint() }
func setReflectString[T any](v *T, s string)             { elem(v).SetString(s) }
func setReflectBytes[T any](v *T, b []byte)              { elem(v).SetBytes(b) }
func setReflectBool[T any](v *T, b bool)                 { elem(v).SetBool(b) }

// setReflectInt stores x unless it overflows the type.
func setReflectInt[T any](v *T, x int64) bool {
	e := elem(v)
	if e.OverflowInt(x) {
		return false
	}
	e.SetInt(x)
	return true
}

func setReflectUint[T any](v *T, x uint64) bool {
	e := elem(v)
	if e.OverflowUint(x) {
		return false
	}
	e.SetUint(x)
	return true
}
