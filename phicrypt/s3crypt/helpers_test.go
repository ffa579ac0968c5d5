package s3crypt_test

import (
	"bytes"
	"context"
	"crypto/rand"
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

// setup is an S3 endpoint with a bucket, a KMS keyring on kmsmock, and a
// Client over both.
type setup struct {
	s3     *s3test.Env
	raw    *s3.Client // the same endpoint, for raw reads and writes
	kms    *kms.Client
	keyARN string
	kr     keyring.Keyring
	enc    *phicrypt.Encryptor
	c      *s3crypt.Client
}

func newSetup(t testing.TB, env *s3test.Env, frameLength int, mod ...func(*s3crypt.Config)) *setup {
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
	return &setup{s3: env, raw: raw, kms: kc, keyARN: arn, kr: kr, enc: enc, c: c}
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func (s *setup) put(t testing.TB, key string, pt []byte, ec map[string]string) *s3crypt.PutResult {
	t.Helper()
	res, err := s.c.Put(context.Background(), s.s3.Bucket, key, bytes.NewReader(pt), ec, &s3crypt.PutOptions{Size: int64(len(pt)), SizeKnown: true})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	return res
}

func (s *setup) rawGet(t testing.TB, key string) ([]byte, map[string]string) {
	t.Helper()
	out, err := s.raw.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(s.s3.Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b, out.Metadata
}

func (s *setup) rawPut(t testing.TB, key string, body []byte, meta map[string]string) {
	t.Helper()
	_, err := s.raw.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(s.s3.Bucket), Key: aws.String(key), Body: bytes.NewReader(body), Metadata: meta})
	if err != nil {
		t.Fatal(err)
	}
}
