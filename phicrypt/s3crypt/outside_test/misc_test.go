package outside_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

// TestBadArguments: nil body, empty names, nil options: errors, no panic.
func TestBadArguments(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env, 4096)
	ctx := context.Background()
	noPanic(t, "Put(nil body)", func() {
		// A nil body is an error, not a panic.
		if _, err := r.c.Put(ctx, r.bucket, "nilbody", nil, nil, nil); err == nil {
			t.Error("Put with a nil body: no error")
		}
	})
	noPanic(t, "Put(empty key)", func() {
		if _, err := r.c.Put(ctx, r.bucket, "", bytes.NewReader([]byte("x")), nil, nil); err == nil {
			t.Error("Put with an empty key: no error")
		}
	})
	noPanic(t, "GetRange(missing)", func() {
		if _, err := r.c.GetRange(ctx, r.bucket, "missing", 0, 1, nil); err == nil {
			t.Error("GetRange of a missing object: no error")
		}
	})
	noPanic(t, "Get(missing bucket)", func() {
		if _, err := r.c.Get(ctx, r.bucket+"-nope", "k", nil); err == nil {
			t.Error("Get from a missing bucket: no error")
		}
	})
	if _, err := s3crypt.New(s3crypt.Config{}); err == nil {
		t.Error("New(Config{}): no error")
	}
	for _, cfg := range []s3crypt.Config{
		{S3: r.raw, Encryptor: r.enc, PartSize: 1},
		{S3: r.raw, Encryptor: r.enc, Concurrency: -1},
		{S3: r.raw, Encryptor: r.enc, Workers: 1000},
		{S3: r.raw, Encryptor: r.enc, Legacy: &s3crypt.LegacyConfig{}},
	} {
		if _, err := s3crypt.New(cfg); err == nil {
			t.Errorf("New(%+v): no error", cfg)
		}
	}
	// A Reader read after Close: an error (or EOF), no panic, and no
	// plaintext past what was returned before.
	r.put(t, "rc", rnd(300_000), nil)
	rd, err := r.c.Get(ctx, r.bucket, "rc", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = rd.Read(make([]byte, 10))
	_ = rd.Close()
	noPanic(t, "Read after Close", func() {
		// What a Read after Close returns is not promised (here: the
		// buffered rest, then io.EOF); only that it does not panic.
		_, _ = io.ReadAll(rd)
	})
	noPanic(t, "Close twice", func() { _ = rd.Close() })
}

// TestSignedObjects: a signed message is read whole by Get and refused by
// ranged reads with ErrSignedRange; Rewrap moves it to another keyring.
func TestSignedObjects(t *testing.T) {
	env := s3test.MinIO(t)
	r := newRig(t, env, 4096, smallParts)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: r.kr, FrameLength: 4096, Suite: phicrypt.SuiteCommittedSigned})
	if err != nil {
		t.Fatal(err)
	}
	cs := r.another(t, func(c *s3crypt.Config) { c.Encryptor = enc; c.PartSize = 5 * mib })
	ctx := context.Background()
	ec := map[string]string{"tenant": "a"}
	for _, size := range []int{0, 100, 11 * mib} {
		key := "signed/" + string(rune('a'+size%26))
		pt := rnd(size)
		if _, err := cs.Put(ctx, r.bucket, key, bytes.NewReader(pt), ec, nil); err != nil {
			t.Fatalf("Put signed: %v", err)
		}
		got, err := r.getAll(ctx, r.c, key, ec)
		if err != nil || !bytes.Equal(got, pt) {
			t.Errorf("size %d: Get signed: %v", size, err)
		}
		if _, err := r.c.GetRange(ctx, r.bucket, key, 0, 10, ec); !errors.Is(err, s3crypt.ErrSignedRange) {
			t.Errorf("size %d: GetRange signed: %v, want ErrSignedRange", size, err)
		}
		if _, err := r.c.Open(ctx, r.bucket, key, ec); !errors.Is(err, s3crypt.ErrSignedRange) {
			t.Errorf("size %d: Open signed: %v, want ErrSignedRange", size, err)
		}
		k1, _, _ := rawAES(t, "k1")
		if _, err := r.c.Rewrap(ctx, r.bucket, key, k1, ec); err != nil {
			t.Fatalf("size %d: Rewrap signed: %v", size, err)
		}
		got, err = r.getAll(ctx, clientFor(t, r, k1), key, ec)
		if err != nil || !bytes.Equal(got, pt) {
			t.Errorf("size %d: Get signed after Rewrap: %v", size, err)
		}
		if _, err := r.getAll(ctx, r.c, key, ec); !errors.Is(err, phicrypt.ErrNoKey) {
			t.Errorf("size %d: old keyring after Rewrap: %v", size, err)
		}
		// A signed object's flipped byte near its end fails Get.
		body, meta, _ := r.rawGet(t, key)
		r.rawPut(t, key+"-t", flip(body, len(body)-5), meta)
		if _, err := r.getAll(ctx, clientFor(t, r, k1), key+"-t", ec); !isOneOf(err, messageErrs...) {
			t.Errorf("size %d: Get of a signed object with a bad signature: %v", size, err)
		}
	}
}

// TestRewrapRacingOverwrite: an overwrite during Rewrap is never lost:
// afterwards the key holds the overwrite's plaintext.
func TestRewrapRacingOverwrite(t *testing.T) {
	env := s3test.MinIO(t)
	r := newRig(t, env, 64<<10, smallParts)
	ctx := context.Background()
	k1, _, _ := rawAES(t, "k1")
	writer := r.another(t, smallParts)
	for i, delay := range []time.Duration{0, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond,
		40 * time.Millisecond, 60 * time.Millisecond, 150 * time.Millisecond} {
		for _, size := range []int{3 * mib, 12 * mib} {
			key := fmt.Sprintf("race/%d/%d", i, size)
			r.put(t, key, rnd(size), nil)
			next := rnd(3000)
			var wg sync.WaitGroup
			var rwErr error
			wg.Go(func() { _, rwErr = r.c.Rewrap(ctx, r.bucket, key, k1, nil) })
			wg.Go(func() {
				time.Sleep(delay)
				if _, err := writer.Put(ctx, r.bucket, key, bytes.NewReader(next), nil, nil); err != nil {
					t.Error(err)
				}
			})
			wg.Wait()
			if rwErr != nil && !errors.Is(rwErr, s3crypt.ErrChanged) {
				t.Errorf("delay %v: Rewrap: %v, want nil or ErrChanged", delay, rwErr)
			}
			got, err := r.getAll(ctx, r.another(t), key, nil)
			if errors.Is(err, phicrypt.ErrNoKey) {
				// The overwrite landed before Rewrap read the header, so
				// Rewrap moved the new object: read it under k1.
				got, err = r.getAll(ctx, clientFor(t, r, k1), key, nil)
			}
			if err != nil || !bytes.Equal(got, next) {
				// Either the Rewrap finished first (then the overwrite, under
				// the old keyring, is current) or it was refused.
				t.Errorf("delay %v size %d: the overwrite was lost (Rewrap err %v; read %d bytes, %v)", delay, size, rwErr, len(got), err)
			}
		}
	}
	if k := r.uploads(t); k != 0 {
		t.Errorf("%d multipart uploads left behind", k)
	}
}

// TestConcurrentPutsAndReads: one Client, many goroutines putting and
// reading different keys and overwriting a shared one (run with -race).
func TestConcurrentPutsAndReads(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env, 4096, func(c *s3crypt.Config) { c.HeaderCacheSize = 3 })
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 12 {
		wg.Go(func() {
			key := "cc/" + string(rune('a'+g))
			pt := rnd(20000 + g)
			if _, err := r.c.Put(ctx, r.bucket, key, bytes.NewReader(pt), nil, nil); err != nil {
				t.Error(err)
				return
			}
			for i := range 5 {
				off := int64(i * 3000)
				b, err := r.c.GetRange(ctx, r.bucket, key, off, 2000, nil)
				if err != nil || !bytes.Equal(b, pt[off:off+2000]) {
					t.Errorf("%s: GetRange(%d): %v", key, off, err)
				}
			}
			// The shared key: every read returns one whole version.
			shared := bytes.Repeat([]byte{byte(g)}, 9000)
			if _, err := r.c.Put(ctx, r.bucket, "cc/shared", bytes.NewReader(shared), nil, nil); err != nil {
				t.Error(err)
			}
			b, err := r.c.GetRange(ctx, r.bucket, "cc/shared", 4000, 5000, nil)
			if err != nil {
				if !errors.Is(err, s3crypt.ErrChanged) {
					t.Errorf("shared: %v", err)
				}
				return
			}
			if len(b) != 5000 || !bytes.Equal(b, bytes.Repeat(b[:1], 5000)) {
				t.Errorf("shared: %d bytes mixing versions", len(b))
			}
		})
	}
	wg.Wait()
}

// TestReadsDuringOverwriteStorm: while another Client overwrites a key
// continuously, every GetRange and ReadAt returns one whole version or an
// error wrapping ErrChanged (the documented sentinel for "the object
// changed while it was read").
func TestReadsDuringOverwriteStorm(t *testing.T) {
	// MinIO only: the in-process S3 replaces an object non-atomically
	// (a read in between gets 404).
	env := s3test.MinIO(t)
	r := newRig(t, env, 4096)
	ctx := context.Background()
	writer := r.another(t)
	r.put(t, "storm", bytes.Repeat([]byte{0}, 30000), nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := writer.Put(ctx, r.bucket, "storm", bytes.NewReader(bytes.Repeat([]byte{byte(i)}, 30000)), nil, nil); err != nil {
				t.Error(err)
				return
			}
		}
	})
	other := 0
	for i := 0; i < 150; i++ {
		b, err := r.c.GetRange(ctx, r.bucket, "storm", 1000, 20000, nil)
		if err != nil {
			if !errors.Is(err, s3crypt.ErrChanged) {
				other++
				if other <= 3 {
					t.Errorf("GetRange during overwrites: %v, want ErrChanged", err)
				}
			}
			continue
		}
		if len(b) != 20000 || !bytes.Equal(b, bytes.Repeat(b[:1], 20000)) {
			t.Fatalf("GetRange mixed versions")
		}
	}
	close(stop)
	wg.Wait()
}

// TestContextMapsAreCopies: the maps EncryptionContext returns are the
// caller's; changing one changes nothing cached.
func TestContextMapsAreCopies(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env, 4096)
	ctx := context.Background()
	ec := map[string]string{"tenant": "a"}
	r.put(t, "ecm", rnd(100), ec)
	ec["tenant"] = "changed after Put"
	o, err := r.c.Open(ctx, r.bucket, "ecm", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := o.EncryptionContext()
	m["tenant"] = "b"
	m["extra"] = "x"
	if got := o.EncryptionContext(); got["tenant"] != "a" || len(got) != 1 {
		t.Errorf("Object.EncryptionContext changed through a returned map: %v", keysOf(got))
	}
	if _, err := r.c.GetRange(ctx, r.bucket, "ecm", 0, 10, map[string]string{"tenant": "a"}); err != nil {
		t.Errorf("GetRange after changing a returned map: %v", err)
	}
	if _, err := r.c.GetRange(ctx, r.bucket, "ecm", 0, 10, map[string]string{"tenant": "b"}); err == nil {
		t.Error("GetRange expecting the value written into a returned map: no error")
	}
}
