package phicrypt

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/keyring"
)

// TestSealBodyParallelMatchesOneGoroutine seals the same message (one
// header, one data key, one message ID) with one goroutine and with
// several, and requires the same bytes.
func TestSealBodyParallelMatchesOneGoroutine(t *testing.T) {
	kr, err := keyring.NewRawAES("phicrypt-test", "key-1", make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ frame, size, workers int }{
		{DefaultFrameLength, 1 << 20, 2},          // exact multiple: a full final frame
		{DefaultFrameLength, 1<<20 + 1, 2},        // a 1-byte final frame
		{DefaultFrameLength, 3<<20 + 4321, 3},     // three goroutines, the last batch short
		{1000, 1 << 20, 4},                        // many frames to a batch
		{1 << 20, 4<<20 + 1, 8},                   // a frame to a batch, more workers than batches
		{DefaultFrameLength, minParallelBytes, 8}, // the smallest plaintext sealed in parallel
	} {
		e, err := New(Config{Keyring: kr, FrameLength: c.frame, Workers: c.workers})
		if err != nil {
			t.Fatal(err)
		}
		pt := make([]byte, c.size)
		rand.Read(pt)
		n := c.size / c.frame
		if c.size%c.frame == 0 {
			n--
		}
		if !e.sealsInParallel(c.size, n) {
			t.Fatalf("frame %d, size %d, %d workers: not sealed in parallel", c.frame, c.size, c.workers)
		}
		st := e.getEncryptState()
		s, head, err := e.begin(context.Background(), st, nil, nil, int64(c.size))
		if err != nil {
			t.Fatal(err)
		}
		room := len(head) + encryptedBodySize(int64(c.size), c.frame, false)
		parallel := e.sealBody(s, head, pt, n)
		e.workers = 1
		single := e.sealBody(s, append(make([]byte, 0, room), head...), pt, n)
		if !bytes.Equal(parallel, single) {
			t.Errorf("frame %d, size %d, %d workers: the body sealed in parallel differs from one goroutine's", c.frame, c.size, c.workers)
		}
		if len(single) != room {
			t.Errorf("frame %d, size %d: the message is %d bytes, want %d", c.frame, c.size, len(single), room)
		}
		e.putEncryptState(st)
	}
}

// TestSealsInParallelThreshold pins which plaintexts are sealed on several
// goroutines.
func TestSealsInParallelThreshold(t *testing.T) {
	kr, err := keyring.NewRawAES("phicrypt-test", "key-1", make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		workers, frame, size int
		want                 bool
	}{
		{1, DefaultFrameLength, 64 << 20, false},
		{2, DefaultFrameLength, minParallelBytes - 1, false},
		{2, DefaultFrameLength, minParallelBytes, true},
		{2, 1 << 20, 1 << 20, false},  // one frame
		{2, 1 << 20, 1<<20 + 1, true}, // two frames, two batches
		{2, 1000, minParallelBytes, true},
	} {
		e, err := New(Config{Keyring: kr, FrameLength: c.frame, Workers: c.workers})
		if err != nil {
			t.Fatal(err)
		}
		n := c.size / c.frame
		if c.size%c.frame == 0 {
			n--
		}
		if got := e.sealsInParallel(c.size, n); got != c.want {
			t.Errorf("%d workers, frame %d, size %d: sealsInParallel = %v, want %v", c.workers, c.frame, c.size, got, c.want)
		}
	}
}

// BenchmarkSealBodyParallelSpeedup measures what sealing in parallel gains
// at sizes around minParallelBytes: in every iteration it seals the same
// body ten times on one goroutine and ten times on two, into one buffer,
// and reports the speedup from the fastest round of each. A speedup below 1
// means the goroutines cost more than they save:
//
//	go test ./phicrypt/ -run '^$' -bench SealBodyParallelSpeedup -benchtime 300x
func BenchmarkSealBodyParallelSpeedup(b *testing.B) {
	kr, err := keyring.NewRawAES("phicrypt-test", "key-1", make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	for _, fl := range []int{4 << 10, DefaultFrameLength} {
		for _, size := range []int{256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20} {
			b.Run(fmt.Sprintf("frame=%dKiB/size=%dKiB", fl>>10, size>>10), func(b *testing.B) {
				e, err := New(Config{Keyring: kr, Workers: 2, FrameLength: fl})
				if err != nil {
					b.Fatal(err)
				}
				pt := make([]byte, size)
				n := (size - 1) / fl
				st := e.getEncryptState()
				defer e.putEncryptState(st)
				s, head, err := e.begin(context.Background(), st, nil, nil, int64(size))
				if err != nil {
					b.Fatal(err)
				}
				buf := make([]byte, 0, len(head)+encryptedBodySize(int64(size), fl, false))
				var best [2]time.Duration
				for b.Loop() {
					for i := range best {
						start := time.Now()
						for range 10 {
							if i == 0 {
								e.workers = 1
								e.sealBody(s, buf[:0], pt, n)
							} else {
								e.workers = 2
								e.sealBodyParallel(s, buf[:0], pt, n)
							}
						}
						if d := time.Since(start); best[i] == 0 || d < best[i] {
							best[i] = d
						}
					}
				}
				b.ReportMetric(float64(best[0])/float64(best[1]), "speedup")
			})
		}
	}
}
