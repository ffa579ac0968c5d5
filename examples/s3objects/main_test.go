package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/phicrypt/phicrypt/internal/s3test"
)

// TestS3Objects runs the example against the full suite's MinIO, in the
// test's own bucket, with a generated 6 MiB file (two parts).
func TestS3Objects(t *testing.T) {
	env := s3test.MinIO(t)
	o := options{endpoint: env.URL, accessKey: os.Getenv("PHICRYPT_S3_ACCESS_KEY"), secretKey: os.Getenv("PHICRYPT_S3_SECRET_KEY"),
		region: "us-east-1", bucket: env.Bucket, key: "example/scan.bin", generate: 6 << 20}
	var out bytes.Buffer
	if err := run(context.Background(), &out, o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{"started kmsmock", "using bucket " + env.Bucket, "generated a 6 MiB file",
		"6291456 bytes of plaintext", "uploaded in 2 part(s) of up to 5 MiB", "with 2 GET request(s)", "they match the file",
		"SHA-256 matches the file's", "rewrapped the object's data key", "only the header changed (the last 65536 bytes", "a client with only the second key reads it",
		"a client with only the first key can no longer read it", "deleted the object"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	// Context values may be PHI: the example never prints them.
	for _, v := range []string{"general-hospital", "imaging"} {
		if strings.Contains(got, v) {
			t.Errorf("output contains the context value %q", v)
		}
	}
}

// TestS3ObjectsNeedsEndpoint: without an endpoint or credentials the
// example says what to set.
func TestS3ObjectsNeedsEndpoint(t *testing.T) {
	err := run(context.Background(), new(bytes.Buffer), options{})
	if err == nil || !strings.Contains(err.Error(), "PHICRYPT_S3_URL") {
		t.Fatalf("want an error naming PHICRYPT_S3_URL, got %v", err)
	}
	err = run(context.Background(), new(bytes.Buffer), options{endpoint: "http://127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "PHICRYPT_S3_ACCESS_KEY") {
		t.Fatalf("want an error naming PHICRYPT_S3_ACCESS_KEY, got %v", err)
	}
}
