package siv

import (
	"bytes"
	"crypto/aes"
	"encoding/hex"
	"testing"
)

// TestCMACKnownAnswers checks the internal CMAC against RFC 4493, section 4.
func TestCMACKnownAnswers(t *testing.T) {
	key := unhex(t, "2b7e151628aed2a6abf7158809cf4f3c")
	msg := unhex(t, "6bc1bee22e409f96e93d7e117393172a"+
		"ae2d8a571e03ac9c9eb76fac45af8e51"+
		"30c81c46a35ce411e5fbc1191a0a52ef"+
		"f69f2445df4f9b17ad2b417be66c3710")
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	m := newCMAC(b)

	var k1, k2 [16]byte
	m.k1.store(k1[:])
	m.k2.store(k2[:])
	if got, want := hex.EncodeToString(k1[:]), "fbeed618357133667c85e08f7236a8de"; got != want {
		t.Errorf("K1 = %s, want %s", got, want)
	}
	if got, want := hex.EncodeToString(k2[:]), "f7ddac306ae266ccf90bc11ee46d513b"; got != want {
		t.Errorf("K2 = %s, want %s", got, want)
	}

	for _, tc := range []struct {
		name string
		n    int
		want string
	}{
		{"example 1, empty message", 0, "bb1d6929e95937287fa37d129b756746"},
		{"example 2, one complete block", 16, "070a16b46b4d4144f79bdd9dd04a287c"},
		{"example 3, partial last block", 40, "dfa66747de9ae63030ca32611497c827"},
		{"example 4, four complete blocks", 64, "51f0bebf7e3b9d92fc49741779363cfe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var x, got [16]byte
			m.sum(x[:], msg[:tc.n]).store(got[:])
			if hex.EncodeToString(got[:]) != tc.want {
				t.Errorf("CMAC = %x, want %s", got, tc.want)
			}
			if !bytes.Equal(x[:], got[:]) {
				t.Errorf("scratch block = %x, want the MAC %x", x, got)
			}
		})
	}
}

// TestCMACXorend checks sumXorend against CMAC of the explicitly built
// message (RFC 5297, section 2.1 "xorend") at every tail length.
func TestCMACXorend(t *testing.T) {
	b, _ := aes.NewCipher(bytes.Repeat([]byte{7}, 32))
	m := newCMAC(b)
	d := word128{0x0123456789abcdef, 0xfedcba9876543210}
	for n := 16; n <= 100; n++ {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(i * 31)
		}
		built := bytes.Clone(msg)
		load(built[n-16:]).xor(d).store(built[n-16:])
		var x [16]byte
		if got, want := m.sumXorend(x[:], msg, d), m.sum(x[:], built); got != want {
			t.Errorf("len %d: sumXorend = %x, want %x", n, got, want)
		}
	}
}

func TestDouble(t *testing.T) {
	for _, tc := range []struct{ in, want word128 }{
		{word128{0, 1}, word128{0, 2}},
		{word128{0, 1 << 63}, word128{1, 0}},
		{word128{1 << 63, 0}, word128{0, 0x87}},
		{word128{1<<63 | 1, 1<<63 | 1}, word128{3, 2 ^ 0x87}},
	} {
		if got := tc.in.dbl(); got != tc.want {
			t.Errorf("dbl(%x) = %x, want %x", tc.in, got, tc.want)
		}
	}
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
