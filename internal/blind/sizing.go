package blind

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
)

// Assessment describes how an index width fits a domain of distinct values.
type Assessment struct {
	// Bits is the assessed width.
	Bits int
	// ExpectedPerBucket is how many distinct values share one index value
	// on average: distinct / 2^Bits. Below about 2 the index identifies
	// values; far above, every query matches many rows that must be
	// decrypted and discarded.
	ExpectedPerBucket float64
	// Warnings is empty when the width is in the recommended range. Each
	// warning starts with "leaks:", "collides:" or "invalid:".
	Warnings []string
}

// Recommend returns an index width for a column expected to hold distinct
// different values (after normalization), following the CipherSweet and
// Lockbox guidance: the width N must satisfy
//
//	sqrt(distinct) < 2^N < distinct/2
//
// so that each index value is shared by more than two real values on average
// (the index does not identify a value) and by fewer than sqrt(distinct)
// (a query's false positives stay bounded). Of the widths in that range,
// Recommend returns the one whose 2^N is closest, by ratio, to the range's
// geometric middle sqrt(sqrt(distinct) * distinct/2), that is N closest to
// 0.75*log2(distinct) - 0.5, choosing the smaller N on a tie. For one million
// distinct values the range is 1000 < 2^N < 500000, N = 10..18, and
// Recommend returns 14.
//
// The range holds no whole N for distinct ≤ 8 and for distinct = 16; then
// Recommend returns ErrDomainTooSmall: any index over so few values either
// identifies them or matches most rows. Do not index such a column (filter
// after decrypting instead).
func Recommend(distinct uint64) (int, error) {
	lo, hi := widthRange(distinct)
	if lo > hi {
		return 0, fmt.Errorf("%w (%d distinct values)", ErrDomainTooSmall, distinct)
	}
	// N+1 is closer to the middle M = distinct^(3/4) / sqrt(2) than N is
	// when 2^(N+1)/M < M/2^N, that is 2^(4N+4) < distinct^3: compared
	// exactly, without floating-point logarithms.
	x := new(big.Int).SetUint64(distinct)
	cube := new(big.Int).Mul(x, x)
	cube.Mul(cube, x)
	n := lo
	for n < hi && new(big.Int).Lsh(big.NewInt(1), uint(4*n+4)).Cmp(cube) < 0 {
		n++
	}
	return n, nil
}

// widthRange returns the smallest and largest N with
// sqrt(distinct) < 2^N < distinct/2; lo > hi when there is none.
func widthRange(distinct uint64) (lo, hi int) {
	l := bits.Len64(distinct) // 2^k > distinct exactly when k >= l
	// sqrt(distinct) < 2^N  ⇔  2^(2N) > distinct  ⇔  2N >= l.
	lo = max((l+1)/2, 1)
	// 2^N < distinct/2  ⇔  2^(N+1) < distinct: N+1 <= l-1, or l-2 when
	// distinct is a power of two.
	hi = l - 2
	if distinct&(distinct-1) == 0 {
		hi--
	}
	return lo, hi
}

// Assess reports how an index of the given width suits a column of
// distinct values, with warnings when the width is outside the range
// [Recommend] works in.
func Assess(distinct uint64, bits int) Assessment {
	a := Assessment{Bits: bits}
	if bits < 1 || bits > 256 {
		a.Warnings = append(a.Warnings, fmt.Sprintf("invalid: %d bits is outside 1..256", bits))
		return a
	}
	a.ExpectedPerBucket = math.Ldexp(float64(distinct), -bits)
	if pow2AtLeast(bits+1, distinct) {
		a.Warnings = append(a.Warnings, fmt.Sprintf(
			"leaks: 2^%d ≥ %d/2 distinct values, so most index values identify a single plaintext; use fewer bits", bits, distinct))
	}
	if 2*bits < 64 && uint64(1)<<(2*bits) <= distinct {
		a.Warnings = append(a.Warnings, fmt.Sprintf(
			"collides: 2^%d ≤ sqrt(%d), so each query matches many values (false positives to decrypt and discard); use more bits", bits, distinct))
	}
	return a
}

// pow2AtLeast reports whether 2^k >= x.
func pow2AtLeast(k int, x uint64) bool {
	return k >= 64 || uint64(1)<<k >= x
}
