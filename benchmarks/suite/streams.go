package suite

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"

	"github.com/phicrypt/phicrypt/phicrypt"
	streamsubtle "github.com/tink-crypto/tink-go/v2/streamingaead/subtle"
)

// source is a reader of n bytes repeating block, so a 64 MiB stream needs
// no 64 MiB buffer and the child's peak RSS is the stream's own. It hands
// out whole blocks through WriteTo.
type source struct {
	block []byte
	n     int64
}

func (s *source) Read(p []byte) (int, error) {
	if s.n <= 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(int64(len(p)), s.n)], s.block)
	s.n -= int64(k)
	return k, nil
}

func (s *source) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for s.n > 0 {
		k, err := w.Write(s.block[:min(int64(len(s.block)), s.n)])
		total += int64(k)
		s.n -= int64(k)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func newSource(env *Env, n int64) *source { return &source{block: env.Plaintext(MiB), n: n} }

// copyBuf is the buffer of io.CopyBuffer where the reader has no WriteTo.
const copyBuf = MiB

// streamCases are phicrypt's streams (1 and N workers), a ranged read, and
// Tink's streaming AEAD at 4 KB and 1 MB segments, all over 64 MiB.
func streamCases(env *Env) []Case {
	return []Case{
		phiStreamEncrypt(env, 1, 0), phiStreamEncrypt(env, ParallelWorkers(), 0),
		phiStreamDecrypt(env, 0), rangeRead(env),
		tinkStreamEncrypt(env, 4096), tinkStreamEncrypt(env, MiB),
		tinkStreamDecrypt(env, 4096), tinkStreamDecrypt(env, MiB),
	}
}

func workersVariant(w int) string { return "w" + itoa(w) }

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + itoa(n%10)
}

func phiStreamEncrypt(env *Env, workers, fl int) Case {
	return Case{
		Name: name(ImplPhicrypt, "stream-encrypt", StreamSize, workersVariant(workers), frameVariant(fl)),
		Impl: ImplPhicrypt, Op: "stream-encrypt", Suite: Suite0478, Size: StreamSize, Workers: workers,
		FrameLength: fl, Streaming: true,
		Bench: func(b *testing.B) {
			enc := encryptor(b, env, phicrypt.Config{Workers: workers, FrameLength: fl})
			ctx := context.Background()
			b.SetBytes(StreamSize)
			b.ReportAllocs()
			for b.Loop() {
				w, err := enc.NewWriter(ctx, io.Discard, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(w, newSource(env, StreamSize)); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		},
	}
}

// tempFile writes a message with write into a file under env.Dir and
// returns it open for reading; it is removed when b ends.
func tempFile(b *testing.B, env *Env, write func(io.Writer) error) *os.File {
	f, err := os.CreateTemp(env.Dir, "stream-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close(); os.Remove(f.Name()) })
	if err := write(f); err != nil {
		b.Fatal(err)
	}
	return f
}

func rewind(b *testing.B, f *os.File) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		b.Fatal(err)
	}
}

func phiStreamDecrypt(env *Env, fl int) Case {
	return Case{
		Name: name(ImplPhicrypt, "stream-decrypt", StreamSize, frameVariant(fl)),
		Impl: ImplPhicrypt, Op: "stream-decrypt", Suite: Suite0478, Size: StreamSize, Workers: 1,
		FrameLength: fl, Streaming: true,
		Bench: func(b *testing.B) {
			enc := encryptor(b, env, phicrypt.Config{FrameLength: fl})
			ctx := context.Background()
			f := tempFile(b, env, func(dst io.Writer) error {
				w, err := enc.NewWriter(ctx, dst, nil)
				if err != nil {
					return err
				}
				if _, err := io.Copy(w, newSource(env, StreamSize)); err != nil {
					return err
				}
				return w.Close()
			})
			buf := make([]byte, copyBuf)
			b.SetBytes(StreamSize)
			b.ReportAllocs()
			for b.Loop() {
				rewind(b, f)
				r, err := enc.NewReader(ctx, f, nil)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.CopyBuffer(io.Discard, r, buf); err != nil || n != StreamSize {
					b.Fatalf("read %d bytes: %v", n, err)
				}
			}
		},
	}
}

// rangeRead opens a ReaderAt over a 64 MiB message in memory and reads
// 1 MiB from its middle: the open (header authentication) is included.
func rangeRead(env *Env) Case {
	return Case{
		Name: name(ImplPhicrypt, "range-read", MiB, "of64MiB"), Impl: ImplPhicrypt, Op: "range-read",
		Suite: Suite0478, Size: MiB,
		Bench: func(b *testing.B) {
			enc := encryptor(b, env, phicrypt.Config{})
			ctx := context.Background()
			var msg bytes.Buffer
			w, err := enc.NewWriter(ctx, &msg, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(w, newSource(env, StreamSize)); err != nil {
				b.Fatal(err)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			src := bytes.NewReader(msg.Bytes())
			buf := make([]byte, MiB)
			b.SetBytes(MiB)
			b.ReportAllocs()
			for b.Loop() {
				r, err := enc.NewReaderAt(ctx, src, src.Size(), nil)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := r.ReadAt(buf, StreamSize/2); err != nil || n != MiB {
					b.Fatalf("read %d bytes: %v", n, err)
				}
			}
		},
	}
}

func tinkStream(b *testing.B, env *Env, segment int) *streamsubtle.AESGCMHKDF {
	s, err := streamsubtle.NewAESGCMHKDF(env.RawKey(), "SHA256", 32, segment, 0)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func segmentVariant(seg int) string {
	if seg == 4096 {
		return "seg4KB"
	}
	return "seg" + SizeName(int64(seg))
}

// tinkStreamEncrypt is Tink's streaming AEAD (AES-256-GCM-HKDF) at the
// given ciphertext segment size.
func tinkStreamEncrypt(env *Env, segment int) Case {
	return Case{
		Name: name(ImplTink, "stream-encrypt", StreamSize, segmentVariant(segment)), Impl: ImplTink, Op: "stream-encrypt",
		Size: StreamSize, Workers: 1, Segment: segment, Streaming: true,
		Bench: func(b *testing.B) {
			s := tinkStream(b, env, segment)
			b.SetBytes(StreamSize)
			b.ReportAllocs()
			for b.Loop() {
				w, err := s.NewEncryptingWriter(io.Discard, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(w, newSource(env, StreamSize)); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		},
	}
}

func tinkStreamDecrypt(env *Env, segment int) Case {
	return Case{
		Name: name(ImplTink, "stream-decrypt", StreamSize, segmentVariant(segment)), Impl: ImplTink, Op: "stream-decrypt",
		Size: StreamSize, Workers: 1, Segment: segment, Streaming: true,
		Bench: func(b *testing.B) {
			s := tinkStream(b, env, segment)
			f := tempFile(b, env, func(dst io.Writer) error {
				w, err := s.NewEncryptingWriter(dst, nil)
				if err != nil {
					return err
				}
				if _, err := io.Copy(w, newSource(env, StreamSize)); err != nil {
					return err
				}
				return w.Close()
			})
			buf := make([]byte, copyBuf)
			b.SetBytes(StreamSize)
			b.ReportAllocs()
			for b.Loop() {
				rewind(b, f)
				r, err := s.NewDecryptingReader(f, nil)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.CopyBuffer(io.Discard, r, buf); err != nil || n != StreamSize {
					b.Fatalf("read %d bytes: %v", n, err)
				}
			}
		},
	}
}
