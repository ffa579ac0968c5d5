//go:build linux

package memtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/phicrypt/phicrypt/phicrypt"
)

// TestParallelStreamingMemoryIsBounded is TestStreamingMemoryIsBounded for a
// writer sealing with 4 workers, fed 4 MiB writes (an S3 part's size) and
// small ones in turn, so that both the direct and the buffered paths keep
// their windows of frames in flight: peak RSS at most 32 MiB.
func TestParallelStreamingMemoryIsBounded(t *testing.T) {
	size := int64(256 << 20)
	if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
		size = 1 << 30
	}
	peak := childPeakRSS(t, "TestParallelStreamingMemoryChild", "PHICRYPT_RSS_PARALLEL_CHILD_BYTES="+strconv.FormatInt(size, 10))
	t.Logf("streamed %d MiB through a 4-worker writer and a reader; peak RSS %.1f MiB", size>>20, float64(peak)/(1<<20))
	checkPeak(t, peak)
}

// TestParallelStreamingMemoryChild is the child of
// TestParallelStreamingMemoryIsBounded; it does nothing unless that test
// starts it.
func TestParallelStreamingMemoryChild(t *testing.T) {
	n, err := strconv.ParseInt(os.Getenv("PHICRYPT_RSS_PARALLEL_CHILD_BYTES"), 10, 64)
	if err != nil {
		return
	}
	ctx := context.Background()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(t), Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	want := sha256.New()
	go func() {
		w, err := enc.NewWriter(ctx, pw, nil)
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		chunk := make([]byte, 4<<20)
		for i := range chunk {
			chunk[i] = byte(i * 7)
		}
		for sent, i := int64(0), 0; sent < n; i++ {
			part := chunk
			if i%2 == 1 {
				part = chunk[:1000] // small writes fill the plaintext window
			}
			part = part[:min(int64(len(part)), n-sent)]
			want.Write(part)
			if _, err := w.Write(part); err != nil {
				pw.CloseWithError(err)
				return
			}
			sent += int64(len(part))
		}
		pw.CloseWithError(w.Close())
	}()
	r, err := enc.NewReader(ctx, pr, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	m, err := io.Copy(got, r)
	if err != nil || m != n || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("streamed %d of %d bytes (%v), or the digest differs", m, n, err)
	}
}
