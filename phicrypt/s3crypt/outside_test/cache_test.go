package outside_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

// TestCacheOverwriteBetweenReads: another writer overwrites the object
// (shorter, longer, other context) between two GetRange calls of a Client
// that cached its header; the second read returns the new bytes only.
func TestCacheOverwriteBetweenReads(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env, 4096)
	ctx := context.Background()
	writer := r.another(t)
	first := rnd(50_000)
	r.put(t, "ow", first, map[string]string{"tenant": "a"})
	if b, err := r.c.GetRange(ctx, r.bucket, "ow", 0, 100, nil); err != nil || !bytes.Equal(b, first[:100]) {
		t.Fatalf("first read: %v", err)
	}
	for i, size := range []int{20_000, 90_000, 50_000} {
		next := rnd(size)
		if _, err := writer.Put(ctx, r.bucket, "ow", bytes.NewReader(next), map[string]string{"tenant": "a"}, nil); err != nil {
			t.Fatal(err)
		}
		for _, rg := range [][2]int64{{0, 100}, {19_990, 20}, {49_990, 100}, {89_000, 5000}} {
			b, err := r.c.GetRange(ctx, r.bucket, "ow", rg[0], rg[1], nil)
			if err != nil {
				t.Errorf("overwrite %d: GetRange%v: %v", i, rg, err)
				continue
			}
			lo, hi := min(rg[0], int64(size)), min(rg[0]+rg[1], int64(size))
			if !bytes.Equal(b, next[lo:hi]) {
				t.Errorf("overwrite %d: GetRange%v: %d bytes, not the new object's [%d,%d)", i, rg, len(b), lo, hi)
			}
		}
	}
	// Overwritten with another context: a reader expecting the old one is
	// refused.
	if _, err := writer.Put(ctx, r.bucket, "ow", bytes.NewReader(first), map[string]string{"tenant": "b"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.GetRange(ctx, r.bucket, "ow", 0, 10, map[string]string{"tenant": "a"}); !errors.Is(err, phicrypt.ErrContext) {
		t.Errorf("GetRange after an overwrite under another context: %v, want ErrContext", err)
	}
}

// TestObjectAfterOverwrite: an Object opened before an overwrite never
// returns bytes of the new version (nor mixes versions); its ReadAt fails.
func TestObjectAfterOverwrite(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env, 4096)
	ctx := context.Background()
	first := rnd(50_000)
	r.put(t, "obj", first, nil)
	o, err := r.c.Open(ctx, r.bucket, "obj", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.put(t, "obj", rnd(50_000), nil)
	p := make([]byte, 100)
	n, err := o.ReadAt(p, 1000)
	if err == nil {
		t.Fatalf("ReadAt of an overwritten object: %d bytes, no error (old bytes: %v)", n, bytes.Equal(p, first[1000:1100]))
	}
	// ErrChanged's doc: "the object changed while it was being read (its
	// ETag no longer matches the header's)": an Object's ReadAt wraps it,
	// so a caller can tell "reopen" from a failure.
	if !errors.Is(err, s3crypt.ErrChanged) {
		t.Errorf("ReadAt of an overwritten object: %v, want an error wrapping ErrChanged", err)
	}
	if errors.Is(err, io.EOF) {
		t.Error("ReadAt of an overwritten object: io.EOF")
	}
}

// TestCacheExpectExtraPair: expected pairs that the object does not carry
// are refused whether its header is cached or not.
func TestCacheExpectExtraPair(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env, 4096)
	ctx := context.Background()
	r.put(t, "ec", rnd(10_000), map[string]string{"tenant": "a"})
	bad := []map[string]string{
		{"tenant": "a", "patient": "p-1"},
		{"patient": "p-1"},
		{"tenant": "b"},
		{"tenant": ""},
		{"Tenant": "a"},
	}
	// Uncached.
	for _, e := range bad {
		if _, err := r.another(t).GetRange(ctx, r.bucket, "ec", 0, 10, e); err == nil {
			t.Errorf("uncached GetRange with expect %v: no error", keysOf(e))
		}
		if _, err := r.another(t).Open(ctx, r.bucket, "ec", e); err == nil {
			t.Errorf("uncached Open with expect %v: no error", keysOf(e))
		}
	}
	// Cached (under no expectation, then under the right one).
	for _, first := range []map[string]string{nil, {"tenant": "a"}} {
		c := r.another(t)
		if _, err := c.GetRange(ctx, r.bucket, "ec", 0, 10, first); err != nil {
			t.Fatal(err)
		}
		for _, e := range bad {
			if _, err := c.GetRange(ctx, r.bucket, "ec", 0, 10, e); err == nil {
				t.Errorf("cached GetRange with expect %v: no error", keysOf(e))
			}
			if _, err := c.Open(ctx, r.bucket, "ec", e); err == nil {
				t.Errorf("cached Open with expect %v: no error", keysOf(e))
			}
		}
		if _, err := c.GetRange(ctx, r.bucket, "ec", 0, 10, map[string]string{"tenant": "a"}); err != nil {
			t.Errorf("cached GetRange with the right expect: %v", err)
		}
	}
	// Get too.
	for _, e := range bad {
		if _, err := r.getAll(ctx, r.c, "ec", e); err == nil {
			t.Errorf("Get with expect %v: no error", keysOf(e))
		}
	}
}

func keysOf(m map[string]string) []string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	return k
}

// TestCacheForgetAndTTL: a disabled KMS key stops ranged reads at once
// after Forget / ForgetAll, and within HeaderCacheTTL without.
func TestCacheForgetAndTTL(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env, 4096)
	ctx := context.Background()
	ttl := r.another(t, func(c *s3crypt.Config) { c.HeaderCacheTTL = 1500 * time.Millisecond })
	nocache := r.another(t, func(c *s3crypt.Config) { c.HeaderCacheSize = -1 })
	pt := rnd(10_000)
	r.put(t, "k1", pt, nil)
	r.put(t, "k2", pt, nil)
	for _, c := range []*s3crypt.Client{r.c, ttl, nocache} {
		for _, k := range []string{"k1", "k2"} {
			if _, err := c.GetRange(ctx, r.bucket, k, 0, 10, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := r.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(r.keyARN)}); err != nil {
		t.Fatal(err)
	}
	// Cached: still read (documented).
	if b, err := r.c.GetRange(ctx, r.bucket, "k1", 5000, 10, nil); err != nil || !bytes.Equal(b, pt[5000:5010]) {
		t.Errorf("cached read after the key was disabled: %v", err)
	}
	if _, err := nocache.GetRange(ctx, r.bucket, "k1", 0, 10, nil); !errors.Is(err, phicrypt.ErrNoKey) {
		t.Errorf("uncached read with the key disabled: %v, want ErrNoKey", err)
	}
	r.c.Forget(r.bucket, "k1")
	if _, err := r.c.GetRange(ctx, r.bucket, "k1", 0, 10, nil); !errors.Is(err, phicrypt.ErrNoKey) {
		t.Errorf("after Forget: %v, want ErrNoKey", err)
	}
	if _, err := r.c.GetRange(ctx, r.bucket, "k2", 0, 10, nil); err != nil {
		t.Errorf("Forget of k1 dropped k2: %v", err)
	}
	r.c.ForgetAll()
	if _, err := r.c.GetRange(ctx, r.bucket, "k2", 0, 10, nil); !errors.Is(err, phicrypt.ErrNoKey) {
		t.Errorf("after ForgetAll: %v, want ErrNoKey", err)
	}
	if _, err := r.c.Open(ctx, r.bucket, "k2", nil); !errors.Is(err, phicrypt.ErrNoKey) {
		t.Errorf("Open after ForgetAll: %v, want ErrNoKey", err)
	}
	time.Sleep(1600 * time.Millisecond)
	if _, err := ttl.GetRange(ctx, r.bucket, "k1", 0, 10, nil); !errors.Is(err, phicrypt.ErrNoKey) {
		t.Errorf("after HeaderCacheTTL: %v, want ErrNoKey", err)
	}
	// A failed open must not be cached as a success, nor poison the cache:
	// with the key enabled again, reads work.
	if _, err := r.kms.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(r.keyARN)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.GetRange(ctx, r.bucket, "k2", 0, 10, nil); err != nil {
		t.Errorf("after the key was enabled again: %v", err)
	}
	// A Put by the same Client forgets the cached header.
	r.put(t, "k2", []byte("short"), nil)
	if b, err := r.c.GetRange(ctx, r.bucket, "k2", 0, 100, nil); err != nil || string(b) != "short" {
		t.Errorf("after Put by the same Client: %q, %v", b, err)
	}
	if _, err := s3crypt.New(s3crypt.Config{S3: r.raw, Encryptor: r.enc, HeaderCacheTTL: -1}); err == nil {
		t.Error("New with a negative HeaderCacheTTL: no error")
	}
}

// TestCacheDeletedObject: a cached header of a deleted object does not
// make reads return anything.
func TestCacheDeletedObject(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env, 4096)
	ctx := context.Background()
	r.put(t, "del", rnd(10_000), nil)
	o, err := r.c.Open(ctx, r.bucket, "del", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.raw.DeleteObject(ctx, deleteInput(r.bucket, "del")); err != nil {
		t.Fatal(err)
	}
	if b, err := r.c.GetRange(ctx, r.bucket, "del", 0, 10, nil); err == nil {
		t.Errorf("GetRange of a deleted object: %d bytes, no error", len(b))
	}
	if n, err := o.ReadAt(make([]byte, 10), 0); err == nil || n != 0 {
		t.Errorf("ReadAt of a deleted object: %d, %v", n, err)
	}
}

// TestGetOverwrittenMidDownload: an object overwritten while Get streams
// it (several parts) yields either the whole old plaintext or an error,
// never bytes of the new version.
func TestGetOverwrittenMidDownload(t *testing.T) {
	env := s3test.MinIO(t)
	r := newRig(t, env, 64<<10, smallParts, func(c *s3crypt.Config) { c.Concurrency = 1 })
	ctx := context.Background()
	old := rnd(40 * mib)
	r.put(t, "mid", old, nil)
	rd, err := r.c.Get(ctx, r.bucket, "mid", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	head := make([]byte, 1*mib)
	if _, err := io.ReadFull(rd, head); err != nil {
		t.Fatal(err)
	}
	if _, err := r.another(t).Put(ctx, r.bucket, "mid", bytes.NewReader(rnd(40*mib)), nil, nil); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(rd)
	got := append(head, rest...)
	if !bytes.Equal(got, old[:min(len(got), len(old))]) {
		t.Fatalf("Get returned bytes that are not the old object's (%d bytes, err %v)", len(got), err)
	}
	if err == nil && len(got) != len(old) {
		t.Fatalf("Get ended early without an error")
	}
	if err != nil {
		t.Logf("Get of an object overwritten mid-download: %v (ErrChanged: %v)", err, errors.Is(err, s3crypt.ErrChanged))
	}
}
