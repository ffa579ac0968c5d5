package suite

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

// ImplPlainS3 is the table's name for unencrypted S3 requests, the
// counterpart of s3crypt's.
const ImplPlainS3 = "s3-plain"

// The S3 cases' ops. The record schema has none for S3, so these cases
// show in the table only.
const (
	OpS3Put      = "s3-put"
	OpS3Get      = "s3-get"
	OpS3GetRange = "s3-get-range"
)

// s3Object is the object size of the S3 cases, and s3Range the ranged
// read's length (from the object's middle).
const (
	s3Object = 64 * MiB
	s3Range  = MiB
)

// s3Cases are s3crypt's Put and Get of a 64 MiB object and GetRange of
// 1 MiB of it, each beside a plain PutObject or GetObject (with a Range
// header for the range) of the same size on the same endpoint: what a
// service that does not encrypt would send. Only when PHICRYPT_S3_URL is
// set.
func s3Cases(env *Env) []Case {
	if !given(EnvS3) {
		return nil
	}
	var cs []Case
	for _, op := range []string{OpS3Put, OpS3Get, OpS3GetRange} {
		cs = append(cs, s3Case(env, op, true), s3Case(env, op, false))
	}
	return cs
}

// s3Bucket is a fresh bucket on the endpoint, emptied and removed when the
// case's b ends, with an s3crypt client over it for the encrypted cases.
type s3Bucket struct {
	env    *s3test.Env
	client *s3.Client
	crypt  *s3crypt.Client
}

const s3Key = "object"

func newS3Bucket(b *testing.B, env *Env, encrypted bool) *s3Bucket {
	e := s3test.MinIO(b)
	bk := &s3Bucket{env: e, client: e.Client()}
	if encrypted {
		c, err := s3crypt.New(s3crypt.Config{S3: bk.client, Encryptor: encryptor(b, env, phicrypt.Config{})})
		if err != nil {
			b.Fatal(err)
		}
		bk.crypt = c
	}
	return bk
}

// put stores the plaintext of s3Object bytes.
func (bk *s3Bucket) put(ctx context.Context, env *Env) error {
	if bk.crypt != nil {
		_, err := bk.crypt.Put(ctx, bk.env.Bucket, s3Key, newSource(env, s3Object), nil,
			&s3crypt.PutOptions{Size: s3Object, SizeKnown: true})
		return err
	}
	_, err := bk.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bk.env.Bucket), Key: aws.String(s3Key),
		Body: bytes.NewReader(env.Plaintext(s3Object)), ContentLength: aws.Int64(s3Object),
	})
	return err
}

// get reads [off, off+n) of the plaintext into buf (all of it when n is
// s3Object) and returns how many bytes came.
func (bk *s3Bucket) get(ctx context.Context, off, n int64, buf []byte) (int64, error) {
	var body io.ReadCloser
	switch {
	case bk.crypt != nil && n < s3Object:
		p, err := bk.crypt.GetRange(ctx, bk.env.Bucket, s3Key, off, n, nil)
		return int64(len(p)), err
	case bk.crypt != nil:
		r, err := bk.crypt.Get(ctx, bk.env.Bucket, s3Key, nil)
		if err != nil {
			return 0, err
		}
		body = r
	default:
		in := &s3.GetObjectInput{Bucket: aws.String(bk.env.Bucket), Key: aws.String(s3Key)}
		if n < s3Object {
			in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))
		}
		out, err := bk.client.GetObject(ctx, in)
		if err != nil {
			return 0, err
		}
		body = out.Body
	}
	defer body.Close()
	return io.CopyBuffer(io.Discard, body, buf)
}

func s3Case(env *Env, op string, encrypted bool) Case {
	impl, size, variant := ImplPlainS3, int64(s3Object), ""
	if encrypted {
		impl = ImplPhicrypt
	}
	if op == OpS3GetRange {
		size, variant = s3Range, "of"+SizeName(s3Object)
	}
	return Case{
		Name: name(impl, op, size, variant), Impl: impl, Op: op, Size: size, NoJSON: true,
		Bench: func(b *testing.B) {
			bk, ctx := newS3Bucket(b, env, encrypted), context.Background()
			if op != OpS3Put {
				if err := bk.put(ctx, env); err != nil {
					b.Fatal(err)
				}
			}
			off := int64(0)
			if op == OpS3GetRange {
				off = s3Object / 2
			}
			buf := make([]byte, copyBuf)
			measure(b, size, nil, func() error {
				if op == OpS3Put {
					return bk.put(ctx, env)
				}
				if n, err := bk.get(ctx, off, size, buf); err != nil || n != size {
					return fmt.Errorf("read %d bytes: %v", n, err)
				}
				return nil
			})
		},
	}
}
