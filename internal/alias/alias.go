// Package alias tells whether two byte slices share memory, so that an
// append-style API can refuse to write its output over an input it has not
// read yet (crypto/cipher panics there; phicrypt's APIs write elsewhere).
package alias

import "unsafe"

// Overlap reports whether x and y share any byte of memory. Go orders
// pointers only through unsafe; the addresses are compared, never
// dereferenced.
func Overlap(x, y []byte) bool {
	return len(x) > 0 && len(y) > 0 &&
		uintptr(unsafe.Pointer(&x[0])) <= uintptr(unsafe.Pointer(&y[len(y)-1])) &&
		uintptr(unsafe.Pointer(&y[0])) <= uintptr(unsafe.Pointer(&x[len(x)-1]))
}

// Room is the spare capacity of dst: where an append to it writes.
func Room(dst []byte) []byte { return dst[len(dst):cap(dst)] }
