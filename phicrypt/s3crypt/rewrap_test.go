package s3crypt_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

const rewrapPart = 5 << 20

// rewrapSetup is a setup (PartSize 5 MiB) and a second KMS key on the same
// kmsmock, with a Client whose keyring holds only that key.
type rewrapSetup struct {
	*setup
	to    keyring.Keyring
	toC   *s3crypt.Client
	suite phicrypt.Suite
}

func newRewrapSetup(t *testing.T, env *s3test.Env, suite phicrypt.Suite) *rewrapSetup {
	t.Helper()
	s := newSetup(t, env, 64<<10, func(cfg *s3crypt.Config) { cfg.PartSize = rewrapPart })
	if suite != phicrypt.SuiteCommitted {
		enc, err := phicrypt.New(phicrypt.Config{Keyring: s.kr, Suite: suite})
		if err != nil {
			t.Fatal(err)
		}
		s.enc = enc
		if s.c, err = s3crypt.New(s3crypt.Config{S3: s.raw, Encryptor: enc, PartSize: rewrapPart}); err != nil {
			t.Fatal(err)
		}
	}
	key, err := s.kms.CreateKey(context.Background(), &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	to, err := keyring.NewKMS(keyring.KMSConfig{Client: s.kms, Generator: aws.ToString(key.KeyMetadata.Arn)})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := phicrypt.New(phicrypt.Config{Keyring: to, Suite: suite})
	if err != nil {
		t.Fatal(err)
	}
	toC, err := s3crypt.New(s3crypt.Config{S3: s.raw, Encryptor: enc, PartSize: rewrapPart})
	if err != nil {
		t.Fatal(err)
	}
	return &rewrapSetup{setup: s, to: to, toC: toC, suite: suite}
}

// checkRewrapped checks that the object key holds pt for the new keyring's
// Client only, and that its body after the header is old's.
func (s *rewrapSetup) checkRewrapped(t *testing.T, key string, pt, old []byte, ec map[string]string) {
	t.Helper()
	ctx := context.Background()
	r, err := s.toC.Get(ctx, s.s3.Bucket, key, ec)
	if err != nil {
		t.Fatalf("Get with the new keyring: %v", err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Get with the new keyring: %d bytes, %v", len(got), err)
	}
	if s.suite == phicrypt.SuiteCommitted {
		n := int64(len(pt))
		for _, rg := range [][2]int64{{0, 10}, {n - 100, 100}, {n / 2, 70000}} {
			rg[0] = max(rg[0], 0)
			rg[1] = min(rg[1], n-rg[0])
			part, err := s.toC.GetRange(ctx, s.s3.Bucket, key, rg[0], rg[1], ec)
			if err != nil || !bytes.Equal(part, pt[rg[0]:rg[0]+rg[1]]) {
				t.Fatalf("GetRange %v with the new keyring: %v", rg, err)
			}
		}
	}
	s.c.ForgetAll()
	if r, err := s.c.Get(ctx, s.s3.Bucket, key, ec); err == nil {
		_, err = io.ReadAll(r)
		r.Close()
		t.Fatalf("the old keyring still reads the object (read error: %v)", err)
	} else if !errors.Is(err, phicrypt.ErrNoKey) {
		t.Fatalf("Get with the old keyring: %v, want ErrNoKey", err)
	}
	if s.suite == phicrypt.SuiteCommitted {
		if _, err := s.c.GetRange(ctx, s.s3.Bucket, key, 0, 10, ec); !errors.Is(err, phicrypt.ErrNoKey) {
			t.Fatalf("GetRange with the old keyring: %v, want ErrNoKey", err)
		}
	}
	now, meta := s.rawGet(t, key)
	oldHL, err := s.enc.HeaderLength(old)
	if err != nil {
		t.Fatal(err)
	}
	newHL, err := s.enc.HeaderLength(now)
	if err != nil {
		t.Fatal(err)
	}
	if meta["phicrypt-header-length"] != strconv.Itoa(newHL) {
		t.Errorf("recorded header length %q, the header is %d bytes", meta["phicrypt-header-length"], newHL)
	}
	if meta["phicrypt-plaintext-length"] != strconv.Itoa(len(pt)) {
		t.Errorf("recorded plaintext length %q, want %d", meta["phicrypt-plaintext-length"], len(pt))
	}
	// The frames are the same; a signed message's footer is signed anew.
	body := framedBodySize(len(pt), 64<<10)
	if len(old) < oldHL+body || len(now) < newHL+body || !bytes.Equal(old[oldHL:oldHL+body], now[newHL:newHL+body]) {
		t.Fatal("the body after the header changed")
	}
}

func TestRewrapMinIO(t *testing.T) {
	testRewrap(t, s3test.MinIO(t), phicrypt.SuiteCommitted, []int{0, 100 << 10, 17 << 20})
}

func TestRewrapSignedMinIO(t *testing.T) {
	testRewrap(t, s3test.MinIO(t), phicrypt.SuiteCommittedSigned, []int{1000, 11 << 20})
}

// TestRewrapInProcess runs the small case, which needs no UploadPartCopy,
// on the in-process server too.
func TestRewrapInProcess(t *testing.T) {
	testRewrap(t, s3test.New(t), phicrypt.SuiteCommitted, []int{100 << 10})
}

func testRewrap(t *testing.T, env *s3test.Env, suite phicrypt.Suite, sizes []int) {
	s := newRewrapSetup(t, env, suite)
	ctx := context.Background()
	ec := map[string]string{"tenant": "clinic-7"}
	for _, n := range sizes {
		key := "scan-" + strconv.Itoa(n)
		pt := randomBytes(t, n)
		put, err := s.c.Put(ctx, s.s3.Bucket, key, bytes.NewReader(pt), ec, &s3crypt.PutOptions{Size: int64(n), SizeKnown: true, ContentType: "application/dicom"})
		if err != nil {
			t.Fatal(err)
		}
		old, _ := s.rawGet(t, key)
		// The old keyring's Client has the header cached: Rewrap drops it.
		if _, err := s.c.Open(ctx, s.s3.Bucket, key, ec); suite == phicrypt.SuiteCommitted && err != nil {
			t.Fatal(err)
		}
		res, err := s.c.Rewrap(ctx, s.s3.Bucket, key, s.to, ec)
		if err != nil {
			t.Fatalf("%d: Rewrap: %v", n, err)
		}
		if res.ETag == "" || res.ETag == put.ETag {
			t.Errorf("%d: ETag %q, was %q", n, res.ETag, put.ETag)
		}
		hl, _ := s.enc.HeaderLength(old)
		total := int64(len(old))
		switch {
		case suite == phicrypt.SuiteCommittedSigned:
			if res.Downloaded != total || res.Copied != 0 {
				t.Errorf("%d: Downloaded %d Copied %d, want %d and 0", n, res.Downloaded, res.Copied, total)
			}
		case total < 2*rewrapPart:
			if res.Downloaded != total || res.Copied != 0 {
				t.Errorf("%d: Downloaded %d Copied %d, want %d and 0", n, res.Downloaded, res.Copied, total)
			}
		default:
			// The first part (the new header and PartSize of the old body)
			// and the final frame, authenticated before the copy.
			const finalFrame = 64<<10 + 40
			if res.Downloaded > rewrapPart+int64(hl)+finalFrame || res.Copied != total-int64(hl)-rewrapPart {
				t.Errorf("%d: Downloaded %d Copied %d; want at most %d and %d", n, res.Downloaded, res.Copied, rewrapPart+int64(hl)+finalFrame, total-int64(hl)-rewrapPart)
			}
			t.Logf("%d-byte object (%d-byte message): Downloaded %d, Copied %d", n, total, res.Downloaded, res.Copied)
		}
		s.checkRewrapped(t, key, pt, old, ec)
		if env.Real {
			out, err := s.raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.s3.Bucket), Key: aws.String(key)})
			if err != nil || aws.ToString(out.ContentType) != "application/dicom" {
				t.Errorf("%d: Content-Type %q (%v)", n, aws.ToString(out.ContentType), err)
			}
		}
	}
}

func TestRewrapConcurrentOverwriteMinIO(t *testing.T) {
	for _, c := range []struct {
		name  string
		suite phicrypt.Suite
		size  int
		step  string // when the object is overwritten
	}{
		{"small", phicrypt.SuiteCommitted, 1000, s3crypt.RewrapStepComplete},
		{"large", phicrypt.SuiteCommitted, 12 << 20, s3crypt.RewrapStepComplete},
		{"small before body", phicrypt.SuiteCommitted, 1000, s3crypt.RewrapStepBody},
		{"large before body", phicrypt.SuiteCommitted, 12 << 20, s3crypt.RewrapStepBody},
		{"large before copy", phicrypt.SuiteCommitted, 12 << 20, s3crypt.RewrapStepCopy},
		{"signed", phicrypt.SuiteCommittedSigned, 1000, s3crypt.RewrapStepComplete},
		{"signed large", phicrypt.SuiteCommittedSigned, 12 << 20, s3crypt.RewrapStepBody},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newRewrapSetup(t, s3test.MinIO(t), c.suite)
			ec := map[string]string{"tenant": "clinic-7"}
			s.put(t, "obj", randomBytes(t, c.size), ec)
			newer := randomBytes(t, 3000)
			var steps []string
			ctx := s3crypt.WithRewrapHook(context.Background(), func(step string) {
				steps = append(steps, step)
				if step == c.step {
					s.put(t, "obj", newer, ec)
				}
			})
			_, err := s.c.Rewrap(ctx, s.s3.Bucket, "obj", s.to, ec)
			if !errors.Is(err, s3crypt.ErrChanged) {
				t.Fatalf("Rewrap over a concurrent overwrite: %v, want ErrChanged", err)
			}
			if !slices.Contains(steps, c.step) {
				t.Fatalf("hook steps %v", steps)
			}
			r, err := s.c.Get(context.Background(), s.s3.Bucket, "obj", ec)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, newer) {
				t.Fatalf("the overwrite was lost (%d bytes, %v)", len(got), err)
			}
			if ups, err := s.raw.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(s.s3.Bucket)}); err != nil || len(ups.Uploads) != 0 {
				t.Errorf("multipart uploads left behind: %v (%v)", ups.Uploads, err)
			}
		})
	}
}

func TestRewrapRefusesTamperedHeaders(t *testing.T) {
	s := newRewrapSetup(t, s3test.New(t), phicrypt.SuiteCommitted)
	ctx := context.Background()
	ec := map[string]string{"tenant": "clinic-7"}
	s.put(t, "obj", randomBytes(t, 5000), ec)
	msg, meta := s.rawGet(t, "obj")
	hl, _ := s.enc.HeaderLength(msg)
	for _, off := range []int{5, hl - 20, hl - 1} { // message id, commitment key, tag
		bad := bytes.Clone(msg)
		bad[off] ^= 1
		s.rawPut(t, "obj", bad, meta)
		_, err := s.c.Rewrap(ctx, s.s3.Bucket, "obj", s.to, ec)
		if !errors.Is(err, phicrypt.ErrAuthentication) {
			t.Fatalf("byte %d flipped: %v, want ErrAuthentication", off, err)
		}
		if now, _ := s.rawGet(t, "obj"); !bytes.Equal(now, bad) {
			t.Fatal("a refused Rewrap changed the object")
		}
	}
	s.rawPut(t, "obj", msg, meta)
	_, err := s.c.Rewrap(ctx, s.s3.Bucket, "obj", s.to, map[string]string{"tenant": "clinic-8"})
	if !errors.Is(err, phicrypt.ErrContext) {
		t.Fatalf("wrong expected context: %v, want ErrContext", err)
	}
	if msg := err.Error(); bytes.Contains([]byte(msg), []byte("clinic")) || !bytes.Contains([]byte(msg), []byte("s3://"+s.s3.Bucket+"/obj")) {
		t.Errorf("the error names a context value or not the object: %s", msg)
	}
	_, err = s.c.Rewrap(ctx, s.s3.Bucket, "missing", s.to, nil)
	if err == nil {
		t.Fatal("Rewrap of a missing object succeeded")
	}
}

// framedBodySize is the length of the frames of a message of n plaintext
// bytes in frames of f: full frames, then a final frame that is empty only
// when the plaintext is.
func framedBodySize(n, f int) int {
	full := n / f
	if n > 0 && n%f == 0 {
		full--
	}
	return full*(4+12+f+16) + 4 + 4 + 12 + 4 + (n - full*f) + 16
}

func TestRewrapSignedRefusesAlteredBody(t *testing.T) {
	s := newRewrapSetup(t, s3test.New(t), phicrypt.SuiteCommittedSigned)
	ctx := context.Background()
	ec := map[string]string{"tenant": "clinic-7"}
	s.put(t, "obj", randomBytes(t, 200<<10), ec)
	msg, meta := s.rawGet(t, "obj")
	bad := bytes.Clone(msg)
	bad[len(bad)/2] ^= 1 // inside a frame: only the signature notices before decryption
	s.rawPut(t, "obj", bad, meta)
	_, err := s.c.Rewrap(ctx, s.s3.Bucket, "obj", s.to, ec)
	if !errors.Is(err, phicrypt.ErrAuthentication) {
		t.Fatalf("Rewrap of an altered signed body: %v, want ErrAuthentication", err)
	}
	if now, _ := s.rawGet(t, "obj"); !bytes.Equal(now, bad) {
		t.Fatal("a refused Rewrap changed the object")
	}
}
