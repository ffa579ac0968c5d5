package shamir

import (
	"bytes"
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"testing"
)

func mustSplit(t *testing.T, secret []byte, n, m int) []Share {
	t.Helper()
	shares, err := Split(secret, n, m)
	if err != nil {
		t.Fatalf("Split(%d bytes, %d, %d): %v", len(secret), n, m, err)
	}
	return shares
}

func randomSecret(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestSplitShape(t *testing.T) {
	secret := randomSecret(32)
	shares := mustSplit(t, secret, 5, 3)
	if len(shares) != 5 {
		t.Fatalf("%d shares", len(shares))
	}
	for i, s := range shares {
		if s.X != byte(i+1) || len(s.Y) != 32 {
			t.Fatalf("share %d: x %d, %d bytes", i, s.X, len(s.Y))
		}
		if bytes.Equal(s.Y, secret) {
			t.Fatalf("share %d is the secret", i)
		}
	}
	// The Ys share one allocation: appending to one must not write into
	// the next.
	before := shares[1].Y[0]
	_ = append(shares[0].Y, before^0xff)
	if shares[1].Y[0] != before {
		t.Fatal("appending to share 1's Y overwrote share 2's")
	}
}

func subsets(shares []Share, k int, f func([]Share)) {
	var pick func(start int, cur []Share)
	pick = func(start int, cur []Share) {
		if len(cur) == k {
			f(append([]Share(nil), cur...))
			return
		}
		for i := start; i < len(shares); i++ {
			pick(i+1, append(cur, shares[i]))
		}
	}
	pick(0, nil)
}

// TestAnyMOfNRecover checks, for small (n, m), that every subset of m or
// more shares, in any order, gives the secret back, and that every subset
// of m-1 gives something else (a 32-byte secret makes a chance match
// negligible: each byte would have to match, probability 2^-256).
func TestAnyMOfNRecover(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	for n := 2; n <= 7; n++ {
		for m := 2; m <= n; m++ {
			secret := randomSecret(32)
			shares := mustSplit(t, secret, n, m)
			for k := m; k <= n; k++ {
				subsets(shares, k, func(sub []Share) {
					r.Shuffle(len(sub), func(i, j int) { sub[i], sub[j] = sub[j], sub[i] })
					got, err := Combine(sub)
					if err != nil || !bytes.Equal(got, secret) {
						t.Fatalf("n=%d m=%d: %d shares gave %x, %v", n, m, k, got, err)
					}
				})
			}
			if m-1 >= 2 {
				subsets(shares, m-1, func(sub []Share) {
					got, err := Combine(sub)
					if err != nil {
						t.Fatal(err)
					}
					if bytes.Equal(got, secret) {
						t.Fatalf("n=%d m=%d: %d shares gave the secret", n, m, m-1)
					}
				})
			}
		}
	}
}

// interpolate evaluates at x the polynomial through points (Lagrange).
func interpolate(points []Share, x byte, k int) byte {
	var y byte
	for i, p := range points {
		num, den := byte(1), byte(1)
		for j, q := range points {
			if j != i {
				num = mul(num, x^q.X)
				den = mul(den, p.X^q.X)
			}
		}
		y ^= mul(p.Y[k], mul(num, inv(den)))
	}
	return y
}

// TestMMinusOneSharesFitEverySecret shows that m-1 shares leave the secret
// undetermined: for every candidate value s of a secret byte there is a
// polynomial of degree m-1 through the m-1 shares and (0, s), so a forged
// m-th share made from it combines with the real m-1 into s. All 256
// values are reachable, so the m-1 shares rule none out.
func TestMMinusOneSharesFitEverySecret(t *testing.T) {
	for _, c := range []struct{ n, m int }{{3, 2}, {3, 3}, {5, 3}, {5, 5}, {10, 6}} {
		shares := mustSplit(t, []byte{0x42}, c.n, c.m)
		known := shares[:c.m-1]
		for s := range 256 {
			points := append(append([]Share(nil), known...), Share{X: 0, Y: []byte{byte(s)}})
			forged := Share{X: shares[c.m-1].X, Y: []byte{interpolate(points, shares[c.m-1].X, 0)}}
			got, err := Combine(append(append([]Share(nil), known...), forged))
			if err != nil || got[0] != byte(s) {
				t.Fatalf("n=%d m=%d: candidate %#x: got %x, %v", c.n, c.m, s, got, err)
			}
		}
	}
}

// TestOneShareIsUniform: with m = 2, the first share's byte is the secret
// plus a uniform coefficient times 1, so over 256·64 splits of one fixed
// secret byte each of the 256 values appears; a bias towards the secret
// (a coefficient never zero, say) would show as a missing or rare value.
func TestOneShareIsUniform(t *testing.T) {
	var counts [256]int
	for range 256 * 64 {
		shares := mustSplit(t, []byte{0x00}, 2, 2)
		counts[shares[0].Y[0]]++
	}
	for v, c := range counts {
		if c < 16 { // mean 64; fewer than 16 has probability far below 2^-40
			t.Fatalf("value %#x appeared %d times in 16384 splits", v, c)
		}
	}
}

func TestLargeShareCounts(t *testing.T) {
	secret := randomSecret(48)
	shares := mustSplit(t, secret, MaxShares, 200)
	got, err := Combine(shares[55:])
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("200 of 255: %v", err)
	}
	got, err = Combine(shares)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("all 255: %v", err)
	}
	if got, _ := Combine(shares[56:]); bytes.Equal(got, secret) {
		t.Fatal("199 of 255 gave the secret")
	}
}

func TestSplitRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		secret []byte
		n, m   int
	}{
		"threshold 1 (1-of-3)":  {randomSecret(32), 3, 1},
		"threshold 0":           {randomSecret(32), 3, 0},
		"negative threshold":    {randomSecret(32), 3, -1},
		"threshold above n":     {randomSecret(32), 3, 4},
		"too many shares":       {randomSecret(32), 256, 2},
		"empty secret":          {nil, 3, 2},
		"secret over the limit": {make([]byte, MaxSecretLength+1), 3, 2},
	} {
		t.Run(name, func(t *testing.T) {
			shares, err := Split(c.secret, c.n, c.m)
			if !errors.Is(err, ErrInvalid) || shares != nil {
				t.Fatalf("got %d shares, %v", len(shares), err)
			}
		})
	}
	if _, err := Split(make([]byte, MaxSecretLength), 2, 2); err != nil {
		t.Fatalf("a secret at the limit: %v", err)
	}
}

func TestCombineRefuses(t *testing.T) {
	good := mustSplit(t, randomSecret(16), 4, 2)
	short := Share{X: 9, Y: make([]byte, 15)}
	for name, shares := range map[string][]Share{
		"no shares":        nil,
		"one share":        good[:1],
		"zero x":           {good[0], {X: 0, Y: good[1].Y}},
		"duplicate x":      {good[0], good[1], good[0]},
		"length mismatch":  {good[0], short},
		"empty shares":     {{X: 1}, {X: 2}},
		"too many shares":  make([]Share, MaxShares+1),
		"over-long shares": {{X: 1, Y: make([]byte, MaxSecretLength+1)}, {X: 2, Y: make([]byte, MaxSecretLength+1)}},
	} {
		t.Run(name, func(t *testing.T) {
			secret, err := Combine(shares)
			if !errors.Is(err, ErrInvalid) || secret != nil {
				t.Fatalf("got %x, %v", secret, err)
			}
		})
	}
}

// Errors name counts and coordinates, never share or secret bytes.
func TestErrorsHoldNoShareBytes(t *testing.T) {
	canary := []byte("CANARY-share-bytes-0123456789abc")
	_, err := Combine([]Share{{X: 1, Y: canary}, {X: 1, Y: canary}})
	if err == nil || bytes.Contains([]byte(err.Error()), canary[:8]) {
		t.Fatalf("%v", err)
	}
}

func FuzzCombine(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6}, uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, k uint8) {
		// Cut data into k shares of equal length, x from the first byte.
		if k == 0 || len(data) < int(k) {
			return
		}
		size := len(data) / int(k)
		var shares []Share
		for i := range int(k) {
			p := data[i*size : (i+1)*size]
			shares = append(shares, Share{X: p[0], Y: p[1:]})
		}
		secret, err := Combine(shares)
		if err == nil && len(secret) != size-1 {
			t.Fatalf("%d-byte secret from %d-byte shares", len(secret), size-1)
		}
	})
}

func BenchmarkSplitCombine32(b *testing.B) {
	secret := randomSecret(32)
	b.SetBytes(32)
	b.ReportAllocs()
	for b.Loop() {
		shares, err := Split(secret, 5, 3)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Combine(shares[2:]); err != nil {
			b.Fatal(err)
		}
	}
}
