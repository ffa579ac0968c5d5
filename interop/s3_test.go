//go:build interop

package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

// s3PartSize is the part size of the multipart uploads below: the least S3
// accepts, so a 12 MiB object takes several parts.
const s3PartSize = 5 << 20

// s3Side is a MinIO bucket, a KMS key on an in-process kmsmock that the JS
// harness and the phicrypt command reach over HTTP too, and s3crypt
// clients over both.
type s3Side struct {
	env *s3test.Env
	raw *s3.Client
	kms kmsTarget
	kr  keyring.Keyring
}

func newS3Side(t *testing.T) *s3Side {
	t.Helper()
	env := s3test.MinIO(t)
	l := kmsmock.StartTest(t, kmsmock.Config{Region: kmsRegion})
	tg := newKMSTarget(t, "kmsmock", l.URL, l.Client("interop"))
	kr, err := keyring.NewKMS(keyring.KMSConfig{Client: tg.client, Generator: tg.keyARN})
	if err != nil {
		t.Fatal(err)
	}
	return &s3Side{env: env, raw: env.Client(), kms: tg, kr: kr}
}

// client is an s3crypt Client writing suite at frame length frame.
func (s *s3Side) client(t *testing.T, suite phicrypt.Suite, frame int) *s3crypt.Client {
	t.Helper()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: s.kr, Suite: suite, FrameLength: frame})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s3crypt.New(s3crypt.Config{S3: s.raw, Encryptor: enc, PartSize: s3PartSize})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rawGet downloads an object's bytes as stored, with its ETag.
func (s *s3Side) rawGet(t *testing.T, key string) ([]byte, string) {
	t.Helper()
	out, err := s.raw.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(s.env.Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("GetObject %s: %v", key, err)
	}
	return b, aws.ToString(out.ETag)
}

// rawPut stores body as it is, with no metadata: an object s3crypt did not
// write.
func (s *s3Side) rawPut(t *testing.T, key string, body []byte) {
	t.Helper()
	_, err := s.raw.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(s.env.Bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("PutObject %s: %v", key, err)
	}
}

// buildCLI builds the phicrypt command into a temporary directory.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "phicrypt")
	if out, err := exec.Command("go", "build", "-o", bin, "../phicrypt/cmd/phicrypt").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runCLIWith runs the phicrypt command with stdin, signing its KMS calls as
// the harness's principal.
func runCLIWith(t *testing.T, bin string, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=interop", "AWS_SECRET_ACCESS_KEY=interop")
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("phicrypt %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// TestS3ObjectDecryptsWithJSAndCLI: an object s3crypt.Put stores in MinIO,
// downloaded raw, is a whole message that the AWS Encryption SDK for
// JavaScript and the phicrypt command decrypt with the same KMS key: a
// small one, a 12 MiB one uploaded in three parts, and a signed one.
func TestS3ObjectDecryptsWithJSAndCLI(t *testing.T) {
	s := newS3Side(t)
	ctx := context.Background()
	ec := map[string]string{"tenant": "general-hospital", "purpose": "s3-interop"}
	type object struct {
		name  string
		suite phicrypt.Suite
		frame int
		size  int
		parts int // multipart uploads' ETags end in "-<parts>"; 0: one PUT
	}
	objects := []object{
		{"small", phicrypt.SuiteCommitted, 4096, 100_000, 0},
		{"12MiB", phicrypt.SuiteCommitted, 65536, 12<<20 + 321, 3},
		{"signed", phicrypt.SuiteCommittedSigned, 4096, 70_000, 0},
	}
	pts := make([][]byte, len(objects))
	bodies := make([][]byte, len(objects))
	var jobs []job
	for i, o := range objects {
		pts[i] = make([]byte, o.size)
		rand.Read(pts[i])
		key := "interop/" + o.name
		res, err := s.client(t, o.suite, o.frame).Put(ctx, s.env.Bucket, key, bytes.NewReader(pts[i]), ec,
			&s3crypt.PutOptions{Size: int64(o.size), SizeKnown: true})
		if err != nil {
			t.Fatalf("%s: Put: %v", o.name, err)
		}
		var etag string
		bodies[i], etag = s.rawGet(t, key)
		if int64(len(bodies[i])) != res.ObjectSize || len(bodies[i]) <= o.size {
			t.Fatalf("%s: stored %d bytes, PutResult.ObjectSize %d, plaintext %d", o.name, len(bodies[i]), res.ObjectSize, o.size)
		}
		multipart := strings.HasSuffix(strings.Trim(etag, `"`), fmt.Sprintf("-%d", o.parts))
		if o.parts > 0 && !multipart {
			t.Fatalf("%s: ETag %s: not a multipart upload of %d parts", o.name, etag, o.parts)
		}
		if o.parts == 0 && strings.Contains(etag, "-") {
			t.Fatalf("%s: ETag %s: a multipart upload, want one PUT", o.name, etag)
		}
		jobs = append(jobs, job{Op: "decrypt", InputB64: b64(bodies[i]), Args: s.kms.args(map[string]any{
			"kms-key": s.kms.keyARN, "context": contextJSON(ec)})})
	}
	// A pair the object does not carry: the JS ESDK must refuse it.
	jobs = append(jobs, job{Op: "decrypt", InputB64: b64(bodies[0]), Args: s.kms.args(map[string]any{
		"kms-key": s.kms.keyARN, "context": `{"tenant":"another-hospital"}`})})
	res := runJS(t, jobs)
	bin := buildCLI(t)
	cliKMS := []string{"--kms-endpoint", s.kms.url, "--region", kmsRegion, "--kms-key", s.kms.keyARN}
	for i, o := range objects {
		t.Run(o.name, func(t *testing.T) {
			if !res[i].OK {
				t.Fatalf("the JS ESDK cannot decrypt the object: %s", res[i].Error)
			}
			if !bytes.Equal(res[i].output(t), pts[i]) {
				t.Fatal("the JS ESDK's plaintext differs")
			}
			h := res[i].Header
			if h.SuiteID != suiteHex(uint16(o.suite)) || h.FrameLength != o.frame {
				t.Fatalf("the JS ESDK read suite %s frame %d", h.SuiteID, h.FrameLength)
			}
			requireContext(t, h.EncryptionContext, ec)
			got, err := runCLIWith(t, bin, bodies[i], append([]string{"decrypt", "--context", "tenant=general-hospital", "--context", "purpose=s3-interop"}, cliKMS...)...)
			if err != nil {
				t.Fatalf("the CLI cannot decrypt the object: %v", err)
			}
			if !bytes.Equal(got, pts[i]) {
				t.Fatal("the CLI's plaintext differs")
			}
		})
	}
	if res[len(objects)].OK {
		t.Error("the JS ESDK decrypted the object under a context pair it does not carry")
	}
	if _, err := runCLIWith(t, bin, bodies[0], append([]string{"decrypt", "--context", "tenant=another-hospital"}, cliKMS...)...); err == nil {
		t.Error("the CLI decrypted the object under a context pair it does not carry")
	}
}

// TestJSMessageInS3ReadsWithS3Crypt: messages the AWS Encryption SDK for
// JavaScript makes, stored raw in MinIO (no s3crypt metadata), are read by
// s3crypt: Get reads both committing suites; GetRange and Object read
// ranges of the unsigned one (0x0478) and refuse the signed one (0x0578,
// the JS ESDK's default) with ErrSignedRange.
func TestJSMessageInS3ReadsWithS3Crypt(t *testing.T) {
	s := newS3Side(t)
	ctx := context.Background()
	ec := map[string]string{"tenant": "general-hospital", "table": "imaging"}
	const frame = 4096
	unsigned := make([]byte, 3<<20+1234)
	signed := make([]byte, 200_000)
	rand.Read(unsigned)
	rand.Read(signed)
	res := runJS(t, []job{
		{Op: "encrypt", InputB64: b64(unsigned), Args: s.kms.args(map[string]any{
			"kms-key": s.kms.keyARN, "suite": "0x0478", "frame-length": frame, "context": contextJSON(ec)})},
		// The SDK's defaults: suite 0x0578, frame length 4096.
		{Op: "encrypt", InputB64: b64(signed), Args: s.kms.args(map[string]any{
			"kms-key": s.kms.keyARN, "context": contextJSON(ec)})},
	})
	for i, want := range []string{"0x0478", "0x0578"} {
		if !res[i].OK {
			t.Fatalf("JS encrypt %s: %s", want, res[i].Error)
		}
		if res[i].Header.SuiteID != want {
			t.Fatalf("JS wrote suite %s, want %s", res[i].Header.SuiteID, want)
		}
	}
	s.rawPut(t, "js/unsigned", res[0].output(t))
	s.rawPut(t, "js/signed", res[1].output(t))
	c := s.client(t, phicrypt.SuiteCommitted, 0)

	for _, o := range []struct {
		key string
		pt  []byte
	}{{"js/unsigned", unsigned}, {"js/signed", signed}} {
		r, err := c.Get(ctx, s.env.Bucket, o.key, map[string]string{"tenant": "general-hospital"})
		if err != nil {
			t.Fatalf("Get %s: %v", o.key, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatalf("Get %s: read: %v", o.key, err)
		}
		if !bytes.Equal(got, o.pt) {
			t.Fatalf("Get %s: plaintext differs (%d bytes, want %d)", o.key, len(got), len(o.pt))
		}
		requireContext(t, r.EncryptionContext(), ec)
		if _, err := c.Get(ctx, s.env.Bucket, o.key, map[string]string{"tenant": "another-hospital"}); err == nil {
			t.Fatalf("Get %s under a context pair it does not carry succeeded", o.key)
		}
	}

	size := int64(len(unsigned))
	ranges := [][2]int64{
		{0, 1}, {0, frame}, {frame - 1, 2}, {5 * frame, 3 * frame}, {123_457, 100_000},
		{size - 1, 1}, {size - 1234, 5000}, {size, 10}, {0, size},
	}
	for _, rg := range ranges {
		got, err := c.GetRange(ctx, s.env.Bucket, "js/unsigned", rg[0], rg[1], map[string]string{"table": "imaging"})
		if err != nil {
			t.Fatalf("GetRange(%d, %d): %v", rg[0], rg[1], err)
		}
		lo, hi := min(rg[0], size), min(rg[0]+rg[1], size)
		if !bytes.Equal(got, unsigned[lo:hi]) {
			t.Fatalf("GetRange(%d, %d) returned %d other bytes", rg[0], rg[1], len(got))
		}
	}
	obj, err := c.Open(ctx, s.env.Bucket, "js/unsigned", nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if obj.Size() != size {
		t.Fatalf("Object.Size() = %d, want %d", obj.Size(), size)
	}
	sec := make([]byte, 10_000)
	if _, err := io.ReadFull(io.NewSectionReader(obj, 2_000_000, int64(len(sec))), sec); err != nil {
		t.Fatalf("ReadAt: %v", err)
	}
	if !bytes.Equal(sec, unsigned[2_000_000:2_010_000]) {
		t.Fatal("ReadAt returned other bytes")
	}
	if _, err := c.GetRange(ctx, s.env.Bucket, "js/unsigned", 0, 10, map[string]string{"tenant": "another-hospital"}); err == nil {
		t.Fatal("GetRange under a context pair the object does not carry succeeded")
	}

	if _, err := c.GetRange(ctx, s.env.Bucket, "js/signed", 0, 10, nil); !errors.Is(err, s3crypt.ErrSignedRange) {
		t.Fatalf("GetRange of a signed message: want ErrSignedRange, got %v", err)
	}
	if _, err := c.Open(ctx, s.env.Bucket, "js/signed", nil); !errors.Is(err, s3crypt.ErrSignedRange) {
		t.Fatalf("Open of a signed message: want ErrSignedRange, got %v", err)
	}
}
