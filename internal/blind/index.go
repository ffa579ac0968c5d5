package blind

import (
	"encoding/binary"
	"fmt"
)

// Caps on what Sum and SumCompound accept. Values come from records and
// queries, so their sizes are bounded here rather than trusted.
const (
	// MaxValueLen is the longest value, in bytes, that an index accepts.
	MaxValueLen = 64 << 10
	// MaxCompoundValues is the most values a compound index combines.
	MaxCompoundValues = 16
)

// Index computes a blind index: HMAC-SHA-256 of a value under the index's
// key, truncated to the index's width. Create one per indexed column (or
// column group) with [NewIndex], under a key derived for that index alone.
// An Index is safe for concurrent use and never prints its key.
type Index struct {
	mac  keyedMAC
	bits int
}

// NewIndex returns an index of the given width in bits (1..256) under key,
// which must be [KeySize] bytes and is copied. Choose bits with [Recommend].
func NewIndex(key []byte, bits int) (*Index, error) {
	if bits < 1 || bits > 256 {
		return nil, fmt.Errorf("%w (got %d)", ErrBits, bits)
	}
	x := &Index{bits: bits}
	if err := x.mac.init(key); err != nil {
		return nil, err
	}
	return x, nil
}

// Bits returns the index's width in bits.
func (x *Index) Bits() int { return x.bits }

// Len returns the length in bytes of the index values Sum appends:
// ceil(Bits/8).
func (x *Index) Len() int { return (x.bits + 7) / 8 }

// Sum appends the index value of value to dst and returns the result. The
// index value is the first Bits bits of HMAC-SHA-256(key, value), in
// big-endian bit order: the first Len bytes of the MAC, with the unused
// low-order bits of the last byte cleared. Sum allocates nothing when dst
// has room for Len more bytes. It fails only for values longer than
// [MaxValueLen].
//
// Sum MACs the value as is. Do not use one Index for both Sum and
// SumCompound: give each index its own key.
func (x *Index) Sum(dst, value []byte) ([]byte, error) {
	if len(value) > MaxValueLen {
		return nil, ErrValueTooLarge
	}
	st := x.mac.get()
	st.h.Write(value)
	dst = x.truncate(dst, st.finish())
	x.mac.put(st)
	return dst, nil
}

// SumCompound appends the index value of several values (1 to
// [MaxCompoundValues], each at most [MaxValueLen] bytes) to dst, for an
// index over a group of fields such as (last name, date of birth). The MAC
// input encodes each value as its length, 4 bytes big-endian, followed by
// its bytes, so ("ab", "c") and ("a", "bc") differ. Truncation and
// allocation are as for Sum.
func (x *Index) SumCompound(dst []byte, values ...[]byte) ([]byte, error) {
	if err := checkCompound(values); err != nil {
		return nil, err
	}
	st := x.mac.get()
	for _, v := range values {
		binary.BigEndian.PutUint32(st.prefix[:], uint32(len(v)))
		st.h.Write(st.prefix[:])
		st.h.Write(v)
	}
	dst = x.truncate(dst, st.finish())
	x.mac.put(st)
	return dst, nil
}

func checkCompound(values [][]byte) error {
	switch {
	case len(values) == 0:
		return ErrNoValues
	case len(values) > MaxCompoundValues:
		return fmt.Errorf("%w (got %d)", ErrTooManyValues, len(values))
	}
	for i, v := range values {
		if len(v) > MaxValueLen {
			return fmt.Errorf("compound value %d: %w", i, ErrValueTooLarge)
		}
	}
	return nil
}

// truncate appends the first x.bits bits of mac to dst.
func (x *Index) truncate(dst, mac []byte) []byte {
	n := x.Len()
	dst = append(dst, mac[:n]...)
	if r := x.bits % 8; r != 0 {
		dst[len(dst)-1] &= 0xff << (8 - r)
	}
	return dst
}

// Format prints the index's width and never its key, whatever the verb.
func (x *Index) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "blind.Index(%d bits)", x.bits)
}
