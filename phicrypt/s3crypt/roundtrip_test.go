package s3crypt_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	mrand "math/rand/v2"
	"strconv"
	"testing"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

func TestPutGetRoundTrip(t *testing.T) {
	s := newSetup(t, s3test.New(t), 4096)
	ctx := context.Background()
	ec := map[string]string{"tenant": "clinic-7"}
	for _, n := range []int{0, 1, 4095, 4096, 4097, 6<<20 + 123} {
		key := "obj-" + strconv.Itoa(n)
		pt := randomBytes(t, n)
		res := s.put(t, key, pt, ec)
		if res.Size != int64(n) {
			t.Errorf("%d: PutResult.Size = %d", n, res.Size)
		}
		r, err := s.c.Get(ctx, s.s3.Bucket, key, ec)
		if err != nil {
			t.Fatalf("%d: Get: %v", n, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatalf("%d: read: %v", n, err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("%d: Get returned other bytes (%d)", n, len(got))
		}
		if r.EncryptionContext()["tenant"] != "clinic-7" {
			t.Errorf("%d: context %v", n, r.EncryptionContext())
		}
		// The stored body is a whole message that phicrypt decrypts.
		body, meta := s.rawGet(t, key)
		dec, _, err := s.enc.Decrypt(ctx, body, ec)
		if err != nil || !bytes.Equal(dec, pt) {
			t.Fatalf("%d: the stored object is not a message of the plaintext: %v", n, err)
		}
		if meta["phicrypt-plaintext-length"] != strconv.Itoa(n) || meta["phicrypt-frame-length"] != "4096" {
			t.Errorf("%d: metadata %v", n, meta)
		}
		for k, v := range meta {
			if v == "clinic-7" {
				t.Errorf("metadata %s holds a context value", k)
			}
		}
	}
}

func TestGetRangeMatchesPlaintext(t *testing.T) {
	s := newSetup(t, s3test.New(t), 1000)
	ctx := context.Background()
	pt := randomBytes(t, 7<<20+17)
	s.put(t, "ranged", pt, nil)
	rng := mrand.New(mrand.NewPCG(1, 2))
	size := int64(len(pt))
	cases := [][2]int64{{0, 0}, {0, 1}, {999, 2}, {1000, 1000}, {size - 1, 1}, {size - 17, 17}, {size - 5, 100}, {size, 10}, {size + 5, 10}, {0, size}}
	for range 40 {
		off := rng.Int64N(size)
		cases = append(cases, [2]int64{off, rng.Int64N(3000)})
	}
	for _, c := range cases {
		got, err := s.c.GetRange(ctx, s.s3.Bucket, "ranged", c[0], c[1], nil)
		if err != nil {
			t.Fatalf("GetRange(%d, %d): %v", c[0], c[1], err)
		}
		lo, hi := min(c[0], size), min(c[0]+c[1], size)
		if !bytes.Equal(got, pt[lo:hi]) {
			t.Fatalf("GetRange(%d, %d) returned %d other bytes", c[0], c[1], len(got))
		}
	}
	o, err := s.c.Open(ctx, s.s3.Bucket, "ranged", nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Size() != size {
		t.Fatalf("Size %d", o.Size())
	}
	got, err := io.ReadAll(io.NewSectionReader(o, 0, o.Size()))
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("ReaderAt: %v", err)
	}
}

func TestTamperedFrameFailsOnlyReadsThatTouchIt(t *testing.T) {
	s := newSetup(t, s3test.New(t), 1000)
	ctx := context.Background()
	pt := randomBytes(t, 20_000)
	s.put(t, "t", pt, nil)
	body, meta := s.rawGet(t, "t")
	hl, err := s.enc.HeaderLength(body)
	if err != nil {
		t.Fatal(err)
	}
	// Flip a byte of frame 5 (plaintext 5000..5999).
	body[hl+5*(1000+32)+100] ^= 1
	// A copy under another key, so the original stays readable.
	s.rawPut(t, "t2", body, meta)
	s.c.ForgetAll()
	if _, err := s.c.GetRange(ctx, s.s3.Bucket, "t2", 5500, 10, nil); !errors.Is(err, phicrypt.ErrAuthentication) {
		t.Fatalf("a read of the altered frame: %v", err)
	}
	for _, c := range [][2]int64{{0, 5000}, {6000, 14000}, {4999, 1}} {
		got, err := s.c.GetRange(ctx, s.s3.Bucket, "t2", c[0], c[1], nil)
		if err != nil || !bytes.Equal(got, pt[c[0]:c[0]+c[1]]) {
			t.Fatalf("a read of [%d,+%d) that does not touch the frame: %v", c[0], c[1], err)
		}
	}
	r, err := s.c.Get(ctx, s.s3.Bucket, "t2", nil)
	if err == nil {
		_, err = io.ReadAll(r)
	}
	if !errors.Is(err, phicrypt.ErrAuthentication) {
		t.Fatalf("Get of the altered object: %v", err)
	}
	if !bytes.Contains([]byte(err.Error()), []byte(s.s3.Bucket+"/t2")) {
		t.Errorf("the error does not name the object: %v", err)
	}
}

func TestTruncatedObjectFails(t *testing.T) {
	s := newSetup(t, s3test.New(t), 1000)
	ctx := context.Background()
	pt := randomBytes(t, 10_000)
	s.put(t, "whole", pt, nil)
	body, meta := s.rawGet(t, "whole")
	hl, _ := s.enc.HeaderLength(body)
	cut := body[:hl+6*(1000+32)] // six regular frames, no final frame
	// With the recorded length: refused at once.
	s.rawPut(t, "cut", cut, meta)
	if _, err := s.c.GetRange(ctx, s.s3.Bucket, "cut", 0, 10, nil); !errors.Is(err, s3crypt.ErrTruncated) {
		t.Fatalf("cut object with recorded length: %v", err)
	}
	// Without it: a read that reaches the apparent end fails.
	delete(meta, "phicrypt-plaintext-length")
	s.rawPut(t, "cut2", cut, meta)
	o, err := s.c.Open(ctx, s.s3.Bucket, "cut2", nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if _, err := o.ReadAt(buf, o.Size()-50); !errors.Is(err, s3crypt.ErrTruncated) {
		t.Fatalf("a read at the end of a cut object: %v", err)
	}
	r, err := s.c.Get(ctx, s.s3.Bucket, "cut2", nil)
	if err == nil {
		_, err = io.ReadAll(r)
	}
	if !errors.Is(err, phicrypt.ErrMalformed) {
		t.Fatalf("Get of a cut object: %v", err)
	}
}
