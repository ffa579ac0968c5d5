package shamir

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// Limits.
const (
	// MaxShares is the most shares a secret has: the non-zero elements of
	// GF(2^8), one x-coordinate each.
	MaxShares = 255
	// MaxSecretLength caps the secret (and so each share's Y), in bytes.
	MaxSecretLength = 64 << 10
)

// ErrInvalid is wrapped by every error of this package: a request refused
// for its arguments.
var ErrInvalid = errors.New("shamir: invalid request")

// Share is one point of each byte's polynomial: the x-coordinate X (never
// zero, which is where the secret lies) and Y, one byte per byte of the
// secret.
type Share struct {
	X byte
	Y []byte
}

// Split returns n shares of secret, any m of which recover it (2 ≤ m ≤ n ≤
// MaxShares). The shares have the x-coordinates 1 … n, in that order. A
// threshold of one would make every share the secret itself, and is
// refused.
func Split(secret []byte, n, m int) ([]Share, error) {
	switch {
	case m < 2:
		return nil, fmt.Errorf("%w: a threshold of %d; it must be at least 2", ErrInvalid, m)
	case n < m:
		return nil, fmt.Errorf("%w: %d shares cannot meet a threshold of %d", ErrInvalid, n, m)
	case n > MaxShares:
		return nil, fmt.Errorf("%w: %d shares; at most %d", ErrInvalid, n, MaxShares)
	case len(secret) == 0:
		return nil, fmt.Errorf("%w: the secret is empty", ErrInvalid)
	case len(secret) > MaxSecretLength:
		return nil, fmt.Errorf("%w: a %d-byte secret; at most %d", ErrInvalid, len(secret), MaxSecretLength)
	}
	shares := make([]Share, n)
	ys := make([]byte, n*len(secret)) // one allocation for every Y
	for i := range shares {
		shares[i] = Share{X: byte(i + 1), Y: ys[i*len(secret) : (i+1)*len(secret) : (i+1)*len(secret)]}
	}
	coeffs := make([]byte, m-1) // a₁ … a_{m-1} of one byte's polynomial; a₀ is the byte
	defer clear(coeffs)
	for k, s := range secret {
		rand.Read(coeffs) // uniform, zero included: any m-1 points are then uniform too
		for i := range shares {
			shares[i].Y[k] = eval(s, coeffs, shares[i].X)
		}
	}
	return shares, nil
}

// eval returns a₀ + a₁x + … + a_{m-1}x^{m-1} by Horner's rule.
func eval(a0 byte, coeffs []byte, x byte) byte {
	var y byte
	for i := len(coeffs) - 1; i >= 0; i-- {
		y = mul(y, x) ^ coeffs[i]
	}
	return mul(y, x) ^ a0
}

// Combine returns the secret whose shares these are, by Lagrange
// interpolation at zero. It needs at least as many shares as the threshold
// the secret was split with, and cannot tell when it has fewer, or a wrong
// share: it then returns a wrong secret, so callers check the result. It
// refuses fewer than two shares, more than MaxShares, an x-coordinate of
// zero or one given twice, and shares of different or zero lengths.
func Combine(shares []Share) ([]byte, error) {
	if err := check(shares); err != nil {
		return nil, err
	}
	secret := make([]byte, len(shares[0].Y))
	for i, s := range shares {
		l := basisAtZero(shares, i)
		for k, y := range s.Y {
			secret[k] ^= mul(y, l)
		}
	}
	return secret, nil
}

// basisAtZero returns the i-th Lagrange basis polynomial at zero:
// ∏_{j≠i} x_j / (x_j − x_i), where subtraction is XOR.
func basisAtZero(shares []Share, i int) byte {
	num, den := byte(1), byte(1)
	xi := shares[i].X
	for j, s := range shares {
		if j == i {
			continue
		}
		num = mul(num, s.X)
		den = mul(den, s.X^xi)
	}
	return mul(num, inv(den))
}

func check(shares []Share) error {
	switch {
	case len(shares) < 2:
		return fmt.Errorf("%w: %d shares; at least 2 are needed", ErrInvalid, len(shares))
	case len(shares) > MaxShares:
		return fmt.Errorf("%w: %d shares; at most %d", ErrInvalid, len(shares), MaxShares)
	}
	n := len(shares[0].Y)
	if n == 0 || n > MaxSecretLength {
		return fmt.Errorf("%w: a share of %d bytes; 1 to %d are allowed", ErrInvalid, n, MaxSecretLength)
	}
	var seen [256]bool
	for _, s := range shares {
		switch {
		case s.X == 0:
			return fmt.Errorf("%w: a share has the x-coordinate 0", ErrInvalid)
		case seen[s.X]:
			return fmt.Errorf("%w: two shares have the x-coordinate %d", ErrInvalid, s.X)
		case len(s.Y) != n:
			return fmt.Errorf("%w: shares of %d and %d bytes", ErrInvalid, n, len(s.Y))
		}
		seen[s.X] = true
	}
	return nil
}
