package fieldenc

import "unsafe"

// anyOverlap reports whether x and y share any byte of memory. Go orders
// pointers only through unsafe; the addresses are compared, never
// dereferenced.
func anyOverlap(x, y []byte) bool {
	return len(x) > 0 && len(y) > 0 &&
		uintptr(unsafe.Pointer(&x[0])) <= uintptr(unsafe.Pointer(&y[len(y)-1])) &&
		uintptr(unsafe.Pointer(&y[0])) <= uintptr(unsafe.Pointer(&x[len(x)-1]))
}
