package crosscheck

import (
	"bytes"
	"crypto/rand"
	mrand "math/rand/v2"
	"testing"

	sops "github.com/getsops/sops/v3/shamir"
	"github.com/phicrypt/phicrypt/internal/shamir"
)

// sops encodes a share as its Y bytes followed by the x-coordinate.
func toSops(s shamir.Share) []byte { return append(append([]byte(nil), s.Y...), s.X) }

func fromSops(b []byte) shamir.Share { return shamir.Share{X: b[len(b)-1], Y: b[:len(b)-1]} }

type shape struct{ n, m, length int }

var shapes = []shape{{2, 2, 1}, {3, 2, 32}, {3, 3, 32}, {5, 3, 32}, {5, 5, 17}, {10, 4, 64}, {255, 2, 32}, {255, 255, 8}, {40, 21, 300}}

// pick returns k of shares at random, in random order.
func pick[T any](r *mrand.Rand, shares []T, k int) []T {
	out := append([]T(nil), shares...)
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out[:k]
}

// Shares ours makes combine in sops to the secret, from any m or more.
func TestOursCombineInSops(t *testing.T) {
	r := mrand.New(mrand.NewPCG(3, 4))
	for _, c := range shapes {
		for range 8 {
			secret := make([]byte, c.length)
			rand.Read(secret)
			shares, err := shamir.Split(secret, c.n, c.m)
			if err != nil {
				t.Fatal(err)
			}
			k := c.m + r.IntN(c.n-c.m+1)
			var encoded [][]byte
			for _, s := range pick(r, shares, k) {
				encoded = append(encoded, toSops(s))
			}
			got, err := sops.Combine(encoded)
			if err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("%+v, %d shares: sops gave %x, %v; want %x", c, k, got, err, secret)
			}
		}
	}
}

// Shares sops makes (random distinct x-coordinates) combine in ours.
func TestSopsCombineInOurs(t *testing.T) {
	r := mrand.New(mrand.NewPCG(5, 6))
	for _, c := range shapes {
		for range 8 {
			secret := make([]byte, c.length)
			rand.Read(secret)
			encoded, err := sops.Split(secret, c.n, c.m)
			if err != nil {
				t.Fatal(err)
			}
			k := c.m + r.IntN(c.n-c.m+1)
			var shares []shamir.Share
			for _, b := range pick(r, encoded, k) {
				shares = append(shares, fromSops(b))
			}
			got, err := shamir.Combine(shares)
			if err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("%+v, %d shares: ours gave %x, %v; want %x", c, k, got, err, secret)
			}
		}
	}
}

// A mix: m-1 shares from ours would not do, but our shares and points that
// sops interpolates from the same polynomial agree. Here both sides combine
// the same m-1 shares and must agree on the (wrong) value too: the two
// implementations compute the same interpolation, not just the same
// happy-path answer.
func TestBothInterpolateAlike(t *testing.T) {
	r := mrand.New(mrand.NewPCG(7, 8))
	for _, c := range shapes {
		if c.m < 3 {
			continue
		}
		secret := make([]byte, c.length)
		rand.Read(secret)
		shares, err := shamir.Split(secret, c.n, c.m)
		if err != nil {
			t.Fatal(err)
		}
		sub := pick(r, shares, c.m-1)
		ours, err := shamir.Combine(sub)
		if err != nil {
			t.Fatal(err)
		}
		var encoded [][]byte
		for _, s := range sub {
			encoded = append(encoded, toSops(s))
		}
		theirs, err := sops.Combine(encoded)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours, theirs) || bytes.Equal(ours, secret) {
			t.Fatalf("%+v: m-1 shares: ours %x, sops %x, secret %x", c, ours, theirs, secret)
		}
	}
}
