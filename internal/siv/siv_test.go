package siv

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// knownAnswers are RFC 5297 Appendix A (AES-128-SIV) and the AES-SIV
// vectors published with the Miscreant library, which add AES-256-SIV
// (64-byte keys) and empty associated-data vectors.
var knownAnswers = []struct {
	name       string
	key        string
	ads        []string
	plaintext  string
	ciphertext string
}{
	{
		name:       "RFC 5297 A.1, deterministic",
		key:        "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
		ads:        []string{"101112131415161718191a1b1c1d1e1f2021222324252627"},
		plaintext:  "112233445566778899aabbccddee",
		ciphertext: "85632d07c6e8f37f950acd320a2ecc93" + "40c02b9690c4dc04daef7f6afe5c",
	},
	{
		name: "RFC 5297 A.2, nonce-based",
		key:  "7f7e7d7c7b7a79787776757473727170404142434445464748494a4b4c4d4e4f",
		ads: []string{
			"00112233445566778899aabbccddeeffdeaddadadeaddadaffeeddccbbaa99887766554433221100",
			"102030405060708090a0",
			"09f911029d74e35bd84156c5635688c0",
		},
		plaintext: "7468697320697320736f6d6520706c61696e7465787420746f20656e6372797074207573696e67205349562d414553",
		ciphertext: "7bdb6e3b432667eb06f4d14bff2fbd0f" +
			"cb900f2fddbe404326601965c889bf17dba77ceb094fa663b7a3f748ba8af829ea64ad544a272e9c485b62a3fd5c0d",
	},
	{
		name:       "empty associated data and plaintext",
		key:        "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
		ciphertext: "f2007a5beb2b8900c588a7adf599f172",
	},
	{
		name:       "empty associated data, one-block plaintext",
		key:        "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
		plaintext:  "00112233445566778899aabbccddeeff",
		ciphertext: "f304f912863e303d5b540e5057c7010c942ffaf45b0e5ca5fb9a56a5263bb065",
	},
	{
		name: "AES-256-SIV #1",
		key: "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f06f6e6d6c6b6a69686766656463626160" +
			"f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f",
		ads:        []string{"101112131415161718191a1b1c1d1e1f2021222324252627"},
		plaintext:  "112233445566778899aabbccddee",
		ciphertext: "f125274c598065cfc26b0e71575029088b035217e380cac8919ee800c126",
	},
	{
		name: "AES-256-SIV #2",
		key: "7f7e7d7c7b7a797877767574737271706f6e6d6c6b6a69686766656463626160" +
			"404142434445464748494a4b4c4d4e4f505152535455565758595a5b5b5d5e5f",
		ads: []string{
			"00112233445566778899aabbccddeeffdeaddadadeaddadaffeeddccbbaa99887766554433221100",
			"102030405060708090a0",
			"09f911029d74e35bd84156c5635688c0",
		},
		plaintext: "7468697320697320736f6d6520706c61696e7465787420746f20656e6372797074207573696e67205349562d414553",
		ciphertext: "85b8167310038db7dc4692c0281ca358" +
			"68181b2762f3c24f2efa5fb80cb143516ce6c434b898a6fd8eb98a418842f51f66fc67de43ac185a66dd72475bbb08",
	},
}

func TestKnownAnswers(t *testing.T) {
	for _, tc := range knownAnswers {
		t.Run(tc.name, func(t *testing.T) {
			s := mustNew(t, unhex(t, tc.key))
			var ads [][]byte
			for _, ad := range tc.ads {
				ads = append(ads, unhex(t, ad))
			}
			pt, want := unhex(t, tc.plaintext), unhex(t, tc.ciphertext)

			if got := s.SealVector(nil, pt, ads); !bytes.Equal(got, want) {
				t.Errorf("SealVector = %x, want %x", got, want)
			}
			got, err := s.OpenVector(nil, want, ads)
			if err != nil || !bytes.Equal(got, pt) {
				t.Errorf("OpenVector = %x, %v; want %x", got, err, pt)
			}
			if len(ads) == 1 {
				if got := s.Seal(nil, pt, ads[0]); !bytes.Equal(got, want) {
					t.Errorf("Seal = %x, want %x", got, want)
				}
				if got, err := s.Open(nil, want, ads[0]); err != nil || !bytes.Equal(got, pt) {
					t.Errorf("Open = %x, %v; want %x", got, err, pt)
				}
			}
		})
	}
}

func TestNewKeySizes(t *testing.T) {
	for n := 0; n <= 80; n++ {
		_, err := New(make([]byte, n))
		switch n {
		case 32, 48, 64:
			if err != nil {
				t.Errorf("New(%d bytes) = %v", n, err)
			}
		default:
			if !errors.Is(err, ErrKeySize) {
				t.Errorf("New(%d bytes) error = %v, want ErrKeySize", n, err)
			}
		}
	}
}

// TestRoundTrip covers every plaintext length across the block boundaries
// that the CMAC and CTR code treat differently, for each key size.
func TestRoundTrip(t *testing.T) {
	for _, keySize := range []int{32, 48, 64} {
		s := mustNew(t, randBytes(keySize))
		for n := 0; n <= 70; n++ {
			pt, ad := randBytes(n), randBytes(n%37)
			prefix := []byte("prefix")
			ct := s.Seal(bytes.Clone(prefix), pt, ad)
			if !bytes.HasPrefix(ct, prefix) || len(ct) != len(prefix)+Overhead+n {
				t.Fatalf("key %d, len %d: Seal did not append %d bytes to dst", keySize, n, Overhead+n)
			}
			ct = ct[len(prefix):]
			if again := s.Seal(nil, pt, ad); !bytes.Equal(again, ct) {
				t.Fatalf("key %d, len %d: Seal is not deterministic", keySize, n)
			}
			got, err := s.Open(bytes.Clone(prefix), ct, ad)
			if err != nil || !bytes.Equal(got, append(prefix, pt...)) {
				t.Fatalf("key %d, len %d: Open = %x, %v", keySize, n, got, err)
			}
		}
	}
}

func TestEmptyADIsNotNoAD(t *testing.T) {
	s := mustNew(t, randBytes(KeySize))
	pt := []byte("123-45-6789")
	one := s.Seal(nil, pt, nil)
	none := s.SealVector(nil, pt, nil)
	if bytes.Equal(one, none) {
		t.Fatal("Seal with an empty AD equals SealVector with no AD; S2V must count the empty string")
	}
	if !bytes.Equal(one, s.SealVector(nil, pt, [][]byte{{}})) {
		t.Fatal("Seal(ad) differs from SealVector([ad])")
	}
	if _, err := s.OpenVector(nil, one, nil); !errors.Is(err, ErrOpen) {
		t.Fatalf("opening with no AD a ciphertext sealed with an empty AD: %v, want ErrOpen", err)
	}
}

// TestTamper flips every bit of the ciphertext and of the associated data:
// Open must fail with ErrOpen and return nothing.
func TestTamper(t *testing.T) {
	s := mustNew(t, randBytes(KeySize))
	for _, n := range []int{0, 1, 15, 16, 17, 33} {
		pt, ad := randBytes(n), randBytes(20)
		ct := s.Seal(nil, pt, ad)
		for i := range len(ct) * 8 {
			bad := bytes.Clone(ct)
			bad[i/8] ^= 1 << (i % 8)
			if got, err := s.Open(nil, bad, ad); err != ErrOpen || got != nil {
				t.Fatalf("len %d, ciphertext bit %d flipped: Open = %x, %v", n, i, got, err)
			}
		}
		for i := range len(ad) * 8 {
			bad := bytes.Clone(ad)
			bad[i/8] ^= 1 << (i % 8)
			if got, err := s.Open(nil, ct, bad); err != ErrOpen || got != nil {
				t.Fatalf("len %d, AD bit %d flipped: Open = %x, %v", n, i, got, err)
			}
		}
		if _, err := s.Open(nil, ct, append(bytes.Clone(ad), 0)); err != ErrOpen {
			t.Fatalf("len %d, AD extended: %v", n, err)
		}
		other := mustNew(t, randBytes(KeySize))
		if _, err := other.Open(nil, ct, ad); err != ErrOpen {
			t.Fatalf("len %d, wrong key: %v", n, err)
		}
	}
}

func TestTamperVector(t *testing.T) {
	s := mustNew(t, randBytes(KeySize))
	ads := [][]byte{[]byte("table"), []byte("column"), []byte("row")}
	ct := s.SealVector(nil, []byte("value"), ads)
	for _, bad := range [][][]byte{
		nil,
		ads[:2],
		{ads[1], ads[0], ads[2]},
		{[]byte("tablecolumn"), []byte("row")},
		{ads[0], ads[1], ads[2], nil},
	} {
		if _, err := s.OpenVector(nil, ct, bad); err != ErrOpen {
			t.Errorf("OpenVector with AD vector %q: %v, want ErrOpen", bad, err)
		}
	}
}

func TestOpenShort(t *testing.T) {
	s := mustNew(t, randBytes(KeySize))
	for n := range Overhead {
		dst := make([]byte, 3, 64)
		if got, err := s.Open(dst, randBytes(n), nil); err != ErrOpen || got != nil {
			t.Errorf("Open(%d bytes) = %x, %v; want nil, ErrOpen", n, got, err)
		}
	}
	if _, err := s.Open(nil, nil, nil); err != ErrOpen {
		t.Errorf("Open(nil) = %v", err)
	}
}

// TestOpenClearsOutput checks that a failed Open leaves no unauthenticated
// plaintext in dst's spare capacity.
func TestOpenClearsOutput(t *testing.T) {
	s := mustNew(t, randBytes(KeySize))
	pt := bytes.Repeat([]byte{0xaa}, 40)
	ct := s.Seal(nil, pt, nil)
	ct[len(ct)-1] ^= 1
	buf := bytes.Repeat([]byte{0x55}, 64)
	if _, err := s.Open(buf[:0], ct, nil); err != ErrOpen {
		t.Fatal(err)
	}
	if want := append(make([]byte, 40), bytes.Repeat([]byte{0x55}, 24)...); !bytes.Equal(buf, want) {
		t.Fatalf("dst after failed Open = %x, want the output zeroed", buf)
	}
}

func TestInPlace(t *testing.T) {
	s := mustNew(t, randBytes(KeySize))
	for _, n := range []int{0, 5, 16, 31, 64, 100, 127, 128, 129, 143, 300} {
		pt, ad := randBytes(n), randBytes(9)
		want := s.Seal(nil, pt, ad)

		buf := make([]byte, Overhead+n)
		copy(buf[Overhead:], pt)
		if got := s.Seal(buf[:0], buf[Overhead:], ad); !bytes.Equal(got, want) || &got[0] != &buf[0] {
			t.Fatalf("len %d: in-place Seal = %x, want %x in buf", n, got, want)
		}

		ct := bytes.Clone(want)
		got, err := s.Open(ct[:0], ct, ad)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("len %d: Open to ciphertext[:0] = %x, %v", n, got, err)
		}
		ct = bytes.Clone(want)
		got, err = s.Open(ct[Overhead:Overhead], ct, ad)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("len %d: Open to ciphertext[Overhead:Overhead] = %x, %v", n, got, err)
		}
	}
}

func TestOverlapPanics(t *testing.T) {
	s := mustNew(t, randBytes(KeySize))
	buf := make([]byte, 200)
	ct := s.Seal(nil, buf[:40], nil)
	for name, f := range map[string]func(){
		"Seal to plaintext[:0]":       func() { s.Seal(buf[:0], buf[:40], nil) },
		"Seal body shifted":           func() { s.Seal(buf[:0], buf[17:57], nil) },
		"Seal over additional data":   func() { s.Seal(buf[:0], buf[100:140], buf[10:20]) },
		"SealVector over an AD":       func() { s.SealVector(buf[:0], buf[100:140], [][]byte{nil, buf[50:60]}) },
		"Open shifted":                func() { copy(buf, ct); s.Open(buf[1:1], buf[:len(ct)], nil) },
		"Open over additional data":   func() { copy(buf[100:], ct); s.Open(buf[:0], buf[100:100+len(ct)], buf[5:6]) },
		"SealVector too many ADs":     func() { s.SealVector(nil, nil, make([][]byte, MaxAssociatedData+1)) },
		"OpenVector too many ADs":     func() { s.OpenVector(nil, ct, make([][]byte, MaxAssociatedData+1)) },
		"Open to ciphertext[1:1]":     func() { c := bytes.Clone(ct); s.Open(c[1:1], c, nil) },
		"Seal plaintext after output": func() { s.Seal(buf[:0], buf[20:60], nil) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("did not panic")
				}
			}()
			f()
		})
	}
	// The largest vector allowed works.
	ads := make([][]byte, MaxAssociatedData)
	if _, err := s.OpenVector(nil, s.SealVector(nil, []byte("x"), ads), ads); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrent(t *testing.T) {
	s := mustNew(t, randBytes(KeySize))
	pt, ad := []byte("4111-1111-1111-1111"), []byte("patients.card")
	want := s.Seal(nil, pt, ad)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			out := make([]byte, 0, 64)
			for range 200 {
				ct := s.Seal(out[:0], pt, ad)
				if !bytes.Equal(ct, want) {
					t.Error("concurrent Seal differs")
					return
				}
				got, err := s.Open(make([]byte, 0, 64), ct, ad)
				if err != nil || !bytes.Equal(got, pt) {
					t.Error("concurrent Open failed")
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestRedacted pushes a SIV through every fmt verb: none may show key
// material, which the derived subkeys and round keys are.
func TestRedacted(t *testing.T) {
	s := mustNew(t, bytes.Repeat([]byte{0x42}, KeySize))
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		if got := fmt.Sprintf(verb, s); got != "siv.SIV(redacted)" {
			t.Errorf("Sprintf(%q) = %q", verb, got)
		}
	}
	_, err := New(bytes.Repeat([]byte{0x42}, 17))
	if strings.Contains(err.Error(), "42") || strings.Contains(err.Error(), "BBBB") {
		t.Errorf("key-size error shows key bytes: %v", err)
	}
}

func mustNew(t testing.TB, key []byte) *SIV {
	t.Helper()
	s, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
