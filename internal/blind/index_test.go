package blind

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
)

// testKey returns a deterministic key for tests.
func testKey(seed byte) []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

func referenceMAC(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}

func mustIndex(t testing.TB, key []byte, bits int) *Index {
	t.Helper()
	x, err := NewIndex(key, bits)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestSumEqualsHMAC: a full-width Sum is crypto/hmac's HMAC-SHA-256, over
// random keys and messages of every length 0..200 (crossing the 64-byte
// block boundaries), computed twice per index to cover pooled states.
func TestSumEqualsHMAC(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 200; n++ {
		key := make([]byte, KeySize)
		msg := make([]byte, n)
		fill(rng, key)
		fill(rng, msg)
		x := mustIndex(t, key, 256)
		want := referenceMAC(key, msg)
		for range 2 {
			got, err := x.Sum(nil, msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("len %d: Sum = %x, HMAC = %x", n, got, want)
			}
		}
	}
}

func fill(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

// TestSumTruncation: for every width, Sum keeps the first bits bits of the
// MAC, big-endian, and clears the rest of the last byte.
func TestSumTruncation(t *testing.T) {
	key, value := testKey(7), []byte("patient@example.org")
	full := referenceMAC(key, value)
	for bits := 1; bits <= 256; bits++ {
		x := mustIndex(t, key, bits)
		got, err := x.Sum([]byte("prefix"), value)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(got, []byte("prefix")) {
			t.Fatalf("bits %d: dst prefix lost", bits)
		}
		got = got[len("prefix"):]
		if len(got) != (bits+7)/8 || len(got) != x.Len() || x.Bits() != bits {
			t.Fatalf("bits %d: %d bytes, Len %d, Bits %d", bits, len(got), x.Len(), x.Bits())
		}
		for i := range 256 {
			gotBit := i < 8*len(got) && got[i/8]>>(7-i%8)&1 == 1
			fullBit := full[i/8]>>(7-i%8)&1 == 1
			if i < bits && gotBit != fullBit {
				t.Fatalf("bits %d: bit %d differs from the MAC's", bits, i)
			}
			if i >= bits && gotBit {
				t.Fatalf("bits %d: unused bit %d is set", bits, i)
			}
		}
	}
}

func TestSumCompoundEncoding(t *testing.T) {
	key := testKey(9)
	x := mustIndex(t, key, 256)
	values := [][]byte{[]byte("Smith"), {}, []byte("1970-01-01")}
	var enc []byte
	for _, v := range values {
		enc = binary.BigEndian.AppendUint32(enc, uint32(len(v)))
		enc = append(enc, v...)
	}
	got, err := x.SumCompound(nil, values...)
	if err != nil {
		t.Fatal(err)
	}
	if want := referenceMAC(key, enc); !bytes.Equal(got, want) {
		t.Fatalf("SumCompound = %x, want HMAC of the length-prefixed encoding %x", got, want)
	}
}

func TestSumCompoundUnambiguous(t *testing.T) {
	x := mustIndex(t, testKey(3), 256)
	groups := [][][]byte{
		{[]byte("ab"), []byte("c")},
		{[]byte("a"), []byte("bc")},
		{[]byte("abc")},
		{[]byte("abc"), {}},
		{{}, []byte("abc")},
		{[]byte("a"), []byte("b"), []byte("c")},
	}
	seen := map[string]int{}
	for i, g := range groups {
		s, err := x.SumCompound(nil, g...)
		if err != nil {
			t.Fatal(err)
		}
		if j, dup := seen[string(s)]; dup {
			t.Fatalf("groups %d and %d have the same compound index", j, i)
		}
		seen[string(s)] = i
	}
}

func TestCaps(t *testing.T) {
	x := mustIndex(t, testKey(1), 32)
	long := make([]byte, MaxValueLen+1)
	ok := make([]byte, MaxValueLen)
	if _, err := x.Sum(nil, ok); err != nil {
		t.Errorf("Sum at MaxValueLen: %v", err)
	}
	if out, err := x.Sum([]byte("dst"), long); !errors.Is(err, ErrValueTooLarge) || out != nil {
		t.Errorf("Sum over MaxValueLen = %q, %v", out, err)
	}
	many := make([][]byte, MaxCompoundValues+1)
	if _, err := x.SumCompound(nil, many[:MaxCompoundValues]...); err != nil {
		t.Errorf("SumCompound of %d values: %v", MaxCompoundValues, err)
	}
	cases := []struct {
		values [][]byte
		want   error
	}{
		{many, ErrTooManyValues},
		{nil, ErrNoValues},
		{[][]byte{ok, long}, ErrValueTooLarge},
	}
	for _, c := range cases {
		if out, err := x.SumCompound(nil, c.values...); !errors.Is(err, c.want) || out != nil {
			t.Errorf("SumCompound(%d values) = %q, %v; want %v", len(c.values), out, err, c.want)
		}
	}
}

func TestNewIndexErrors(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := NewIndex(make([]byte, n), 16); !errors.Is(err, ErrKeySize) {
			t.Errorf("key of %d bytes: %v", n, err)
		}
	}
	for _, bits := range []int{-1, 0, 257, 1 << 20} {
		if _, err := NewIndex(testKey(0), bits); !errors.Is(err, ErrBits) {
			t.Errorf("%d bits: %v", bits, err)
		}
	}
}

// TestNewIndexCopiesKey: changing the caller's key afterwards changes
// nothing.
func TestNewIndexCopiesKey(t *testing.T) {
	key := testKey(5)
	x := mustIndex(t, key, 256)
	want := referenceMAC(testKey(5), []byte("v"))
	clear(key)
	if got, _ := x.Sum(nil, []byte("v")); !bytes.Equal(got, want) {
		t.Fatal("Index follows the caller's key buffer")
	}
}

// TestSumConcurrent: many goroutines share one Index (run it with -race).
func TestSumConcurrent(t *testing.T) {
	key := testKey(11)
	x := mustIndex(t, key, 256)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			var buf []byte
			for i := range 200 {
				v := []byte{byte(g), byte(i), byte(i >> 8)}
				var err error
				buf, err = x.Sum(buf[:0], v)
				if err != nil || !bytes.Equal(buf, referenceMAC(key, v)) {
					t.Errorf("goroutine %d, value %d: wrong sum", g, i)
					return
				}
			}
		})
	}
	wg.Wait()
}
