package s3crypt

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// download is an object's body fetched as ranged GETs of PartSize, up to
// Concurrency of them ahead of the reader, in order. Each GET after the
// first is conditional on the first one's ETag, and each response is read
// to exactly its range's length: a server that sends more, or never stops,
// costs no more memory than a part. (The transfer manager's download reads
// whole responses, however long, so Get does not use it.)
type download struct {
	etag      string
	versionID string
	meta      map[string]string
	total     int64
	cur       []byte
	parts     chan chan part
	cancel    context.CancelFunc
	err       error
}

type part struct {
	b   []byte
	err error
}

// startDownload fetches the first part and starts fetching the others.
func (c *Client) startDownload(ctx context.Context, bucket, key string) (*download, error) {
	ctx, cancel := context.WithCancel(ctx)
	first, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Range: aws.String(fmt.Sprintf("bytes=0-%d", c.part-1))})
	if err != nil {
		cancel()
		if isInvalidRange(err) {
			// An empty object: no range of it exists.
			return &download{cancel: func() {}, parts: closedParts()}, nil
		}
		return nil, err
	}
	d := &download{etag: aws.ToString(first.ETag), versionID: aws.ToString(first.VersionId), meta: first.Metadata, cancel: cancel}
	if d.total, err = totalSize(first); err != nil {
		first.Body.Close()
		cancel()
		return nil, err
	}
	b, err := readExactly(first.Body, min(c.part, d.total))
	first.Body.Close()
	if err != nil {
		cancel()
		return nil, err
	}
	d.cur = b
	d.parts = make(chan chan part, c.conc)
	go func() {
		defer close(d.parts)
		for off := c.part; off < d.total; off += c.part {
			f := make(chan part, 1)
			select {
			case d.parts <- f:
			case <-ctx.Done():
				return
			}
			go func(off int64) {
				n := min(c.part, d.total-off)
				out, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
					Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1)), IfMatch: aws.String(d.etag)})
				if err != nil {
					f <- part{err: err}
					return
				}
				b, err := readExactly(out.Body, n)
				out.Body.Close()
				f <- part{b: b, err: err}
			}(off)
		}
	}()
	return d, nil
}

func closedParts() chan chan part {
	c := make(chan chan part)
	close(c)
	return c
}

// readExactly reads n bytes of r, no more.
func readExactly(r io.Reader, n int64) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%w: a ranged GET returned fewer bytes than asked: %w", ErrTruncated, err)
	}
	return b, nil
}

func (d *download) Read(p []byte) (int, error) {
	for len(d.cur) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		f, ok := <-d.parts
		if !ok {
			return 0, io.EOF
		}
		pt := <-f
		if pt.err != nil {
			d.err = pt.err
			if errors.Is(pt.err, context.Canceled) {
				d.err = fmt.Errorf("the download was stopped: %w", pt.err)
			}
			return 0, d.err
		}
		d.cur = pt.b
	}
	n := copy(p, d.cur)
	d.cur = d.cur[n:]
	return n, nil
}

// close stops the fetches under way.
func (d *download) close() { d.cancel() }
