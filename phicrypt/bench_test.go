package phicrypt_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"io"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/phicrypt/phicrypt/phicrypt"
)

// Figures are quoted as ratios against raw AES-256-GCM measured in the same
// run (BenchmarkRawGCM*), since the machine is shared and noisy:
//
//	go test ./phicrypt/ -run '^$' -bench . -benchmem

const (
	streamSize = 64 << 20
	// writeChunk is the size of each Write, as an S3 multipart part (5 MiB)
	// or a file reader would hand over.
	writeChunk = 4 << 20
)

func rawGCM(b *testing.B) cipher.AEAD {
	block, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	return aead
}

// BenchmarkRawGCMSeal64MiB seals 64 MiB in 64 KiB pieces with one AES-GCM
// instance: the ceiling a streaming encryptor is measured against.
func BenchmarkRawGCMSeal64MiB(b *testing.B) {
	aead := rawGCM(b)
	pt := make([]byte, streamSize)
	out := make([]byte, 0, phicrypt.DefaultFrameLength+16)
	nonce := make([]byte, 12)
	b.SetBytes(streamSize)
	b.ReportAllocs()
	for b.Loop() {
		for off := 0; off < len(pt); off += phicrypt.DefaultFrameLength {
			out = aead.Seal(out[:0], nonce, pt[off:off+phicrypt.DefaultFrameLength], nil)
		}
	}
}

// BenchmarkRawGCMSeal64MiBTwoGoroutines is the same work split over two
// goroutines: how far this machine's cores scale AES-GCM at all, the
// ceiling for Workers: 2.
func BenchmarkRawGCMSeal64MiBTwoGoroutines(b *testing.B) {
	aead := rawGCM(b)
	pt := make([]byte, streamSize)
	nonce := make([]byte, 12)
	b.SetBytes(streamSize)
	b.ReportAllocs()
	for b.Loop() {
		var wg sync.WaitGroup
		for half := range 2 {
			wg.Go(func() {
				out := make([]byte, 0, phicrypt.DefaultFrameLength+16)
				for off := half * streamSize / 2; off < (half+1)*streamSize/2; off += phicrypt.DefaultFrameLength {
					out = aead.Seal(out[:0], nonce, pt[off:off+phicrypt.DefaultFrameLength], nil)
				}
			})
		}
		wg.Wait()
	}
}

// BenchmarkRawGCMSeal64MiBTwoGoroutinesBatched seals batches of 32 frames
// over two goroutines into one output buffer per frame, as an ordered
// parallel writer must (the output leaves in order after the batch): the
// ceiling for Workers: 2 on machines where memory traffic, not AES, limits.
func BenchmarkRawGCMSeal64MiBTwoGoroutinesBatched(b *testing.B) {
	aead := rawGCM(b)
	pt := make([]byte, streamSize)
	nonce := make([]byte, 12)
	const frame, batch = phicrypt.DefaultFrameLength, 32
	outs := make([][]byte, batch)
	for i := range outs {
		outs[i] = make([]byte, 0, frame+16)
	}
	b.SetBytes(streamSize)
	b.ReportAllocs()
	for b.Loop() {
		for base := 0; base < len(pt); base += batch * frame {
			work := func(w int) {
				for j := w; j < batch; j += 2 {
					outs[j] = aead.Seal(outs[j][:0], nonce, pt[base+j*frame:base+(j+1)*frame], nil)
				}
			}
			var wg sync.WaitGroup
			wg.Go(func() { work(1) })
			work(0)
			wg.Wait()
		}
	}
}

func BenchmarkStreamEncrypt64MiB(b *testing.B) {
	pt := make([]byte, streamSize)
	for _, workers := range []int{1, 2} {
		b.Run("workers="+strconv.Itoa(workers), func(b *testing.B) {
			enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(b), Workers: workers})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(streamSize)
			b.ReportAllocs()
			for b.Loop() {
				w, err := enc.NewWriter(context.Background(), io.Discard, nil)
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
		})
	}
}

func BenchmarkStreamDecrypt64MiB(b *testing.B) {
	enc, msg := streamMessage(b)
	buf := make([]byte, 1<<20)
	b.SetBytes(streamSize)
	b.ReportAllocs()
	for b.Loop() {
		r, err := enc.NewReader(context.Background(), bytes.NewReader(msg), nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, r, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawGCMSeal1KiB: one raw AES-GCM seal of 1 KiB with a fresh cipher
// instance, as a message needs (its key is derived per message).
func BenchmarkRawGCMSeal1KiB(b *testing.B) {
	pt := make([]byte, 1024)
	key := make([]byte, 32)
	nonce := make([]byte, 12)
	out := make([]byte, 0, 2048)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		block, _ := aes.NewCipher(key)
		aead, _ := cipher.NewGCM(block)
		out = aead.Seal(out[:0], nonce, pt, nil)
	}
}

func BenchmarkEncrypt1KiB(b *testing.B) {
	enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(b)})
	if err != nil {
		b.Fatal(err)
	}
	pt := make([]byte, 1024)
	ec := map[string]string{"tenant": "general-hospital"}
	dst := make([]byte, 0, 4096)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.EncryptAppend(context.Background(), dst[:0], pt, ec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt1KiB(b *testing.B) {
	enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(b)})
	if err != nil {
		b.Fatal(err)
	}
	ec := map[string]string{"tenant": "general-hospital"}
	msg, err := enc.Encrypt(context.Background(), make([]byte, 1024), ec)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, 4096)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := enc.DecryptAppend(context.Background(), dst[:0], msg, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncrypt64MiB encrypts a 64 MiB message in memory (compare
// BenchmarkRawGCMSeal64MiB).
func BenchmarkEncrypt64MiB(b *testing.B) {
	enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(b)})
	if err != nil {
		b.Fatal(err)
	}
	pt := make([]byte, 64<<20)
	ec := map[string]string{"tenant": "general-hospital"}
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Encrypt(context.Background(), pt, ec); err != nil {
			b.Fatal(err)
		}
	}
}

// Encrypt sizes a large message's output once: what it allocates stays
// close to the message itself (appending frame by frame copied the whole
// output again for every frame, about ten times the message at 64 MiB).
func TestEncryptLargeMessageAllocatesItsOutputOnce(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates; scripts/test.sh runs this without -race")
	}
	for _, signed := range []bool{false, true} {
		cfg := phicrypt.Config{Keyring: rawKeyring(t)}
		if signed {
			cfg.Suite = phicrypt.SuiteCommittedSigned
		}
		enc, err := phicrypt.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		pt := make([]byte, 16<<20+12345)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		msg, err := enc.Encrypt(context.Background(), pt, map[string]string{"tenant": "a"})
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > uint64(len(msg))*3/2 {
			t.Errorf("signed %t: Encrypt of %d bytes allocated %d bytes", signed, len(pt), got)
		}
		if cap(msg)-len(msg) > 4096 {
			t.Errorf("signed %t: the output's capacity %d overshoots its length %d", signed, cap(msg), len(msg))
		}
	}
}

// Encrypt into no buffer allocates the message once more than
// EncryptAppend into a buffer with room: the output, sized once with its
// header (which used to regrow field by field).
func TestEncryptAllocatesItsOutputOnceMore(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates; scripts/test.sh runs this without -race")
	}
	enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(t)})
	if err != nil {
		t.Fatal(err)
	}
	pt := make([]byte, 1024)
	ec := map[string]string{"tenant": "general-hospital"}
	dst := make([]byte, 0, 4096)
	ctx := context.Background()
	into := testing.AllocsPerRun(200, func() {
		if _, err := enc.EncryptAppend(ctx, dst[:0], pt, ec); err != nil {
			t.Fatal(err)
		}
	})
	fresh := testing.AllocsPerRun(200, func() {
		if _, err := enc.Encrypt(ctx, pt, ec); err != nil {
			t.Fatal(err)
		}
	})
	// One more: the output; growing the header field by field made it six
	// more.
	if fresh > into+1 {
		t.Errorf("Encrypt allocates %v times, EncryptAppend into room %v: the output is grown more than once", fresh, into)
	}
}
