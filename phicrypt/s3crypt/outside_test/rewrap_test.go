package outside_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

func rawAES(t *testing.T, name string) (keyring.Keyring, *s3crypt.Client, *rig) {
	t.Helper()
	kr, err := keyring.NewRawAES("review", name, rnd(32))
	if err != nil {
		t.Fatal(err)
	}
	return kr, nil, nil
}

func clientFor(t *testing.T, r *rig, kr keyring.Keyring) *s3crypt.Client {
	t.Helper()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, FrameLength: 4096})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s3crypt.New(s3crypt.Config{S3: r.raw, Encryptor: enc, PartSize: 5 * mib, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRewrapMovesKeys: small and multipart objects are rewrapped to a raw
// AES keyring, then again to another; after each, only the newest keyring
// reads them (whole and ranged, through a Client whose header was cached
// before), and the plaintext and context are unchanged.
func TestRewrapMovesKeys(t *testing.T) {
	env := s3test.MinIO(t)
	r := newRig(t, env, 4096, smallParts)
	ctx := context.Background()
	ec := map[string]string{"tenant": "a"}
	k1, _, _ := rawAES(t, "k1")
	k2, _, _ := rawAES(t, "k2")
	c1, c2 := clientFor(t, r, k1), clientFor(t, r, k2)
	for _, size := range []int{0, 5000, 12*mib + 333} {
		key := "rw/" + string(rune('a'+size%26))
		pt := rnd(size)
		r.put(t, key, pt, ec)
		// Cache the header in a reader that keeps the old keyring.
		oldReader := r.another(t)
		if _, err := oldReader.GetRange(ctx, r.bucket, key, 0, 10, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := r.c.Rewrap(ctx, r.bucket, key, k1, ec); err != nil {
			t.Fatalf("size %d: Rewrap: %v", size, err)
		}
		if _, err := r.getAll(ctx, r.c, key, nil); !errors.Is(err, phicrypt.ErrNoKey) {
			t.Errorf("size %d: old keyring Get after Rewrap: %v, want ErrNoKey", size, err)
		}
		if _, err := oldReader.GetRange(ctx, r.bucket, key, 0, 10, nil); !errors.Is(err, phicrypt.ErrNoKey) {
			t.Errorf("size %d: old keyring GetRange (header cached before) after Rewrap: %v, want ErrNoKey", size, err)
		}
		checkReads(t, r, c1, key, pt, ec)
		// Rewrap again, by the Client holding k1.
		if _, err := c1.Rewrap(ctx, r.bucket, key, k2, ec); err != nil {
			t.Fatalf("size %d: second Rewrap: %v", size, err)
		}
		if _, err := c1.GetRange(ctx, r.bucket, key, 0, 10, nil); !errors.Is(err, phicrypt.ErrNoKey) {
			t.Errorf("size %d: k1 GetRange after the second Rewrap: %v, want ErrNoKey", size, err)
		}
		checkReads(t, r, c2, key, pt, ec)
		// Rewrapping with a keyring that cannot open it fails and changes
		// nothing.
		_, _, before := r.rawGet(t, key)
		if _, err := c1.Rewrap(ctx, r.bucket, key, k1, nil); !errors.Is(err, phicrypt.ErrNoKey) {
			t.Errorf("size %d: Rewrap by a Client without the key: %v, want ErrNoKey", size, err)
		}
		if _, _, after := r.rawGet(t, key); after != before {
			t.Errorf("size %d: a failed Rewrap changed the object", size)
		}
	}
	if k := r.uploads(t); k != 0 {
		t.Errorf("%d multipart uploads left behind", k)
	}
}

func checkReads(t *testing.T, r *rig, c *s3crypt.Client, key string, pt []byte, ec map[string]string) {
	t.Helper()
	ctx := context.Background()
	got, err := r.getAll(ctx, c, key, ec)
	if err != nil || !bytes.Equal(got, pt) {
		t.Errorf("%s: Get after Rewrap: %d bytes, %v", key, len(got), err)
	}
	for _, off := range []int64{0, int64(len(pt)) / 2, int64(len(pt)) - 3} {
		if off < 0 {
			continue
		}
		b, err := c.GetRange(ctx, r.bucket, key, off, 5000, ec)
		if err != nil || !bytes.Equal(b, pt[off:min(off+5000, int64(len(pt)))]) {
			t.Errorf("%s: GetRange(%d) after Rewrap: %v", key, off, err)
		}
	}
}

// TestRewrapRefusals: a wrong expectation, a tampered header, a
// signed-range-free path: Rewrap fails and the object is left as it was.
func TestRewrapRefusals(t *testing.T) {
	env := s3test.MinIO(t)
	r := newRig(t, env, 4096, smallParts)
	ctx := context.Background()
	k1, _, _ := rawAES(t, "k1")
	ec := map[string]string{"tenant": "a"}
	for _, size := range []int{5000, 12 * mib} {
		key := "rr/" + string(rune('a'+size%26))
		pt := rnd(size)
		r.put(t, key, pt, ec)
		_, _, etag := r.rawGet(t, key)
		for _, e := range []map[string]string{{"tenant": "b"}, {"tenant": "a", "extra": "x"}} {
			// A pair the header does not store is, as in the ESDK, a pair
			// of the context that was not stored: it goes to the keyring
			// (here KMS Decrypt, which refuses it: ErrNoKey) and to the
			// header tag.
			if _, err := r.c.Rewrap(ctx, r.bucket, key, k1, e); !errors.Is(err, phicrypt.ErrContext) && !errors.Is(err, phicrypt.ErrAuthentication) && !errors.Is(err, phicrypt.ErrNoKey) {
				t.Errorf("size %d: Rewrap with a wrong expect (keys %v): %v", size, keysOf(e), err)
			}
		}
		if _, _, now := r.rawGet(t, key); now != etag {
			t.Errorf("size %d: a refused Rewrap changed the object", size)
		}
		// Tampered header (its tag).
		body, meta, _ := r.rawGet(t, key)
		hl := atoi(t, meta["phicrypt-header-length"])
		r.rawPut(t, key+"-hdr", flip(body, hl-2), meta)
		_, _, etag2 := r.rawGet(t, key+"-hdr")
		if _, err := r.c.Rewrap(ctx, r.bucket, key+"-hdr", k1, nil); !errors.Is(err, phicrypt.ErrAuthentication) {
			t.Errorf("size %d: Rewrap of a tampered header: %v, want ErrAuthentication", size, err)
		}
		if _, _, now := r.rawGet(t, key+"-hdr"); now != etag2 {
			t.Errorf("size %d: a failed Rewrap changed the tampered object", size)
		}
		// Tampered body: Rewrap does not decrypt it (documented), but the
		// result must still fail authentication where it was altered.
		r.rawPut(t, key+"-body", flip(body, hl+10), meta)
		if _, err := r.c.Rewrap(ctx, r.bucket, key+"-body", k1, nil); err == nil {
			c1 := clientFor(t, r, k1)
			if b, err := c1.GetRange(ctx, r.bucket, key+"-body", 0, 10, nil); !errors.Is(err, phicrypt.ErrAuthentication) {
				t.Errorf("size %d: rewrapped tampered body read: %d bytes, %v", size, len(b), err)
			}
		}
		// Truncated object (final frame cut).
		r.rawPut(t, key+"-cut", body[:len(body)-30], meta)
		_, _, etag3 := r.rawGet(t, key+"-cut")
		_, err := r.c.Rewrap(ctx, r.bucket, key+"-cut", k1, nil)
		if err == nil {
			c1 := clientFor(t, r, k1)
			b, rerr := c1.GetRange(ctx, r.bucket, key+"-cut", 0, 1<<40, nil)
			_, gerr := r.getAll(ctx, c1, key+"-cut", nil)
			_, _, m2 := func() ([]byte, map[string]string, string) { b, m, e := r.rawGet(t, key+"-cut"); return b, m, e }()
			t.Logf("size %d: truncated object rewrapped; ranged read after: %d bytes, %v; Get: %v; plaintext-length meta now %q", size, len(b), rerr, gerr, m2)
		}
		// Rewrap checks the object's length against its recorded plaintext
		// length, as Open does, and refuses a damaged object rather than
		// rewrite it as a new version.
		if err == nil {
			t.Errorf("size %d: Rewrap of a truncated object succeeded (recorded plaintext length disagrees)", size)
		} else if !isOneOf(err, messageErrs...) {
			t.Errorf("size %d: Rewrap of a truncated object: %v, want a message sentinel", size, err)
		}
		if _, _, now := r.rawGet(t, key+"-cut"); now != etag3 {
			t.Errorf("size %d: a failed Rewrap changed the truncated object", size)
		}
	}
	if _, err := r.c.Rewrap(ctx, r.bucket, "rr/missing", k1, nil); err == nil {
		t.Error("Rewrap of a missing object: no error")
	}
	if k := r.uploads(t); k != 0 {
		t.Errorf("%d multipart uploads left behind", k)
	}
}

// TestRewrapTransfer: a large object's Rewrap downloads about PartSize
// bytes and copies the rest inside S3, as RewrapResult and the wire say.
func TestRewrapTransfer(t *testing.T) {
	env := s3test.MinIO(t)
	r := newRig(t, env, 64<<10, smallParts)
	ctx := context.Background()
	k1, _, _ := rawAES(t, "k1")
	pt := rnd(23 * mib)
	r.put(t, "big", pt, nil)
	before := env.Bytes.Load()
	res, err := r.c.Rewrap(ctx, r.bucket, "big", k1, nil)
	if err != nil {
		t.Fatal(err)
	}
	moved := env.Bytes.Load() - before
	if res.Copied < 15*mib {
		t.Errorf("Copied %d, want most of the object", res.Copied)
	}
	// The first part, and the final frame, authenticated before the copy.
	if res.Downloaded > 5*mib+2*(64<<10) || moved > 5*mib+320<<10 {
		t.Errorf("Downloaded %d, %d bytes on the wire; want about PartSize", res.Downloaded, moved)
	}
	got, err := r.getAll(ctx, clientFor(t, r, k1), "big", nil)
	if err != nil || !bytes.Equal(got, pt) {
		t.Errorf("Get after Rewrap: %v", err)
	}
}

// TestRewrapCancelled: a Rewrap whose context is cancelled part way leaves
// the object as it was and no multipart upload behind.
func TestRewrapCancelled(t *testing.T) {
	env := s3test.MinIO(t)
	r := newRig(t, env, 64<<10, smallParts)
	k1, _, _ := rawAES(t, "k1")
	pt := rnd(40 * mib)
	r.put(t, "rc", pt, nil)
	_, _, etag := r.rawGet(t, "rc")
	for _, d := range []time.Duration{30 * time.Millisecond, 80 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		_, err := r.c.Rewrap(ctx, r.bucket, "rc", k1, nil)
		cancel()
		if err == nil {
			t.Logf("Rewrap finished within %v", d)
			break
		}
		if _, _, now := r.rawGet(t, "rc"); now != etag {
			t.Errorf("%v: a cancelled Rewrap changed the object", d)
		}
		// No multipart upload is left behind.
		if k := r.uploads(t); k != 0 {
			t.Errorf("%v: %d multipart uploads left behind by a cancelled Rewrap (err %v)", d, k, err)
		}
	}
}

// TestRewrapKeepsMetadata: Content-Type and user metadata survive Rewrap
// (small and multipart paths), and the recorded header length is the new
// header's.
func TestRewrapKeepsMetadata(t *testing.T) {
	env := s3test.MinIO(t)
	r := newRig(t, env, 64<<10, smallParts)
	ctx := context.Background()
	k1, _, _ := rawAES(t, "k1")
	for _, size := range []int{1000, 12 * mib} {
		key := "meta/" + string(rune('a'+size%26))
		pt := rnd(size)
		if _, err := r.c.Put(ctx, r.bucket, key, bytes.NewReader(pt), nil, &s3crypt.PutOptions{ContentType: "application/dicom", Size: int64(size), SizeKnown: true}); err != nil {
			t.Fatal(err)
		}
		body, meta, _ := r.rawGet(t, key)
		meta["department"] = "radiology"
		_, err := r.raw.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(key), Body: bytes.NewReader(body),
			Metadata: meta, ContentType: aws.String("application/dicom")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.c.Rewrap(ctx, r.bucket, key, k1, nil); err != nil {
			t.Fatal(err)
		}
		head, err := r.raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(head.ContentType) != "application/dicom" {
			t.Errorf("size %d: Content-Type after Rewrap %q", size, aws.ToString(head.ContentType))
		}
		if head.Metadata["department"] != "radiology" {
			t.Errorf("size %d: user metadata lost: %v", size, head.Metadata)
		}
		if head.Metadata["phicrypt-plaintext-length"] != strconv.Itoa(size) {
			t.Errorf("size %d: plaintext length metadata %q", size, head.Metadata["phicrypt-plaintext-length"])
		}
		nb, _, _ := r.rawGet(t, key)
		hl := atoi(t, head.Metadata["phicrypt-header-length"])
		// The old body follows the new header byte for byte.
		oldHL := atoi(t, meta["phicrypt-header-length"])
		if !bytes.Equal(nb[hl:], body[oldHL:]) {
			t.Errorf("size %d: recorded header length %d does not end the new header (or the body changed)", size, hl)
		}
	}
}
