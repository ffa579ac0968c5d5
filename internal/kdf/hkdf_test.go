package kdf

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
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

// BenchmarkSHA512TenBlocks is the floor of a committing suite's derivation:
// ten SHA-512 compressions (Extract: two pad blocks, the data key's block,
// the outer block; the two Expands: the PRK's two pad blocks once, then an
// inner and an outer block each). Quote BenchmarkDerive* against it.
func BenchmarkSHA512TenBlocks(b *testing.B) {
	d := sha512.New()
	msg := make([]byte, 9*128) // nine blocks, and the padding makes a tenth
	sum := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		d.Reset()
		d.Write(msg)
		sum = d.Sum(sum[:0])
	}
}

// The HMAC keeps track of which hash holds a fresh pad state; any order of
// Key, Rekey, Write, Sum, Extract and Expand must still give exactly
// crypto/hmac's and crypto/hkdf's results. SHA3-256 (a 136-byte block, padded
// byte by byte) and SHA-1 (no SHA-2 state) cover the other paths.
func TestInterleavedUseMatchesStandardLibrary(t *testing.T) {
	hashes := map[string]func() hash.Hash{
		"sha256": sha256.New, "sha512": sha512.New, "sha1": sha1.New,
		"sha3-256": func() hash.Hash { return sha3.New256() },
	}
	for name, newHash := range hashes {
		h := NewHMAC(newHash)
		for round := range 30 {
			key, msg1, msg2 := random(round*7%200), random(round*13%300), random(round%5)
			h.Key(key)
			h.Write(msg1)
			got1 := h.Sum(nil)
			h.Rekey()
			h.Rekey() // twice: still the key's pads alone
			h.Write(random(9))
			h.Rekey() // an abandoned MAC leaves nothing behind
			h.Write(msg2)
			got2 := h.Sum(nil)
			h.Rekey()
			h.Write(msg1)
			got3 := h.Sum(nil)
			if !hmac.Equal(got1, stdHMAC(newHash, key, msg1)) || !hmac.Equal(got2, stdHMAC(newHash, key, msg2)) || !hmac.Equal(got3, got1) {
				t.Fatalf("%s round %d: HMAC differs from crypto/hmac", name, round)
			}
			// An Extract between Expands under another PRK, then
			// ExpandAgain, which must use the latest Expand's PRK.
			ikm, salt, info := random(32), random(round*11%150), random(round%9)
			prk := h.Extract(nil, salt, ikm)
			wantPRK, _ := hkdf.Extract(newHash, ikm, salt)
			okm := h.Expand(nil, prk, h.Size(), info)
			h.Extract(nil, random(16), random(16))
			again := h.Expand(nil, prk, h.Size()/2, []byte("x"))
			again2 := h.ExpandAgain(nil, h.Size(), info)
			want, _ := hkdf.Expand(newHash, wantPRK, string(info), h.Size())
			wantX, _ := hkdf.Expand(newHash, wantPRK, "x", h.Size()/2)
			if !hmac.Equal(prk, wantPRK) || !hmac.Equal(okm, want) || !hmac.Equal(again2, want) || !hmac.Equal(again, wantX) {
				t.Fatalf("%s round %d: HKDF differs from crypto/hkdf", name, round)
			}
		}
		h.Wipe()
	}
}

func stdHMAC(newHash func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(newHash, key)
	m.Write(msg)
	return m.Sum(nil)
}
