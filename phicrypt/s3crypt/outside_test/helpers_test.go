// Package outside_test reviews phicrypt/s3crypt through its public API
// only, as a platform team would use it, against MinIO (PHICRYPT_S3_URL)
// or the in-process S3 of internal/s3test.
package outside_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

type rig struct {
	env    *s3test.Env
	raw    *s3.Client
	kms    *kms.Client
	keyARN string
	kr     keyring.Keyring
	enc    *phicrypt.Encryptor
	c      *s3crypt.Client
	bucket string
}

func newRig(t testing.TB, env *s3test.Env, frameLength int, mod ...func(*s3crypt.Config)) *rig {
	t.Helper()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	kc := l.Client("svc")
	key, err := kc.CreateKey(context.Background(), &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(key.KeyMetadata.Arn)
	kr, err := keyring.NewKMS(keyring.KMSConfig{Client: kc, Generator: arn})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, FrameLength: frameLength})
	if err != nil {
		t.Fatal(err)
	}
	raw := env.Client()
	cfg := s3crypt.Config{S3: raw, Encryptor: enc}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := s3crypt.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{env: env, raw: raw, kms: kc, keyARN: arn, kr: kr, enc: enc, c: c, bucket: env.Bucket}
}

// another returns a second Client over the same bucket and keyring, with
// its own header cache.
func (r *rig) another(t testing.TB, mod ...func(*s3crypt.Config)) *s3crypt.Client {
	t.Helper()
	cfg := s3crypt.Config{S3: r.raw, Encryptor: r.enc}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := s3crypt.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func rnd(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func (r *rig) put(t testing.TB, key string, pt []byte, ec map[string]string) *s3crypt.PutResult {
	t.Helper()
	res, err := r.c.Put(context.Background(), r.bucket, key, bytes.NewReader(pt), ec, &s3crypt.PutOptions{Size: int64(len(pt)), SizeKnown: true})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	return res
}

func (r *rig) rawGet(t testing.TB, key string) ([]byte, map[string]string, string) {
	t.Helper()
	out, err := r.raw.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b, out.Metadata, aws.ToString(out.ETag)
}

func (r *rig) rawPut(t testing.TB, key string, body []byte, meta map[string]string) {
	t.Helper()
	_, err := r.raw.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(key), Body: bytes.NewReader(body), Metadata: meta})
	if err != nil {
		t.Fatal(err)
	}
}

// exists reports whether the key holds an object.
func (r *rig) exists(t testing.TB, key string) bool {
	t.Helper()
	_, err := r.raw.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(key)})
	return err == nil
}

// uploads lists pending multipart uploads of the bucket.
func (r *rig) uploads(t testing.TB) int {
	t.Helper()
	out, err := r.raw.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(r.bucket)})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	return len(out.Uploads)
}

func (r *rig) getAll(ctx context.Context, c *s3crypt.Client, key string, expect map[string]string) ([]byte, error) {
	rd, err := c.Get(ctx, r.bucket, key, expect)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}

func copyMeta(m map[string]string) map[string]string {
	o := map[string]string{}
	for k, v := range m {
		o[k] = v
	}
	return o
}

// isOneOf reports whether err wraps one of targets.
func isOneOf(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// messageErrs are the documented sentinels for a bad message.
var messageErrs = []error{phicrypt.ErrMalformed, phicrypt.ErrAuthentication, s3crypt.ErrTruncated, phicrypt.ErrNoKey, phicrypt.ErrContext}

// noPanic runs f and fails the test if it panics.
func noPanic(t *testing.T, name string, f func()) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("%s panicked: %v", name, p)
		}
	}()
	f()
}

func deleteInput(bucket, key string) *s3.DeleteObjectInput {
	return &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("not a number: %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}
