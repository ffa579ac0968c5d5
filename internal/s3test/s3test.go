// Package s3test gives tests an S3 endpoint and a fresh bucket: MinIO at
// PHICRYPT_S3_URL when the full suite started one (scripts/test.sh), and an
// in-process S3 (gofakes3, over real HTTP on 127.0.0.1) otherwise, so
// `go test ./...` stays hermetic. Tests that need what only a real server
// does (UploadPartCopy, conditional multipart completion) call MinIO, which
// fails in the full suite when no server was started and skips otherwise.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Env is an S3 endpoint with one bucket made for the test.
type Env struct {
	URL    string
	Bucket string
	// Real reports whether the endpoint is MinIO rather than the
	// in-process server.
	Real bool
	// Bytes counts response body bytes the server sent through clients
	// made by Client (GET bodies), for tests that bound transfers.
	Bytes *atomic.Int64
	// Requests counts requests sent through clients made by Client.
	Requests *atomic.Int64
	access   string
	secret   string
}

// New returns MinIO when PHICRYPT_S3_URL is set and the in-process server
// otherwise, with a fresh bucket either way.
func New(t testing.TB) *Env {
	t.Helper()
	if os.Getenv("PHICRYPT_S3_URL") != "" {
		return MinIO(t)
	}
	fake := gofakes3.New(replacing{Backend: s3mem.New(), mu: new(sync.RWMutex)})
	srv := httptest.NewServer(fake.Server())
	t.Cleanup(srv.Close)
	e := &Env{URL: srv.URL, access: "s3test", secret: "s3test-secret", Bytes: new(atomic.Int64), Requests: new(atomic.Int64)}
	e.makeBucket(t)
	return e
}

// MinIO returns the full suite's MinIO with a fresh bucket. Outside the
// full suite, without PHICRYPT_S3_URL, it skips the test.
func MinIO(t testing.TB) *Env {
	t.Helper()
	url := os.Getenv("PHICRYPT_S3_URL")
	if url == "" {
		if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
			t.Fatal("the full suite must set PHICRYPT_S3_URL (scripts/test.sh starts MinIO)")
		}
		t.Skip("PHICRYPT_S3_URL is not set: this test needs MinIO (scripts/test.sh starts it)")
	}
	e := &Env{URL: url, Real: true, access: os.Getenv("PHICRYPT_S3_ACCESS_KEY"), secret: os.Getenv("PHICRYPT_S3_SECRET_KEY"),
		Bytes: new(atomic.Int64), Requests: new(atomic.Int64)}
	e.makeBucket(t)
	return e
}

func (e *Env) makeBucket(t testing.TB) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	e.Bucket = "phicrypt-test-" + hex.EncodeToString(b[:])
	c := e.Client()
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(e.Bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	t.Cleanup(func() { e.empty(c) })
}

// empty deletes the bucket's objects, pending uploads and the bucket, so a
// long-lived MinIO does not fill up.
func (e *Env) empty(c *s3.Client) {
	ctx := context.Background()
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(e.Bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			break
		}
		for _, o := range page.Contents {
			_, _ = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.Bucket), Key: o.Key})
		}
	}
	if ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(e.Bucket)}); err == nil {
		for _, u := range ups.Uploads {
			_, _ = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(e.Bucket), Key: u.Key, UploadId: u.UploadId})
		}
	}
	_, _ = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(e.Bucket)})
}

// Client returns a real aws-sdk-go-v2 S3 client for the endpoint (path
// style, static credentials) whose traffic is counted in Bytes and
// Requests.
func (e *Env) Client(opts ...func(*s3.Options)) *s3.Client {
	hc := &http.Client{Transport: &counting{next: http.DefaultTransport, bytes: e.Bytes, reqs: e.Requests}}
	o := []func(*s3.Options){func(o *s3.Options) {
		o.Region = "us-east-1"
		o.BaseEndpoint = aws.String(e.URL)
		o.UsePathStyle = true
		o.Credentials = credentials.NewStaticCredentialsProvider(e.access, e.secret, "")
		o.HTTPClient = hc
	}}
	return s3.New(s3.Options{}, append(o, opts...)...)
}

// counting counts requests and response body bytes.
type counting struct {
	next  http.RoundTripper
	bytes *atomic.Int64
	reqs  *atomic.Int64
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.reqs.Add(1)
	resp, err := c.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, n: c.bytes}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	k, err := b.ReadCloser.Read(p)
	b.n.Add(int64(k))
	return k, err
}

// replacing is the in-memory backend with S3's overwrite semantics: an
// object put over another replaces it whole (gofakes3 carries the old
// object's metadata over, its checksums included), atomically for readers
// (the old object is deleted and the new one put under a lock that reads
// share).
type replacing struct {
	gofakes3.Backend
	mu *sync.RWMutex
}

func (r replacing) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, cond *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cond != nil {
		info := gofakes3.ConditionalObjectInfo{}
		if obj, err := r.Backend.HeadObject(bucket, key); err == nil {
			info.Exists, info.Hash = true, obj.Hash
		}
		if err := gofakes3.CheckPutConditions(cond, &info); err != nil {
			return gofakes3.PutObjectResult{}, err
		}
	}
	_, _ = r.Backend.DeleteObject(bucket, key)
	return r.Backend.PutObject(bucket, key, meta, input, size, nil)
}

func (r replacing) GetObject(bucket, key string, rng *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.Backend.GetObject(bucket, key, rng)
}

func (r replacing) HeadObject(bucket, key string) (*gofakes3.Object, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.Backend.HeadObject(bucket, key)
}
