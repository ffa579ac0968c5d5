// Command s3objects stores a file as an encrypted S3 object with
// phicrypt/s3crypt and reads it back: it starts the kmsmock KMS emulator
// in-process with two KMS keys, uploads the file under the first (a
// multipart upload, sealed as it streams), reads one range with a single
// ranged GET and compares it with the file, streams the whole object back,
// rewraps the object's data key to the second KMS key without touching its
// body, and shows that a client holding only the second key reads it while
// one holding only the first no longer can.
//
// It needs an S3 endpoint: MinIO (scripts/test.sh starts one and exports
// PHICRYPT_S3_URL, PHICRYPT_S3_ACCESS_KEY and PHICRYPT_S3_SECRET_KEY, the
// flags' defaults) or any S3-compatible store.
//
//	go run ./examples/s3objects -endpoint http://127.0.0.1:9000 -access-key KEY -secret-key SECRET
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

// options are the command's flags.
type options struct {
	endpoint, accessKey, secretKey, region string
	bucket, key, file                      string
	// generate is the size of the file made when file is empty.
	generate int64
	keep     bool
}

func main() {
	var o options
	flag.StringVar(&o.endpoint, "endpoint", os.Getenv("PHICRYPT_S3_URL"), "S3 endpoint URL (default $PHICRYPT_S3_URL)")
	flag.StringVar(&o.accessKey, "access-key", os.Getenv("PHICRYPT_S3_ACCESS_KEY"), "S3 access key (default $PHICRYPT_S3_ACCESS_KEY)")
	flag.StringVar(&o.secretKey, "secret-key", os.Getenv("PHICRYPT_S3_SECRET_KEY"), "S3 secret key (default $PHICRYPT_S3_SECRET_KEY)")
	flag.StringVar(&o.region, "region", "us-east-1", "S3 region to sign for")
	flag.StringVar(&o.bucket, "bucket", "phicrypt-s3objects", "bucket, created if missing")
	flag.StringVar(&o.key, "key", "s3objects/example.bin", "object key")
	flag.StringVar(&o.file, "file", "", "file to upload (default: a generated 20 MiB file in a temporary directory)")
	flag.BoolVar(&o.keep, "keep", false, "keep the object in the bucket at the end")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "s3objects: unexpected arguments:", strings.Join(flag.Args(), " "))
		os.Exit(2)
	}
	o.generate = 20 << 20
	if err := run(context.Background(), os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "s3objects:", err)
		os.Exit(1)
	}
}

// partSize is the client's part size: S3's smallest, so a 20 MiB file
// takes five parts (the message is a little longer than the file).
const partSize = 5 << 20

func run(ctx context.Context, out io.Writer, o options) error {
	if o.endpoint == "" {
		return errors.New("no S3 endpoint: set -endpoint or PHICRYPT_S3_URL (scripts/test.sh starts MinIO and sets it)")
	}
	if o.accessKey == "" || o.secretKey == "" {
		return errors.New("no S3 credentials: set -access-key and -secret-key, or PHICRYPT_S3_ACCESS_KEY and PHICRYPT_S3_SECRET_KEY")
	}

	l, err := kmsmock.Start(kmsmock.Config{}, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	kc := l.Client("s3objects")
	var keyARNs [2]string
	for i, desc := range []string{"s3objects: first key", "s3objects: second key"} {
		k, err := kc.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String(desc)})
		if err != nil {
			return fmt.Errorf("CreateKey: %w", err)
		}
		keyARNs[i] = aws.ToString(k.KeyMetadata.Arn)
	}
	fmt.Fprintf(out, "1. started kmsmock at %s with two KMS keys:\n   first  %s\n   second %s\n", l.URL, keyARNs[0], keyARNs[1])

	gets := new(atomic.Int64)
	s3c := s3.New(s3.Options{
		Region:       o.region,
		BaseEndpoint: aws.String(o.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(o.accessKey, o.secretKey, ""),
		HTTPClient:   &http.Client{Transport: &countGets{next: http.DefaultTransport, n: gets}},
	})
	created, err := ensureBucket(ctx, s3c, o.bucket)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(out, "2. created bucket %s at %s\n", o.bucket, o.endpoint)
	} else {
		fmt.Fprintf(out, "2. using bucket %s at %s\n", o.bucket, o.endpoint)
	}

	path := o.file
	if path == "" {
		dir, err := os.MkdirTemp("", "phicrypt-s3objects-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "scan.bin")
		if err := generate(path, o.generate); err != nil {
			return err
		}
		fmt.Fprintf(out, "3. generated a %s file of random bytes in a temporary directory\n", mib(o.generate))
	} else {
		fmt.Fprintf(out, "3. uploading %s\n", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	fileHash, err := hashOf(io.NewSectionReader(f, 0, size))
	if err != nil {
		return err
	}

	first, err := kmsClient(kc, s3c, keyARNs[0])
	if err != nil {
		return err
	}
	// The context is authenticated and stored in the clear in the object;
	// its values may be PHI in real use, so they are never printed.
	ec := map[string]string{"tenant": "general-hospital", "kind": "imaging"}
	expect := map[string]string{"tenant": "general-hospital"}

	start := time.Now()
	res, err := first.Put(ctx, o.bucket, o.key, io.NewSectionReader(f, 0, size), ec, &s3crypt.PutOptions{Size: size, SizeKnown: true})
	if err != nil {
		return err
	}
	took := time.Since(start)
	parts := (res.ObjectSize + partSize - 1) / partSize
	fmt.Fprintf(out, "4. Put s3://%s/%s: %d bytes of plaintext became a %d-byte object (%d bytes of header, tags and frame headers), "+
		"uploaded in %d part(s) of up to %s while it was sealed, in %v (%.1f MiB/s)\n",
		o.bucket, o.key, res.Size, res.ObjectSize, res.ObjectSize-res.Size, parts, mib(partSize), took.Round(time.Millisecond), throughput(res.Size, took))

	off := size / 3
	n := min(int64(1<<20)+12345, size-off)
	gets.Store(0)
	got, err := first.GetRange(ctx, o.bucket, o.key, off, n, expect)
	if err != nil {
		return err
	}
	want := make([]byte, n)
	if _, err := f.ReadAt(want, off); err != nil && !(errors.Is(err, io.EOF) && off+n == size) {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("GetRange(%d, %d) returned bytes that differ from the file", off, n)
	}
	fmt.Fprintf(out, "5. GetRange read plaintext bytes [%d, %d) with %d GET request(s) (the header, then exactly the frames the range touches): they match the file\n",
		off, off+n, gets.Load())

	sum, err := getHash(ctx, first, o.bucket, o.key, expect)
	if err != nil {
		return err
	}
	if sum != fileHash {
		return errors.New("the plaintext Get returned differs from the file")
	}
	fmt.Fprintf(out, "6. Get streamed the whole object back, each frame authenticated: its SHA-256 matches the file's\n")

	secondKR, err := keyring.NewKMS(keyring.KMSConfig{Client: kc, Generator: keyARNs[1]})
	if err != nil {
		return err
	}
	// The last bytes of the object: within its frames (the body is at
	// least as long as the plaintext), which a rewrap leaves as they are.
	tailLen := min(64<<10, res.Size)
	tailBefore, err := objectTail(ctx, s3c, o.bucket, o.key, tailLen)
	if err != nil {
		return err
	}
	start = time.Now()
	if err := rewrap(ctx, first, o.bucket, o.key, secondKR, expect); err != nil {
		return err
	}
	took = time.Since(start)
	tailAfter, err := objectTail(ctx, s3c, o.bucket, o.key, tailLen)
	if err != nil {
		return err
	}
	if !bytes.Equal(tailBefore, tailAfter) {
		return errors.New("the rewrap changed the object's last frames: the body was encrypted again")
	}
	fmt.Fprintf(out, "7. rewrapped the object's data key from the first KMS key to the second in %v: only the header changed (the last %d bytes of the object, its final frames, are the same bytes)\n",
		took.Round(time.Millisecond), len(tailAfter))

	second, err := kmsClient(kc, s3c, keyARNs[1])
	if err != nil {
		return err
	}
	sum, err = getHash(ctx, second, o.bucket, o.key, expect)
	if err != nil {
		return fmt.Errorf("a client with only the second key: %w", err)
	}
	if sum != fileHash {
		return errors.New("after the rewrap, Get returned a plaintext that differs from the file")
	}
	got, err = second.GetRange(ctx, o.bucket, o.key, off, n, expect)
	if err != nil {
		return fmt.Errorf("a client with only the second key: %w", err)
	}
	if !bytes.Equal(got, want) {
		return errors.New("after the rewrap, GetRange returned bytes that differ from the file")
	}
	fmt.Fprintf(out, "8. a client with only the second key reads it: Get's SHA-256 and the same range match the file\n")

	// A fresh client: first's header cache still holds the data key it
	// unwrapped before the rewrap.
	stale, err := kmsClient(kc, s3c, keyARNs[0])
	if err != nil {
		return err
	}
	if _, err := getHash(ctx, stale, o.bucket, o.key, expect); !errors.Is(err, phicrypt.ErrNoKey) {
		return fmt.Errorf("a client with only the first key: want phicrypt.ErrNoKey, got %v", err)
	}
	if _, err := stale.GetRange(ctx, o.bucket, o.key, off, n, expect); !errors.Is(err, phicrypt.ErrNoKey) {
		return fmt.Errorf("a client with only the first key, ranged: want phicrypt.ErrNoKey, got %v", err)
	}
	fmt.Fprintf(out, "9. a client with only the first key can no longer read it (Get and GetRange): %v\n", phicrypt.ErrNoKey)

	if !o.keep {
		if _, err := s3c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(o.bucket), Key: aws.String(o.key)}); err != nil {
			return fmt.Errorf("DeleteObject: %w", err)
		}
		fmt.Fprintf(out, "10. deleted the object (-keep keeps it)\n")
	}
	return nil
}

// rewrap moves the object's data key to the keyring to with s3crypt's
// Rewrap, which does not decrypt the object's body.
func rewrap(ctx context.Context, c *s3crypt.Client, bucket, key string, to keyring.Keyring, expect map[string]string) error {
	_, err := c.Rewrap(ctx, bucket, key, to, expect)
	return err
}

// objectTail returns the last n bytes of the stored object, as they are
// (none when n is 0).
func objectTail(ctx context.Context, c *s3.Client, bucket, key string, n int64) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	res, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Range: aws.String(fmt.Sprintf("bytes=-%d", n))})
	if err != nil {
		return nil, fmt.Errorf("GetObject: %w", err)
	}
	defer res.Body.Close()
	return io.ReadAll(io.LimitReader(res.Body, n))
}

// kmsClient is an s3crypt Client over s3c whose Encryptor holds only the
// KMS key keyARN.
func kmsClient(kc *kms.Client, s3c *s3.Client, keyARN string) (*s3crypt.Client, error) {
	kr, err := keyring.NewKMS(keyring.KMSConfig{Client: kc, Generator: keyARN})
	if err != nil {
		return nil, err
	}
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr})
	if err != nil {
		return nil, err
	}
	return s3crypt.New(s3crypt.Config{S3: s3c, Encryptor: enc, PartSize: partSize})
}

// ensureBucket creates bucket unless it exists; created reports whether it
// did.
func ensureBucket(ctx context.Context, c *s3.Client, bucket string) (created bool, err error) {
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err == nil {
		return false, nil
	}
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	var owned *s3types.BucketAlreadyOwnedByYou
	if errors.As(err, &owned) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("CreateBucket %s: %w", bucket, err)
	}
	return true, nil
}

// generate writes size random bytes to a new file at path.
func generate(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func hashOf(r io.Reader) ([sha256.Size]byte, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return [sha256.Size]byte{}, err
	}
	return [sha256.Size]byte(h.Sum(nil)), nil
}

// getHash reads the object whole through c and hashes its plaintext.
func getHash(ctx context.Context, c *s3crypt.Client, bucket, key string, expect map[string]string) ([sha256.Size]byte, error) {
	r, err := c.Get(ctx, bucket, key, expect)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	defer r.Close()
	return hashOf(r)
}

func mib(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func throughput(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / (1 << 20) / d.Seconds()
}

// countGets counts the GET requests sent through it.
type countGets struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c *countGets) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet {
		c.n.Add(1)
	}
	return c.next.RoundTrip(r)
}
