package outside2_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

// decryptCounter counts the keyring's KMS Decrypt calls.
type decryptCounter struct {
	*kms.Client
	n atomic.Int64
}

func (c *decryptCounter) Decrypt(ctx context.Context, in *kms.DecryptInput, opt ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	c.n.Add(1)
	return c.Client.Decrypt(ctx, in, opt...)
}

// TestKMSCallsPerRead: how many KMS Decrypt calls reads cost. A tampered
// header (its tag flipped) costs at most one per Get, GetRange or Rewrap
// (the message has one wrapped key), with no retry loop; 16 concurrent
// ranged reads of one object through a fresh Client share one header
// open (STYLE.md 16: one single-flight helper for every cache).
//
// (This failed before the review's fixes; it now holds.)
//
// (This failed before the review's fixes; it now holds.)
func TestKMSCallsPerRead(t *testing.T) {
	env := s3test.New(t)
	base := newRig(t, env)
	ctx := context.Background()
	kc := &decryptCounter{Client: base.kms}
	kr, err := keyring.NewKMS(keyring.KMSConfig{Client: kc, Generator: base.keyARN})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, FrameLength: frameLen})
	if err != nil {
		t.Fatal(err)
	}
	fresh := func() *s3crypt.Client {
		c, err := s3crypt.New(s3crypt.Config{S3: base.raw, Encryptor: enc})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ec := map[string]string{"tenant": "t1"}
	pt := rnd(6 * frameLen)
	base.put(t, fresh(), "obj", pt, ec)

	body, meta := base.rawGet(t, "obj")
	hl := headerLen(t, meta)
	bad := append([]byte(nil), body...)
	bad[hl-1] ^= 1 // the header tag's last byte
	base.rawPut(t, "bad", bad, meta)
	to, _ := keyring.NewRawAES("review2", "k", rnd(32))
	c := fresh()
	for name, op := range map[string]func() error{
		"Get":      func() error { _, err := base.getAll(c, "bad", ec); return err },
		"GetRange": func() error { _, err := c.GetRange(ctx, base.bucket, "bad", 0, 10, ec); return err },
		"Rewrap":   func() error { _, err := c.Rewrap(ctx, base.bucket, "bad", to, ec); return err },
	} {
		kc.n.Store(0)
		if err := op(); err == nil {
			t.Errorf("%s of a tampered header succeeded", name)
		}
		if n := kc.n.Load(); n > 1 {
			t.Errorf("%s of a tampered header made %d KMS calls", name, n)
		}
	}

	// A cached object's reads that run past its end (a reader asking for
	// "the rest", the last bytes of a log) reopen the header each time,
	// in case the object grew (get.go, GetRange's attempt 0).
	c = fresh()
	if _, err := c.GetRange(ctx, base.bucket, "obj", 0, 10, ec); err != nil {
		t.Fatal(err)
	}
	kc.n.Store(0)
	for range 10 {
		if got, err := c.GetRange(ctx, base.bucket, "obj", int64(len(pt)-10), 1<<20, ec); err != nil || len(got) != 10 {
			t.Fatalf("tail read: %d bytes, %v", len(got), err)
		}
	}
	t.Logf("10 tail reads of a cached, unchanged object: %d KMS calls", kc.n.Load())
	if n := kc.n.Load(); n > 0 {
		t.Errorf("10 reads past the end of a cached, unchanged object made %d KMS Decrypt calls (README: later reads make no keyring call)", n)
	}

	kc.n.Store(0)
	c = fresh()
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.GetRange(ctx, base.bucket, "obj", 0, 10, ec); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	t.Logf("16 concurrent ranged reads of one object: %d KMS calls", kc.n.Load())
	if n := kc.n.Load(); n > 2 {
		t.Errorf("16 concurrent ranged reads of one uncached object made %d KMS Decrypt calls", n)
	}
}
