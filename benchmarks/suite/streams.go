package suite

import (
	"bytes"
	"context"
	"fmt"
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

// streamCodec makes an implementation's encrypting writer and decrypting
// reader of a stream.
type streamCodec struct {
	writer func(dst io.Writer) (io.WriteCloser, error)
	reader func(src io.Reader) (io.Reader, error)
}

func phiStreams(enc *phicrypt.Encryptor) streamCodec {
	ctx := context.Background()
	return streamCodec{
		writer: func(dst io.Writer) (io.WriteCloser, error) { return enc.NewWriter(ctx, dst, nil) },
		reader: func(src io.Reader) (io.Reader, error) { return enc.NewReader(ctx, src, nil) },
	}
}

func tinkStreams(s *streamsubtle.AESGCMHKDF) streamCodec {
	return streamCodec{
		writer: func(dst io.Writer) (io.WriteCloser, error) { return s.NewEncryptingWriter(dst, nil) },
		reader: func(src io.Reader) (io.Reader, error) { return s.NewDecryptingReader(src, nil) },
	}
}

// encrypt writes the StreamSize plaintext as one stream to dst.
func (sc streamCodec) encrypt(env *Env, dst io.Writer) error {
	w, err := sc.writer(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, newSource(env, StreamSize)); err != nil {
		return err
	}
	return w.Close()
}

// encryptBench encrypts the stream into io.Discard.
func encryptBench(env *Env, sc streamCodec, b *testing.B) {
	measure(b, StreamSize, nil, func() error { return sc.encrypt(env, io.Discard) })
}

// decryptBench decrypts a stream from a file written once, as a service
// reads one from disk or the network.
func decryptBench(env *Env, sc streamCodec, b *testing.B) {
	f := tempFile(b, env, func(dst io.Writer) error { return sc.encrypt(env, dst) })
	buf := make([]byte, copyBuf)
	measure(b, StreamSize, nil, func() error {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		r, err := sc.reader(f)
		if err != nil {
			return err
		}
		if n, err := io.CopyBuffer(io.Discard, r, buf); err != nil || n != StreamSize {
			return fmt.Errorf("read %d bytes: %v", n, err)
		}
		return nil
	})
}

func phiStreamEncrypt(env *Env, workers, fl int) Case {
	return Case{
		Name: name(ImplPhicrypt, "stream-encrypt", StreamSize, workersVariant(workers), frameVariant(fl)),
		Impl: ImplPhicrypt, Op: "stream-encrypt", Suite: Suite0478, Size: StreamSize, Workers: workers,
		FrameLength: fl, Streaming: true,
		Bench: func(b *testing.B) {
			encryptBench(env, phiStreams(encryptor(b, env, phicrypt.Config{Workers: workers, FrameLength: fl})), b)
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

func phiStreamDecrypt(env *Env, fl int) Case {
	return Case{
		Name: name(ImplPhicrypt, "stream-decrypt", StreamSize, frameVariant(fl)),
		Impl: ImplPhicrypt, Op: "stream-decrypt", Suite: Suite0478, Size: StreamSize, Workers: 1,
		FrameLength: fl, Streaming: true,
		Bench: func(b *testing.B) {
			decryptBench(env, phiStreams(encryptor(b, env, phicrypt.Config{FrameLength: fl})), b)
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
			if err := phiStreams(enc).encrypt(env, &msg); err != nil {
				b.Fatal(err)
			}
			src := bytes.NewReader(msg.Bytes())
			buf := make([]byte, MiB)
			measure(b, MiB, nil, func() error {
				r, err := enc.NewReaderAt(ctx, src, src.Size(), nil)
				if err != nil {
					return err
				}
				if n, err := r.ReadAt(buf, StreamSize/2); err != nil || n != MiB {
					return fmt.Errorf("read %d bytes: %v", n, err)
				}
				return nil
			})
		},
	}
}

func tinkStream(b *testing.B, env *Env, segment int) streamCodec {
	s, err := streamsubtle.NewAESGCMHKDF(env.RawKey(), "SHA256", 32, segment, 0)
	if err != nil {
		b.Fatal(err)
	}
	return tinkStreams(s)
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
		Bench: func(b *testing.B) { encryptBench(env, tinkStream(b, env, segment), b) },
	}
}

func tinkStreamDecrypt(env *Env, segment int) Case {
	return Case{
		Name: name(ImplTink, "stream-decrypt", StreamSize, segmentVariant(segment)), Impl: ImplTink, Op: "stream-decrypt",
		Size: StreamSize, Workers: 1, Segment: segment, Streaming: true,
		Bench: func(b *testing.B) { decryptBench(env, tinkStream(b, env, segment), b) },
	}
}
