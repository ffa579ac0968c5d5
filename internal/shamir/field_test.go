package shamir

import "testing"

// slowMul multiplies as polynomials over GF(2) into 15 bits, then reduces
// modulo x^8 + x^4 + x^3 + x + 1 (0x11b) by long division: the textbook
// definition, written independently of mul.
func slowMul(a, b byte) byte {
	var p uint16
	for i := range 8 {
		if b>>i&1 == 1 {
			p ^= uint16(a) << i
		}
	}
	for bit := 14; bit >= 8; bit-- {
		if p>>bit&1 == 1 {
			p ^= 0x11b << (bit - 8)
		}
	}
	return byte(p)
}

func TestSlowMulKnownAnswers(t *testing.T) {
	// FIPS 197, section 4.2: {57}·{83} = {c1}, {57}·{13} = {fe}.
	for _, c := range []struct{ a, b, want byte }{{0x57, 0x83, 0xc1}, {0x57, 0x13, 0xfe}, {0x02, 0x80, 0x1b}, {0x53, 0xca, 0x01}} {
		if got := slowMul(c.a, c.b); got != c.want {
			t.Errorf("slowMul(%#x, %#x) = %#x; want %#x", c.a, c.b, got, c.want)
		}
	}
}

// TestMulExhaustive checks mul against the reference on all 65536 pairs.
func TestMulExhaustive(t *testing.T) {
	for a := range 256 {
		for b := range 256 {
			if got, want := mul(byte(a), byte(b)), slowMul(byte(a), byte(b)); got != want {
				t.Fatalf("mul(%#x, %#x) = %#x; want %#x", a, b, got, want)
			}
		}
	}
}

// TestInvExhaustive checks inv against a search of all 256 candidates for
// every non-zero element, and that inv(0) is 0.
func TestInvExhaustive(t *testing.T) {
	if inv(0) != 0 {
		t.Fatalf("inv(0) = %#x", inv(0))
	}
	for a := 1; a < 256; a++ {
		var found []byte
		for b := range 256 {
			if slowMul(byte(a), byte(b)) == 1 {
				found = append(found, byte(b))
			}
		}
		if len(found) != 1 {
			t.Fatalf("%#x has %d inverses", a, len(found))
		}
		if got := inv(byte(a)); got != found[0] {
			t.Fatalf("inv(%#x) = %#x; want %#x", a, got, found[0])
		}
	}
}

func TestFieldLaws(t *testing.T) {
	for a := range 256 {
		for b := range 256 {
			if mul(byte(a), byte(b)) != mul(byte(b), byte(a)) {
				t.Fatalf("mul is not commutative at %#x, %#x", a, b)
			}
			// distributivity over XOR, with c a function of a and b
			c := byte(a*7 + b*13)
			if mul(byte(a), byte(b)^c) != mul(byte(a), byte(b))^mul(byte(a), c) {
				t.Fatalf("mul does not distribute at %#x, %#x, %#x", a, b, c)
			}
		}
	}
}
