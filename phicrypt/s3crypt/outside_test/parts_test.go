package outside_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"testing/iotest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

// TestPartBoundaries: sizes around the part size, frames that straddle
// parts (frame lengths 1000, 64 KiB, 4 MiB with 5 MiB parts), bodies that
// read one byte at a time or return data with io.EOF; each object reads
// back whole and ranged, and PutResult agrees with S3.
func TestPartBoundaries(t *testing.T) {
	env := s3test.New(t)
	ctx := context.Background()
	for _, fl := range []int{1000, 64 << 10, 4 << 20} {
		r := newRig(t, env, fl, smallParts, func(c *s3crypt.Config) { c.Workers = 8 })
		for _, size := range []int{5*mib - 1, 5 * mib, 5*mib + 1, 10*mib + 12345} {
			for _, mode := range []string{"plain", "onebyte", "dataerr", "unknown-size"} {
				if mode != "plain" && (fl != 64<<10 || size != 5*mib+1) {
					continue
				}
				name := fmt.Sprintf("fl=%d/size=%d/%s", fl, size, mode)
				t.Run(name, func(t *testing.T) {
					pt := rnd(size)
					var body io.Reader = bytes.NewReader(pt)
					opts := &s3crypt.PutOptions{Size: int64(size), SizeKnown: true}
					switch mode {
					case "onebyte":
						body = iotest.OneByteReader(body)
					case "dataerr":
						body = iotest.DataErrReader(body)
					case "unknown-size":
						opts = nil
					}
					res, err := r.c.Put(ctx, r.bucket, name, body, nil, opts)
					if err != nil {
						t.Fatalf("Put: %v", err)
					}
					head, err := r.raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(name)})
					if err != nil {
						t.Fatal(err)
					}
					if res.Size != int64(size) {
						t.Errorf("PutResult.Size %d, want %d", res.Size, size)
					}
					// PutResult doc: "ObjectSize the stored message's".
					if res.ObjectSize != aws.ToInt64(head.ContentLength) {
						t.Errorf("PutResult.ObjectSize %d, the object is %d bytes", res.ObjectSize, aws.ToInt64(head.ContentLength))
					}
					// (The in-process S3 reports another ETag for multipart
					// objects than it returns later; MinIO agrees with itself.)
					if env.Real && res.ETag != aws.ToString(head.ETag) {
						t.Errorf("PutResult.ETag %q, the object's is %q", res.ETag, aws.ToString(head.ETag))
					}
					got, err := r.getAll(ctx, r.c, name, nil)
					if err != nil || !bytes.Equal(got, pt) {
						t.Errorf("Get: %d bytes, %v", len(got), err)
					}
					for _, off := range []int{0, 5*mib - 40, size - 7} {
						b, err := r.c.GetRange(ctx, r.bucket, name, int64(off), 100, nil)
						if err != nil || !bytes.Equal(b, pt[off:min(off+100, size)]) {
							t.Errorf("GetRange(%d): %v", off, err)
						}
					}
				})
			}
		}
	}
}
