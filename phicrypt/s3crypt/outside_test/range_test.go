package outside_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/phicrypt/phicrypt/internal/s3test"
)

// TestRangeEdges reads odd ranges of objects of several frame lengths and
// sizes (empty, an exact frame multiple, a ragged tail) through GetRange
// and Object.ReadAt, comparing with the plaintext.
func TestRangeEdges(t *testing.T) {
	env := s3test.New(t)
	ctx := context.Background()
	for _, fl := range []int{1, 17, 4096, 1 << 20} {
		r := newRig(t, env, fl)
		sizes := []int{0, 3 * fl, 3*fl + 5, 1}
		if fl == 1 {
			sizes = []int{0, 1, 200}
		}
		for _, size := range sizes {
			t.Run(fmt.Sprintf("fl=%d/size=%d", fl, size), func(t *testing.T) {
				key := fmt.Sprintf("edges/%d/%d", fl, size)
				pt := rnd(size)
				r.put(t, key, pt, map[string]string{"tenant": "t1"})
				s := int64(size)
				f := int64(fl)
				offs := []int64{0, 1, f - 1, f, f + 1, s - 1, s, s + 1, s + 1000, 1 << 40, math.MaxInt64}
				ns := []int64{0, 1, 2, f, f + 1, s, 1 << 62, math.MaxInt64}
				for _, off := range offs {
					if off < 0 {
						continue
					}
					for _, n := range ns {
						if n < 0 {
							continue
						}
						var got []byte
						var err error
						noPanic(t, fmt.Sprintf("GetRange(%d,%d)", off, n), func() {
							got, err = r.c.GetRange(ctx, r.bucket, key, off, n, nil)
						})
						if err != nil {
							t.Errorf("GetRange(%d, %d): %v", off, n, err)
							continue
						}
						lo := min(off, s)
						hi := s
						if n < s-lo {
							hi = lo + n
						}
						if !bytes.Equal(got, pt[lo:hi]) {
							t.Errorf("GetRange(%d, %d): %d bytes, want %d (or wrong bytes)", off, n, len(got), hi-lo)
						}
					}
				}
				for _, off := range []int64{-1, math.MinInt64} {
					if _, err := r.c.GetRange(ctx, r.bucket, key, off, 1, nil); err == nil {
						t.Errorf("GetRange(%d, 1): no error", off)
					}
				}
				if _, err := r.c.GetRange(ctx, r.bucket, key, 0, -1, nil); err == nil {
					t.Error("GetRange(0, -1): no error")
				}

				o, err := r.c.Open(ctx, r.bucket, key, nil)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if o.Size() != s {
					t.Fatalf("Size %d, want %d", o.Size(), s)
				}
				for _, off := range offs {
					if off < 0 {
						continue
					}
					for _, n := range []int64{0, 1, 2, f, f + 1, s, s + 7} {
						checkReadAt(t, o, pt, off, int(n))
					}
				}
				if _, err := o.ReadAt(make([]byte, 1), -1); err == nil {
					t.Error("ReadAt(-1): no error")
				}
			})
		}
	}
}

// checkReadAt checks one ReadAt against the io.ReaderAt contract: n <
// len(p) only with an error, the bytes right, and p's capacity beyond its
// length untouched.
func checkReadAt(t *testing.T, o io.ReaderAt, pt []byte, off int64, n int) {
	t.Helper()
	const guard = 64
	backing := bytes.Repeat([]byte{0xA5}, n+guard)
	p := backing[:n]
	var k int
	var err error
	noPanic(t, fmt.Sprintf("ReadAt(len %d, %d)", n, off), func() { k, err = o.ReadAt(p, off) })
	s := int64(len(pt))
	want := 0
	if off < s {
		want = int(min(int64(n), s-off))
	}
	if k < n && err == nil {
		t.Errorf("ReadAt(len %d, off %d) = %d with no error", n, off, k)
	}
	if k > n {
		t.Errorf("ReadAt(len %d, off %d) = %d > len(p)", n, off, k)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		t.Errorf("ReadAt(len %d, off %d): %v", n, off, err)
		return
	}
	if k != want {
		t.Errorf("ReadAt(len %d, off %d) = %d, want %d", n, off, k, want)
	} else if k > 0 && !bytes.Equal(p[:k], pt[off:off+int64(k)]) {
		t.Errorf("ReadAt(len %d, off %d): wrong bytes", n, off)
	}
	for i, b := range backing[n:] {
		if b != 0xA5 {
			t.Errorf("ReadAt(len %d, off %d) wrote p's capacity at %d", n, off, n+i)
			break
		}
	}
}

// TestReadAtConcurrent reads one Object from many goroutines (run with
// -race).
func TestReadAtConcurrent(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env, 4096)
	pt := rnd(300_001)
	r.put(t, "conc", pt, nil)
	o, err := r.c.Open(context.Background(), r.bucket, "conc", nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 32 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for range 20 {
				off := rng.Int64N(int64(len(pt)) + 10)
				n := rng.IntN(20000)
				p := make([]byte, n)
				k, err := o.ReadAt(p, off)
				if err != nil && !errors.Is(err, io.EOF) {
					errs <- err
					return
				}
				if k < n && err == nil {
					errs <- fmt.Errorf("short ReadAt without error")
					return
				}
				if off < int64(len(pt)) && !bytes.Equal(p[:k], pt[off:off+int64(k)]) {
					errs <- fmt.Errorf("wrong bytes at %d", off)
					return
				}
			}
		})
	}
	// GetRange from other goroutines at the same time, sharing the cache.
	for g := range 8 {
		wg.Go(func() {
			off := int64(g * 30000)
			b, err := r.c.GetRange(context.Background(), r.bucket, "conc", off, 5000, nil)
			if err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(b, pt[off:off+5000]) {
				errs <- fmt.Errorf("GetRange wrong bytes at %d", off)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
