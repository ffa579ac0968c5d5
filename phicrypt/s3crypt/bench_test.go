package s3crypt_test

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

// Benchmarks against MinIO (PHICRYPT_S3_URL; they skip without it):
// encrypted uploads and downloads beside plain ones through the transfer
// manager with the same settings, in the same run. The object is
// PHICRYPT_S3_BENCH_MIB MiB (default 1024).
//
//	PHICRYPT_S3_URL=... go test -run '^$' -bench 'S3' -benchtime 3x ./phicrypt/s3crypt/

const (
	benchPart = 8 << 20
	benchConc = 3
)

func benchSize() int64 {
	if n, err := strconv.Atoi(os.Getenv("PHICRYPT_S3_BENCH_MIB")); err == nil && n > 0 {
		return int64(n) << 20
	}
	return 1 << 30
}

// block is random bytes that zeros repeats: a plaintext that costs
// almost nothing to make and that a server cannot compress or skip.
var block = func() []byte {
	b := make([]byte, 1<<20)
	_, _ = rand.Read(b)
	return b
}()

// zeros is a plaintext of n bytes: block, repeated.
type zeros struct{ n, off int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.off >= z.n {
		return 0, io.EOF
	}
	k := 0
	for k < len(p) && z.off < z.n {
		m := copy(p[k:min(len(p), k+int(z.n-z.off))], block[z.off%int64(len(block)):])
		k += m
		z.off += int64(m)
	}
	return k, nil
}

func benchClients(b *testing.B) (*s3test.Env, *transfermanager.Client, *s3crypt.Client) {
	env := s3test.MinIO(b)
	raw := env.Client()
	tm := transfermanager.New(raw, func(o *transfermanager.Options) {
		o.PartSizeBytes = benchPart
		o.MultipartUploadThreshold = benchPart
		o.Concurrency = benchConc
		o.GetObjectBufferSize = benchPart * benchConc
		o.GetObjectType = tmtypes.GetObjectRanges
	})
	kr, err := keyring.NewRawAES("bench", "key", make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr})
	if err != nil {
		b.Fatal(err)
	}
	c, err := s3crypt.New(s3crypt.Config{S3: raw, Encryptor: enc, PartSize: benchPart, Concurrency: benchConc})
	if err != nil {
		b.Fatal(err)
	}
	return env, tm, c
}

func BenchmarkS3Upload(b *testing.B) {
	env, tm, c := benchClients(b)
	size := benchSize()
	ctx := context.Background()
	b.Run("plain", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String("plain"), Body: &zeros{n: size}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encrypted", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Put(ctx, env.Bucket, "encrypted", &zeros{n: size}, nil, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkS3Download(b *testing.B) {
	env, tm, c := benchClients(b)
	size := benchSize()
	ctx := context.Background()
	if _, err := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String("plain"), Body: &zeros{n: size}}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Put(ctx, env.Bucket, "encrypted", &zeros{n: size}, nil, nil); err != nil {
		b.Fatal(err)
	}
	b.Run("plain", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			out, err := tm.GetObject(ctx, &transfermanager.GetObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String("plain")})
			if err != nil {
				b.Fatal(err)
			}
			if n, err := drain(out.Body); err != nil || n != size {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("encrypted", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			r, err := c.Get(ctx, env.Bucket, "encrypted", nil)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := drain(r); err != nil || n != size {
				b.Fatal(n, err)
			}
			r.Close()
		}
	})
}

// drain reads r to its end in 1 MiB reads, the same for plain and
// encrypted downloads (io.Discard's ReadFrom would read in 8 KiB pieces,
// which the transfer manager's reader serves slowly).
func drain(r io.Reader) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{r}, make([]byte, 1<<20))
}
