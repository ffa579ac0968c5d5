package blind

import (
	"bytes"
	"encoding/base32"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func mustPseudonymizer(t testing.TB, key []byte) *Pseudonymizer {
	t.Helper()
	p, err := NewPseudonymizer(key)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTokenDefinition: a token is the RFC 4648 base32 encoding, lower case
// and unpadded, of the first 20 bytes of crypto/hmac's HMAC-SHA-256.
func TestTokenDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	for n := 0; n <= 200; n++ {
		key, value := make([]byte, KeySize), make([]byte, n)
		fill(rng, key)
		fill(rng, value)
		got := mustPseudonymizer(t, key).Token([]byte("dst:"), value)
		want := "dst:" + strings.ToLower(enc.EncodeToString(referenceMAC(key, value)[:20]))
		if string(got) != want {
			t.Fatalf("len %d: Token = %s, want %s", n, got, want)
		}
		if len(got)-4 != TokenLen {
			t.Fatalf("token of %d characters", len(got)-4)
		}
	}
}

func TestTokenProperties(t *testing.T) {
	p1 := mustPseudonymizer(t, testKey(1))
	p1again := mustPseudonymizer(t, testKey(1))
	p2 := mustPseudonymizer(t, testKey(2))
	mrn := []byte("MRN-0012345")
	a, b := p1.Token(nil, mrn), p1again.Token(nil, mrn)
	if !bytes.Equal(a, b) || !bytes.Equal(a, p1.Token(nil, mrn)) {
		t.Error("same key and value, different tokens")
	}
	if bytes.Equal(a, p2.Token(nil, mrn)) {
		t.Error("different keys (purposes), same token")
	}
	if bytes.Equal(a, p1.Token(nil, []byte("MRN-0012346"))) {
		t.Error("different values, same token")
	}
	if bytes.Contains(a, mrn) || bytes.Contains(a, []byte("0012345")) {
		t.Error("token contains the value")
	}
}

func TestNewPseudonymizerErrors(t *testing.T) {
	for _, n := range []int{0, 31, 33} {
		if p, err := NewPseudonymizer(make([]byte, n)); !errors.Is(err, ErrKeySize) || p != nil {
			t.Errorf("key of %d bytes: %v", n, err)
		}
	}
}
