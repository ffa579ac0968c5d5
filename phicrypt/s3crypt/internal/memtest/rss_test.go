//go:build linux

// Package memtest bounds the memory of S3 uploads and downloads, and the
// bytes a ranged read transfers, against MinIO. It is a package of its own
// so that the child process it measures links s3crypt and the S3 client,
// not the test helpers of s3crypt's own tests.
package memtest

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

// objectSize is 1 GiB, or 64 MiB under the race detector, whose shadow
// memory makes the bound meaningless (the full suite checks it again
// without -race) and whose slowness would make 1 GiB take minutes.
var objectSize = func() int64 {
	if raceEnabled {
		return 64 << 20
	}
	return 1 << 30
}()

const (
	frameLen = 64 << 10
	// limit is the peak resident memory allowed for a 1 GiB upload and
	// download with the default transfer settings.
	limit = 64 << 20
)

// The transfer settings measured: the least part size S3 accepts, two
// parts at once (PHICRYPT_S3_RSS_PART_MIB and _CONC override them when
// tuning). Memory grows with PartSize·(Concurrency+1): the transfer
// manager holds that many part buffers, and Go's collector lets the heap
// reach about twice what is live.
var (
	partSize    = int64(envInt("PHICRYPT_S3_RSS_PART_MIB", 5)) << 20
	concurrency = envInt("PHICRYPT_S3_RSS_CONC", 2)
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

// TestS3MemoryIsBounded uploads a 1 GiB object with Put and downloads it
// with Get in a child process against MinIO, then checks the child's peak
// resident memory: the bound holds for each of the upload and the
// download (the child returns the upload's freed heap to the system before
// downloading, as a separate process would start without it). The child also checks what ranged reads transfer.
func TestS3MemoryIsBounded(t *testing.T) {
	s3test.MinIO(t) // skips (or, in the full suite, fails) without MinIO
	cmd := exec.Command(os.Args[0], "-test.run=^TestS3MemoryChild$", "-test.v")
	cmd.Env = append(os.Environ(), "PHICRYPT_S3_RSS_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Fatal("no resource usage for the child")
	}
	peak := int64(ru.Maxrss) << 10 // Linux reports KiB
	t.Logf("uploaded and downloaded %d MiB; peak RSS %.1f MiB", objectSize>>20, float64(peak)/(1<<20))
	max := int64(limit)
	if raceEnabled {
		max = 8 * limit // shadow memory; the bound itself is checked without -race
	}
	if peak > max {
		t.Fatalf("peak RSS %d MiB exceeds %d MiB", peak>>20, max>>20)
	}
}

// pattern is a deterministic plaintext of n bytes, made as it is read.
type pattern struct{ off, n int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	k := int(min(int64(len(b)), p.n-p.off))
	for i := range k {
		x := uint64(p.off+int64(i)) * 0x9E3779B97F4A7C15
		b[i] = byte(x >> 56)
	}
	p.off += int64(k)
	return k, nil
}

// TestS3MemoryChild is the child of TestS3MemoryIsBounded; it does nothing
// unless that test starts it.
func TestS3MemoryChild(t *testing.T) {
	if os.Getenv("PHICRYPT_S3_RSS_CHILD") == "" {
		return
	}
	ctx := context.Background()
	env := s3test.MinIO(t)
	kr, err := keyring.NewRawAES("memtest", "key", make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, FrameLength: frameLen})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s3crypt.New(s3crypt.Config{S3: env.Client(), Encryptor: enc, PartSize: partSize, Concurrency: concurrency})
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.New()
	if _, err := io.Copy(want, &pattern{n: objectSize}); err != nil {
		t.Fatal(err)
	}
	res, err := c.Put(ctx, env.Bucket, "big", &pattern{n: objectSize}, nil, &s3crypt.PutOptions{Size: objectSize, SizeKnown: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stored %d bytes of message for %d of plaintext", res.ObjectSize, res.Size)
	if os.Getenv("PHICRYPT_S3_RSS_ONLY") == "put" {
		return
	}
	// The bound is for each of the upload and the download, as two
	// processes would see them: hand what the upload's buffers left in
	// the heap back to the system before the download starts.
	debug.FreeOSMemory()
	r, err := c.Get(ctx, env.Bucket, "big", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, r)
	r.Close()
	if err != nil || n != objectSize || string(got.Sum(nil)) != string(want.Sum(nil)) {
		t.Fatalf("downloaded %d of %d bytes (%v), or the digest differs", n, objectSize, err)
	}
	rangedReads(t, c, enc, env)
}

// rangedReads checks the bytes on the wire of 1 MiB ranged reads of the
// 1 GiB object: the first at most 1 MiB + 2 frames + the header, a second
// no header at all.
func rangedReads(t *testing.T, c *s3crypt.Client, enc *phicrypt.Encryptor, env *s3test.Env) {
	ctx := context.Background()
	headerLen := messageHeaderLength(t, enc, env)
	const frame = frameLen + 32 // a regular frame on the wire
	const mib = 1 << 20
	check := func(what string, off int64, header bool) {
		t.Helper()
		before, reqs := env.Bytes.Load(), env.Requests.Load()
		b, err := c.GetRange(ctx, env.Bucket, "big", off, mib, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := &pattern{off: off, n: off + mib}
		want, _ := io.ReadAll(p)
		if string(b) != string(want) {
			t.Fatalf("%s: the range read other bytes", what)
		}
		moved, calls := env.Bytes.Load()-before, env.Requests.Load()-reqs
		// 1 MiB of plaintext is 16 frames on the wire when aligned.
		bound := int64(16*frame + 2*frame)
		if header {
			bound += headerLen
		}
		t.Logf("%s: 1 MiB at %d moved %d bytes in %d requests (bound %d)", what, off, moved, calls, bound)
		if moved > bound {
			t.Errorf("%s: %d bytes moved; at most %d allowed", what, moved, bound)
		}
		if !header && calls != 1 {
			t.Errorf("%s: %d requests; a read of a cached object makes one", what, calls)
		}
	}
	check("first read", objectSize/3+1, true)
	check("second read", objectSize*2/3+3, false)
	check("read at the end", objectSize-mib, false)
}

// messageHeaderLength reads the stored object's header length from its
// first bytes (uncounted: before the reads that are measured).
func messageHeaderLength(t *testing.T, enc *phicrypt.Encryptor, env *s3test.Env) int64 {
	t.Helper()
	out, err := env.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String("big"), Range: aws.String("bytes=0-65535")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	n, err := enc.HeaderLength(b)
	if err != nil {
		t.Fatal(err)
	}
	return int64(n)
}
