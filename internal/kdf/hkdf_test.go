package kdf

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"testing"
)

// TestMatchesStandardLibrary proves the reusable HKDF equal to crypto/hkdf
// for every hash the message format uses, across key, salt, info and output
// lengths, including salts longer than a block and empty ones.
func TestMatchesStandardLibrary(t *testing.T) {
	hashes := map[string]func() hash.Hash{"sha256": sha256.New, "sha384": sha512.New384, "sha512": sha512.New}
	for name, newHash := range hashes {
		h := NewHMAC(newHash)
		for _, ikmLen := range []int{0, 16, 32, 200} {
			for _, saltLen := range []int{0, 16, 32, 129, 300} {
				for _, outLen := range []int{1, 32, 64, 65, 200} {
					ikm, salt, info := random(ikmLen), random(saltLen), random(outLen%17)
					want, err := hkdf.Key(newHash, ikm, salt, string(info), outLen)
					if err != nil {
						t.Fatal(err)
					}
					prk := h.Extract(nil, salt, ikm)
					got := h.Expand([]byte("prefix"), prk, outLen, info[:len(info)/2], info[len(info)/2:])
					if string(got[:6]) != "prefix" || string(got[6:]) != string(want) {
						t.Fatalf("%s ikm=%d salt=%d out=%d: differs from crypto/hkdf", name, ikmLen, saltLen, outLen)
					}
				}
			}
		}
	}
}

// ExpandAgain under the same PRK equals a full Expand.
func TestExpandAgainMatchesStandardLibrary(t *testing.T) {
	h := NewHMAC(sha512.New)
	for range 20 {
		ikm, salt := random(32), random(32)
		prk := h.Extract(nil, salt, ikm)
		first := h.Expand(nil, prk, 32, []byte{0x04, 0x78}, []byte("DERIVEKEY"))
		second := h.ExpandAgain(nil, 32, []byte("COMMITKEY"))
		want1, _ := hkdf.Key(sha512.New, ikm, salt, "\x04\x78DERIVEKEY", 32)
		want2, _ := hkdf.Key(sha512.New, ikm, salt, "COMMITKEY", 32)
		if string(first) != string(want1) || string(second) != string(want2) {
			t.Fatal("Expand/ExpandAgain differ from crypto/hkdf")
		}
	}
}

func TestExpandAllocatesNothing(t *testing.T) {
	h := NewHMAC(sha512.New)
	ikm, salt := random(32), random(32)
	prk := make([]byte, 0, 64)
	out := make([]byte, 0, 64)
	suite, derive, commit := []byte{0x04, 0x78}, []byte("DERIVEKEY"), []byte("COMMITKEY")
	allocs := testing.AllocsPerRun(100, func() {
		p := h.Extract(prk[:0], salt, ikm)
		h.Expand(out[:0], p, 32, suite, derive)
		h.ExpandAgain(out[:0], 32, commit)
		h.Extract(prk[:0], nil, ikm)
	})
	if allocs != 0 && !raceEnabled {
		t.Fatalf("Extract+Expand allocate %v times per run", allocs)
	}
}

func TestExpandRefusesTooLong(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for an over-long Expand")
		}
	}()
	NewHMAC(sha256.New).Expand(nil, random(32), 255*32+1)
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func BenchmarkDeriveStdlib(b *testing.B) {
	ikm, salt := random(32), random(32)
	b.ReportAllocs()
	for b.Loop() {
		prk, _ := hkdf.Extract(sha512.New, ikm, salt)
		hkdf.Expand(sha512.New, prk, "\x04\x78DERIVEKEY", 32)
		hkdf.Expand(sha512.New, prk, "COMMITKEY", 32)
	}
}

func BenchmarkDeriveReusable(b *testing.B) {
	ikm, salt := random(32), random(32)
	h := NewHMAC(sha512.New)
	prk := make([]byte, 0, 64)
	out := make([]byte, 0, 64)
	suite, derive, commit := []byte{0x04, 0x78}, []byte("DERIVEKEY"), []byte("COMMITKEY")
	b.ReportAllocs()
	for b.Loop() {
		p := h.Extract(prk[:0], salt, ikm)
		h.Expand(out[:0], p, 32, suite, derive)
		h.ExpandAgain(out[:0], 32, commit)
	}
}
