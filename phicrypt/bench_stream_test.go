package phicrypt_test

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/phicrypt"
)

// BenchmarkStreamEncrypt64MiBWorkerSpeedup interleaves, in every
// iteration, a 64 MiB stream with 1 worker and with 2 (4 MiB writes, as
// BenchmarkStreamEncrypt64MiB) and raw AES-GCM on one goroutine and on two,
// and reports each speedup from the fastest of its rounds. On a shared
// machine a second core comes and goes within a second; measured side by
// side, the writer's speedup can be read against what the machine gave
// raw AES-GCM in the same moments:
//
//	go test ./phicrypt/ -run '^$' -bench WorkerSpeedup -benchtime 40x
func BenchmarkStreamEncrypt64MiBWorkerSpeedup(b *testing.B) {
	pt := make([]byte, streamSize)
	ctx := context.Background()
	stream := func(workers int) func() {
		enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(b), Workers: workers})
		if err != nil {
			b.Fatal(err)
		}
		return func() {
			w, err := enc.NewWriter(ctx, io.Discard, nil)
			if err != nil {
				b.Fatal(err)
			}
			for off := 0; off < len(pt); off += writeChunk {
				if _, err := w.Write(pt[off : off+writeChunk]); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
	aead := rawGCM(b)
	raw := func(goroutines int) func() {
		return func() {
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					nonce := make([]byte, 12)
					out := make([]byte, 0, phicrypt.DefaultFrameLength+16)
					share := len(pt) / goroutines
					for off := g * share; off < (g+1)*share; off += phicrypt.DefaultFrameLength {
						out = aead.Seal(out[:0], nonce, pt[off:off+phicrypt.DefaultFrameLength], nil)
					}
				})
			}
			wg.Wait()
		}
	}
	runs := []func(){raw(1), raw(2), stream(1), stream(2)}
	best := make([]time.Duration, len(runs))
	for b.Loop() {
		for i, run := range runs {
			start := time.Now()
			run()
			if d := time.Since(start); best[i] == 0 || d < best[i] {
				best[i] = d
			}
		}
	}
	b.ReportMetric(float64(best[0])/float64(best[1]), "raw-2x/1x")
	b.ReportMetric(float64(best[2])/float64(best[3]), "writer-2x/1x")
	b.ReportMetric(float64(best[3].Microseconds())/1000, "writer-2-ms")
}
