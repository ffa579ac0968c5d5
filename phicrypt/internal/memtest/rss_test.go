//go:build linux

// Package memtest bounds the memory of streaming. It is a package of its own
// so that the child process it measures links only phicrypt and keyring,
// not the test helpers (kmsmock, HTTP servers) of phicrypt's own tests.
package memtest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

func rawKeyring(t *testing.T) keyring.Keyring {
	t.Helper()
	kr, err := keyring.NewRawAES("memtest", "key", make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// TestStreamingMemoryIsBounded streams a large message through NewWriter
// and NewReader (connected by a pipe, so nothing is held whole) in a child
// process and checks the child's peak resident memory: at most 32 MiB,
// whatever the size. go test streams 256 MiB; the full suite
// (PHICRYPT_FULL_SUITE) streams 1 GiB.
func TestStreamingMemoryIsBounded(t *testing.T) {
	size := int64(256 << 20)
	if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
		size = 1 << 30
	}
	peak := childPeakRSS(t, "TestStreamingMemoryChild", "PHICRYPT_RSS_CHILD_BYTES="+strconv.FormatInt(size, 10))
	t.Logf("streamed %d MiB through encrypt and decrypt; peak RSS %.1f MiB", size>>20, float64(peak)/(1<<20))
	checkPeak(t, peak)
}

// childPeakRSS runs the test named child of this binary in a child process
// with env added, and returns the child's peak resident memory.
func childPeakRSS(t *testing.T, child string, env ...string) int64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Fatal("no resource usage for the child")
	}
	return int64(ru.Maxrss) << 10 // Linux reports KiB
}

// checkPeak fails t when peak is over 32 MiB (96 MiB under the race
// detector, whose shadow memory the bound does not count; scripts/test.sh
// checks the 32 MiB bound without -race).
func checkPeak(t *testing.T, peak int64) {
	t.Helper()
	limit := int64(32 << 20)
	if raceEnabled {
		limit = 96 << 20
	}
	if peak > limit {
		t.Fatalf("peak RSS %d MiB exceeds %d MiB", peak>>20, limit>>20)
	}
}

// TestStreamingMemoryChild is the child of TestStreamingMemoryIsBounded; it
// does nothing unless that test starts it.
func TestStreamingMemoryChild(t *testing.T) {
	n, err := strconv.ParseInt(os.Getenv("PHICRYPT_RSS_CHILD_BYTES"), 10, 64)
	if err != nil {
		return
	}
	ctx := context.Background()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(t)})
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
		chunk := make([]byte, 1<<20)
		for i := range chunk {
			chunk[i] = byte(i * 7)
		}
		for sent := int64(0); sent < n; sent += int64(len(chunk)) {
			want.Write(chunk)
			if _, err := w.Write(chunk); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(w.Close())
	}()
	r, err := enc.NewReader(ctx, pr, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	m, err := io.Copy(got, r)
	if err != nil || m != n || fmt.Sprintf("%x", got.Sum(nil)) != fmt.Sprintf("%x", want.Sum(nil)) {
		t.Fatalf("streamed %d of %d bytes (%v), or the digest differs", m, n, err)
	}
}
