package phicrypt_test

import (
	"context"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/phicrypt"
)

// BenchmarkEncryptAppend64MiBWorkers interleaves, in every iteration, raw
// AES-GCM sealing 64 MiB in 64 KiB pieces on one goroutine (into one
// reused 64 KiB buffer, as BenchmarkRawGCMSeal64MiB) with EncryptAppend of
// a 64 MiB message into a reused dst with 1 and 2 Workers, and Encrypt
// (a fresh 64 MiB output each time) with 2 Workers. It reports each one's
// throughput as a fraction of raw sealing's (1 is as fast), from the
// fastest of its rounds, and the 2-worker speedup over 1:
//
//	go test ./phicrypt/ -run '^$' -bench EncryptAppend64MiBWorkers -benchtime 40x -count 5
func BenchmarkEncryptAppend64MiBWorkers(b *testing.B) {
	pt := make([]byte, streamSize)
	ctx := context.Background()
	encryptor := func(workers int) *phicrypt.Encryptor {
		enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(b), Workers: workers})
		if err != nil {
			b.Fatal(err)
		}
		return enc
	}
	appendInto := func(workers int) func() {
		enc := encryptor(workers)
		dst, err := enc.Encrypt(ctx, pt, nil)
		if err != nil {
			b.Fatal(err)
		}
		dst = make([]byte, 0, len(dst)+4096) // room for any header
		return func() {
			if dst, err = enc.EncryptAppend(ctx, dst[:0], pt, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	fresh := func(workers int) func() {
		enc := encryptor(workers)
		return func() {
			if _, err := enc.Encrypt(ctx, pt, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	aead := rawGCM(b)
	out := make([]byte, 0, phicrypt.DefaultFrameLength+16)
	nonce := make([]byte, 12)
	raw := func() {
		for off := 0; off < len(pt); off += phicrypt.DefaultFrameLength {
			out = aead.Seal(out[:0], nonce, pt[off:off+phicrypt.DefaultFrameLength], nil)
		}
	}
	runs := []func(){raw, appendInto(1), appendInto(2), fresh(2)}
	best := make([]time.Duration, len(runs))
	b.SetBytes(streamSize)
	for b.Loop() {
		for i, run := range runs {
			start := time.Now()
			run()
			if d := time.Since(start); best[i] == 0 || d < best[i] {
				best[i] = d
			}
		}
	}
	of := func(i int) float64 { return float64(best[0]) / float64(best[i]) }
	b.ReportMetric(of(1), "w1-of-raw")
	b.ReportMetric(of(2), "w2-of-raw")
	b.ReportMetric(of(3), "fresh-w2-of-raw")
	b.ReportMetric(float64(best[1])/float64(best[2]), "w2/w1")
	b.ReportMetric(float64(best[0].Microseconds())/1000, "raw-ms")
	b.ReportMetric(float64(best[2].Microseconds())/1000, "w2-ms")
}
