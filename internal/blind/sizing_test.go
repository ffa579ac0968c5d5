package blind

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestRecommend(t *testing.T) {
	cases := []struct {
		distinct uint64
		lo, hi   int // the range sqrt(X) < 2^N < X/2
		want     int
	}{
		{9, 2, 2, 2},
		{15, 2, 2, 2},
		{17, 3, 3, 3},
		{256, 5, 6, 5}, // 2^5.5 is the exact middle: the smaller N wins
		{1000, 5, 8, 7},
		{1_000_000, 10, 18, 14}, // 1000 < 2^N < 500000; middle 22360 ≈ 2^14.45
		{1_000_000_000, 15, 28, 22},
		{1 << 40, 21, 38, 29}, // another exact tie, at 2^29.5
		{math.MaxUint64, 32, 62, 47},
	}
	for _, c := range cases {
		lo, hi := widthRange(c.distinct)
		if lo != c.lo || hi != c.hi {
			t.Errorf("%d: range %d..%d, want %d..%d", c.distinct, lo, hi, c.lo, c.hi)
		}
		got, err := Recommend(c.distinct)
		if err != nil || got != c.want {
			t.Errorf("Recommend(%d) = %d, %v; want %d", c.distinct, got, err, c.want)
		}
		if a := Assess(c.distinct, got); len(a.Warnings) != 0 {
			t.Errorf("Assess(%d, %d) warns about its own recommendation: %q", c.distinct, got, a.Warnings)
		}
	}
}

func TestRecommendTooSmall(t *testing.T) {
	for _, x := range []uint64{0, 1, 2, 7, 8, 16} {
		if n, err := Recommend(x); !errors.Is(err, ErrDomainTooSmall) {
			t.Errorf("Recommend(%d) = %d, %v", x, n, err)
		}
	}
}

// TestRecommendBruteForce checks Recommend against the rule computed
// directly: the range by exact comparison, the middle by logarithms.
func TestRecommendBruteForce(t *testing.T) {
	xs := []uint64{}
	for x := uint64(0); x < 5000; x++ {
		xs = append(xs, x)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		xs = append(xs, rng.Uint64()>>rng.IntN(64))
	}
	for _, x := range xs {
		want, ok := bruteRecommend(x)
		got, err := Recommend(x)
		if ok != (err == nil) || ok && got != want {
			t.Fatalf("Recommend(%d) = %d, %v; brute force %d, %v", x, got, err, want, ok)
		}
	}
}

func bruteRecommend(x uint64) (int, bool) {
	bx := new(big.Int).SetUint64(x)
	best, ok := 0, false
	target := 0.75*math.Log2(float64(x)) - 0.5
	for n := 1; n <= 256; n++ {
		p := new(big.Int).Lsh(big.NewInt(1), uint(n))
		sq := new(big.Int).Mul(p, p)
		twice := new(big.Int).Lsh(p, 1)
		if sq.Cmp(bx) <= 0 || twice.Cmp(bx) >= 0 {
			continue // not sqrt(x) < 2^n < x/2
		}
		if !ok || math.Abs(float64(n)-target) < math.Abs(float64(best)-target)-1e-9 {
			best, ok = n, true
		}
	}
	return best, ok
}

func TestAssess(t *testing.T) {
	cases := []struct {
		distinct  uint64
		bits      int
		perBucket float64
		warnings  []string // prefixes
	}{
		{1_000_000, 14, 1_000_000.0 / 16384, nil},
		{1_000_000, 10, 1_000_000.0 / 1024, nil},
		{1_000_000, 18, 1_000_000.0 / 262144, nil},
		{1_000_000, 19, 1_000_000.0 / 524288, []string{"leaks:"}},
		{1_000_000, 32, 1_000_000.0 / (1 << 32), []string{"leaks:"}},
		{1_000_000, 9, 1_000_000.0 / 512, []string{"collides:"}},
		{1_000_000, 1, 500_000, []string{"collides:"}},
		{16, 2, 4, []string{"collides:"}},
		{16, 3, 2, []string{"leaks:"}},
		{4, 1, 2, []string{"leaks:", "collides:"}},
		{math.MaxUint64, 256, 0x1p-192, []string{"leaks:"}},
		{math.MaxUint64, 1, 0x1p63, []string{"collides:"}},
		{1000, 0, 0, []string{"invalid:"}},
		{1000, 257, 0, []string{"invalid:"}},
	}
	for _, c := range cases {
		a := Assess(c.distinct, c.bits)
		if a.Bits != c.bits || a.ExpectedPerBucket != c.perBucket {
			t.Errorf("Assess(%d, %d) = %d bits, %v per bucket; want %v", c.distinct, c.bits, a.Bits, a.ExpectedPerBucket, c.perBucket)
		}
		if len(a.Warnings) != len(c.warnings) {
			t.Errorf("Assess(%d, %d) warnings %q, want %q", c.distinct, c.bits, a.Warnings, c.warnings)
			continue
		}
		for i, w := range a.Warnings {
			if !strings.HasPrefix(w, c.warnings[i]) {
				t.Errorf("Assess(%d, %d) warning %q, want %s", c.distinct, c.bits, w, c.warnings[i])
			}
		}
	}
}
