package s3crypt_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

// A second ranged read of an object makes one request (no header fetch,
// no keyring call); the first makes two.
func TestRangedReadsReuseTheHeader(t *testing.T) {
	s := newSetup(t, s3test.New(t), 4096)
	ctx := context.Background()
	pt := randomBytes(t, 1<<20)
	s.put(t, "o", pt, map[string]string{"purpose": "test"})
	reqs := s.s3.Requests.Load()
	if _, err := s.c.GetRange(ctx, s.s3.Bucket, "o", 10, 10, nil); err != nil {
		t.Fatal(err)
	}
	if n := s.s3.Requests.Load() - reqs; n != 2 {
		t.Fatalf("first ranged read: %d requests, want 2 (header, frames)", n)
	}
	for i := range 3 {
		reqs = s.s3.Requests.Load()
		got, err := s.c.GetRange(ctx, s.s3.Bucket, "o", int64(i)*100_000, 5000, map[string]string{"purpose": "test"})
		if err != nil || !bytes.Equal(got, pt[i*100_000:i*100_000+5000]) {
			t.Fatalf("read %d: %v", i, err)
		}
		if n := s.s3.Requests.Load() - reqs; n != 1 {
			t.Fatalf("read %d of a cached object: %d requests, want 1", i, n)
		}
	}
	// A cached header still checks the expected context.
	if _, err := s.c.GetRange(ctx, s.s3.Bucket, "o", 0, 1, map[string]string{"purpose": "other"}); !errors.Is(err, phicrypt.ErrContext) &&
		!errors.Is(err, phicrypt.ErrAuthentication) {
		t.Fatalf("a wrong expected pair: %v", err)
	}
}

// An object overwritten after its header was cached is read as the new
// object: the ranged GET's If-Match fails and the header is opened again.
func TestOverwrittenObjectIsReopened(t *testing.T) {
	s := newSetup(t, s3test.New(t), 4096)
	ctx := context.Background()
	first, second := randomBytes(t, 50_000), randomBytes(t, 60_000)
	s.put(t, "o", first, nil)
	if got, err := s.c.GetRange(ctx, s.s3.Bucket, "o", 0, 100, nil); err != nil || !bytes.Equal(got, first[:100]) {
		t.Fatal(err)
	}
	// Another writer (another Client) replaces the object.
	other, err := s3crypt.New(s3crypt.Config{S3: s.raw, Encryptor: s.enc})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Put(ctx, s.s3.Bucket, "o", bytes.NewReader(second), nil, &s3crypt.PutOptions{Size: int64(len(second)), SizeKnown: true}); err != nil {
		t.Fatal(err)
	}
	// Within the old object's length (the cached header's If-Match fails)
	// and past it (the cached length is not trusted for the end).
	for _, off := range []int{1000, 55_000} {
		got, err := s.c.GetRange(ctx, s.s3.Bucket, "o", int64(off), 100, nil)
		if err != nil || !bytes.Equal(got, second[off:off+100]) {
			t.Fatalf("after the overwrite, at %d: %v", off, err)
		}
		if _, err := other.Put(ctx, s.s3.Bucket, "o", bytes.NewReader(second), nil, &s3crypt.PutOptions{Size: int64(len(second)), SizeKnown: true}); err != nil {
			t.Fatal(err)
		}
	}
}

// A KMS key disabled stops ranged reads of objects under it at once after
// Forget, and within HeaderCacheTTL without it.
func TestDisabledKeyStopsRangedReads(t *testing.T) {
	const ttl = 300 * time.Millisecond
	s := newSetup(t, s3test.New(t), 4096, func(c *s3crypt.Config) { c.HeaderCacheTTL = ttl })
	ctx := context.Background()
	pt := randomBytes(t, 20_000)
	s.put(t, "a", pt, nil)
	s.put(t, "b", pt, nil)
	for _, k := range []string{"a", "b"} {
		if _, err := s.c.GetRange(ctx, s.s3.Bucket, k, 0, 10, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(s.keyARN)}); err != nil {
		t.Fatal(err)
	}
	s.c.Forget(s.s3.Bucket, "a")
	if _, err := s.c.GetRange(ctx, s.s3.Bucket, "a", 0, 10, nil); !errors.Is(err, phicrypt.ErrNoKey) {
		t.Fatalf("after Forget: %v", err)
	}
	start := time.Now()
	for {
		_, err := s.c.GetRange(ctx, s.s3.Bucket, "b", 0, 10, nil)
		if errors.Is(err, phicrypt.ErrNoKey) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > ttl+2*time.Second {
			t.Fatalf("ranged reads still succeed %v after the key was disabled (TTL %v)", time.Since(start), ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if el := time.Since(start); el > ttl+time.Second {
		t.Fatalf("reads stopped only after %v", el)
	}
}

// A signed message is read whole by Get and refused by ranged reads.
func TestSignedObjectsAreReadWholeOnly(t *testing.T) {
	s := newSetup(t, s3test.New(t), 4096)
	ctx := context.Background()
	signed, err := phicrypt.New(phicrypt.Config{Keyring: s.kr, Suite: phicrypt.SuiteCommittedSigned, FrameLength: 4096})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s3crypt.New(s3crypt.Config{S3: s.raw, Encryptor: signed})
	if err != nil {
		t.Fatal(err)
	}
	pt := randomBytes(t, 30_000)
	if _, err := c.Put(ctx, s.s3.Bucket, "signed", bytes.NewReader(pt), nil, nil); err != nil {
		t.Fatal(err)
	}
	r, err := c.Get(ctx, s.s3.Bucket, "signed", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := new(bytes.Buffer)
	if _, err := got.ReadFrom(r); err != nil || !bytes.Equal(got.Bytes(), pt) {
		t.Fatalf("Get of a signed object: %v", err)
	}
	if _, err := c.GetRange(ctx, s.s3.Bucket, "signed", 0, 10, nil); !errors.Is(err, s3crypt.ErrSignedRange) {
		t.Fatalf("GetRange of a signed object: %v", err)
	}
}

// Put with a known size that the body does not have stores nothing.
func TestPutSizeMismatchStoresNothing(t *testing.T) {
	s := newSetup(t, s3test.New(t), 4096)
	ctx := context.Background()
	_, err := s.c.Put(ctx, s.s3.Bucket, "short", bytes.NewReader(make([]byte, 100)), nil, &s3crypt.PutOptions{Size: 101, SizeKnown: true})
	if !errors.Is(err, s3crypt.ErrSizeMismatch) {
		t.Fatalf("Put: %v", err)
	}
	if _, err := s.c.Get(ctx, s.s3.Bucket, "short", nil); err == nil {
		t.Fatal("an object was stored")
	}
}
