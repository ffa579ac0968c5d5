package outside2_test

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

// Frame geometry of the rigs' messages (FORMAT.md section 1, framed
// body): a regular frame is sequence number (4), IV (12), ciphertext
// (frame length) and tag (16).
const (
	frameLen   = 4096
	frameBytes = 4 + 12 + frameLen + 16
)

// frameAt returns the byte range of regular frame i (0-based) of a stored
// message whose header is hl bytes long.
func frameAt(hl, i int) (int, int) { return hl + i*frameBytes, hl + (i+1)*frameBytes }

func headerLen(t *testing.T, meta map[string]string) int {
	t.Helper()
	n, err := strconv.Atoi(meta["phicrypt-header-length"])
	if err != nil {
		t.Fatalf("phicrypt-header-length: %v", err)
	}
	return n
}

// TestSpliceAcrossObjects: two objects of one Encryptor with a data-key
// Cache (same context, same size, written one after the other). A writer of
// the bucket moves frames between them, swaps their headers and reorders
// frames. Reads of touched frames fail with ErrAuthentication; untouched
// frames still read; no read returns bytes that are not the original
// plaintext at the requested offset. The two objects do not share a
// message id (so no derived key), whatever the cache does with data keys.
func TestSpliceAcrossObjects(t *testing.T) {
	env := s3test.New(t)
	cache, err := phicrypt.NewCache(phicrypt.CacheConfig{MaxAge: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, env, func(pc *phicrypt.Config, _ *s3crypt.Config) { pc.Cache = cache })
	ctx := context.Background()
	ec := map[string]string{"tenant": "t1"}
	ptA, ptB := rnd(4*frameLen+100), rnd(4*frameLen+100)
	r.put(t, r.c, "a", ptA, ec)
	r.put(t, r.c, "b", ptB, ec)
	bodyA, metaA := r.rawGet(t, "a")
	bodyB, metaB := r.rawGet(t, "b")
	hlA, hlB := headerLen(t, metaA), headerLen(t, metaB)
	// Message format 2: version (1), suite (2), message id (32).
	if bytes.Equal(bodyA[3:35], bodyB[3:35]) {
		t.Fatalf("two objects share a message id")
	}
	if hlA != hlB {
		t.Fatalf("header lengths differ: %d, %d", hlA, hlB)
	}

	splice := func(dst, src []byte, i, j int) []byte {
		out := bytes.Clone(dst)
		ds, de := frameAt(hlA, i)
		ss, se := frameAt(hlA, j)
		copy(out[ds:de], src[ss:se])
		return out
	}
	cases := []struct {
		name    string
		body    []byte
		bad     []int // frames that must not read
		wantPT  []byte
		allFail bool // header swapped: nothing reads
	}{
		{"frame 1 of A into B at 1", splice(bodyB, bodyA, 1, 1), []int{1}, ptB, false},
		{"frame 2 of A into B at 1", splice(bodyB, bodyA, 1, 2), []int{1}, ptB, false},
		{"frames 1 and 2 of B swapped", splice(splice(bodyB, bodyB, 1, 2), bodyB, 2, 1), []int{1, 2}, ptB, false},
		{"A's header on B's body", append(bytes.Clone(bodyA[:hlA]), bodyB[hlB:]...), nil, ptB, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := "spliced/" + strconv.Itoa(i)
			r.rawPut(t, key, tc.body, metaB)
			c := r.client(t, nil)
			for f := 0; f < 4; f++ {
				got, err := c.GetRange(ctx, r.bucket, key, int64(f*frameLen), frameLen, ec)
				bad := tc.allFail
				for _, b := range tc.bad {
					bad = bad || b == f
				}
				switch {
				case bad && err == nil:
					t.Errorf("frame %d read %d bytes from a spliced object", f, len(got))
				case bad && !errors.Is(err, phicrypt.ErrAuthentication):
					t.Errorf("frame %d: want ErrAuthentication, got %v", f, err)
				case !bad && err != nil:
					t.Errorf("untouched frame %d: %v", f, err)
				case !bad && !bytes.Equal(got, tc.wantPT[f*frameLen:(f+1)*frameLen]):
					t.Errorf("frame %d returned bytes that are not the plaintext at its offset", f)
				}
			}
			got, err := r.getAll(c, key, ec)
			if err == nil {
				t.Errorf("Get of a spliced object returned %d bytes and no error", len(got))
			} else if !bytes.Equal(got, tc.wantPT[:len(got)]) {
				t.Errorf("Get returned bytes that are not the plaintext before failing")
			}
		})
	}
}

// TestVersionedBucket: on a bucket with versioning (MinIO), Put, Get,
// Rewrap and Migrate report the version they wrote or read; Rewrap leaves
// the old version to the old keyring (documented) and the new version only
// to the new one. A writer of the bucket who restores the old version
// (CopyObject of a VersionId) brings the old keyring back: there is no
// freshness in the format, only the caller's context can tell versions
// apart.
func TestVersionedBucket(t *testing.T) {
	env := s3test.MinIO(t)
	r := newRig(t, env)
	r.versioned(t)
	ctx := context.Background()
	ec := map[string]string{"tenant": "t1"}
	pt := rnd(3*frameLen + 7)
	put := r.put(t, r.c, "obj", pt, ec)
	if put.VersionID == "" {
		t.Fatal("Put on a versioned bucket returned no VersionID")
	}
	rd, err := r.c.Get(ctx, r.bucket, "obj", ec)
	if err != nil {
		t.Fatal(err)
	}
	if rd.VersionID() != put.VersionID {
		t.Errorf("Reader.VersionID %q, Put wrote %q", rd.VersionID(), put.VersionID)
	}
	rd.Close()

	// Rewrap to a raw AES keyring chosen by the caller.
	to, err := keyring.NewRawAES("review2", "to", rnd(32))
	if err != nil {
		t.Fatal(err)
	}
	encTo, _ := phicrypt.New(phicrypt.Config{Keyring: to, FrameLength: frameLen})
	cTo, _ := s3crypt.New(s3crypt.Config{S3: r.raw, Encryptor: encTo})
	rw, err := r.c.Rewrap(ctx, r.bucket, "obj", to, ec)
	if err != nil {
		t.Fatal(err)
	}
	head, err := r.raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(r.bucket), Key: aws.String("obj")})
	if err != nil {
		t.Fatal(err)
	}
	if rw.VersionID == "" || rw.VersionID == put.VersionID || rw.VersionID != aws.ToString(head.VersionId) {
		t.Errorf("RewrapResult.VersionID %q; Put's %q, current %q", rw.VersionID, put.VersionID, aws.ToString(head.VersionId))
	}
	if got, err := r.getAll(cTo, "obj", ec); err != nil || !bytes.Equal(got, pt) {
		t.Errorf("new keyring, current version: %v", err)
	}
	if _, err := r.getAll(r.client(t, nil), "obj", ec); !errors.Is(err, phicrypt.ErrNoKey) {
		t.Errorf("old keyring, current version: want ErrNoKey, got %v", err)
	}
	// The old version: still the old keyring's (OPERATIONS.md says so).
	old, err := r.raw.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(r.bucket), Key: aws.String("obj"), VersionId: aws.String(put.VersionID)})
	if err != nil {
		t.Fatal(err)
	}
	oldBody := readAll(t, old.Body)
	if got, _, err := r.enc.Decrypt(ctx, oldBody, ec); err != nil || !bytes.Equal(got, pt) {
		t.Errorf("old version with the old keyring: %v", err)
	}
	// Rewrap keeps the data key and message id: the old version's
	// header opens the new version's body. Whoever unwrapped the data key
	// once (or keeps the old KMS key and one old header) reads every later
	// version Rewrap makes of this object. Rewrap is not a response to a
	// compromised key: that needs a re-encryption (Get and Put).
	newBody, _ := r.rawGet(t, "obj")
	hl := len(newBody) - (len(oldBody) - headerLen(t, old.Metadata))
	mixed := append(bytes.Clone(oldBody[:headerLen(t, old.Metadata)]), newBody[hl:]...)
	if got, _, err := r.enc.Decrypt(ctx, mixed, ec); err != nil || !bytes.Equal(got, pt) {
		t.Errorf("the old header no longer opens the rewrapped body (the data key changed?): %v", err)
	}
	// Roll back: the writer copies the old version over the current one.
	if _, err := r.raw.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(r.bucket), Key: aws.String("obj"),
		CopySource: aws.String(r.bucket + "/obj?versionId=" + put.VersionID)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.getAll(cTo, "obj", ec); !errors.Is(err, phicrypt.ErrNoKey) {
		t.Errorf("after a rollback to the old version the new keyring should not read it: %v", err)
	}

	// Migrate on a versioned bucket: the result names the new version and
	// the legacy version stays.
	lc := r.legacyClient(t, false)
	o := r.v2(t, r.keyARN, []byte("legacy"), ec)
	lv := r.rawPut(t, "legacy", o.body, o.env)
	mr, err := lc.Migrate(ctx, r.bucket, "legacy", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if mr.VersionID == "" || mr.VersionID == lv {
		t.Errorf("MigrateResult.VersionID %q (legacy version %q)", mr.VersionID, lv)
	}
	if _, err := r.raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(r.bucket), Key: aws.String("legacy"), VersionId: aws.String(lv)}); err != nil {
		t.Errorf("the legacy version is gone after Migrate: %v", err)
	}
}

// TestRewrapOnlyToKeyring: an object written under a multi-keyring (KMS
// key and a raw AES key B) is rewrapped to raw AES key C: afterwards
// neither the KMS key nor B reads it, only C; the Client's own keyring is
// not added to the new header.
func TestRewrapOnlyToKeyring(t *testing.T) {
	env := s3test.MinIO(t)
	base := newRig(t, env)
	ctx := context.Background()
	kmsKR, err := keyring.NewKMS(keyring.KMSConfig{Client: base.kms, Generator: base.keyARN})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := keyring.NewRawAES("review2", "b", rnd(32))
	cKR, _ := keyring.NewRawAES("review2", "c", rnd(32))
	multi, err := keyring.NewMulti(kmsKR, b)
	if err != nil {
		t.Fatal(err)
	}
	clientOf := func(kr keyring.Keyring) *s3crypt.Client {
		enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, FrameLength: frameLen})
		if err != nil {
			t.Fatal(err)
		}
		c, err := s3crypt.New(s3crypt.Config{S3: base.raw, Encryptor: enc, PartSize: 5 * mib, Concurrency: 2})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cm := clientOf(multi)
	ec := map[string]string{"tenant": "t1"}
	for _, size := range []int{3 * frameLen, 11 * mib} {
		key := "multi/" + strconv.Itoa(size)
		pt := rnd(size)
		base.put(t, cm, key, pt, ec)
		if _, err := base.getAll(clientOf(b), key, ec); err != nil {
			t.Fatalf("B before rewrap: %v", err)
		}
		if _, err := cm.Rewrap(ctx, base.bucket, key, cKR, ec); err != nil {
			t.Fatal(err)
		}
		if got, err := base.getAll(clientOf(cKR), key, ec); err != nil || !bytes.Equal(got, pt) {
			t.Errorf("%d bytes: C after rewrap: %v", size, err)
		}
		for name, kr := range map[string]keyring.Keyring{"KMS": kmsKR, "B": b, "multi": multi} {
			if _, err := clientOf(kr).GetRange(ctx, base.bucket, key, 0, 10, ec); !errors.Is(err, phicrypt.ErrNoKey) {
				t.Errorf("%d bytes: %s after rewrap to C: want ErrNoKey, got %v", size, name, err)
			}
		}
	}
}
