package s3crypt

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
)

// PutOptions are optional settings of Put.
type PutOptions struct {
	// Size is the plaintext's length when known (-1 or 0 with
	// SizeKnown false: unknown). When known it is recorded in the object's
	// metadata, so a ranged reader notices an object cut short or
	// extended before reading its end, and Put fails with ErrSizeMismatch
	// if the body's length differs (nothing is stored then).
	Size      int64
	SizeKnown bool
	// ContentType is stored as the object's Content-Type (it describes
	// the ciphertext's plaintext; leave it empty when even that is
	// sensitive).
	ContentType string
	// IfNoneMatch "*" stores the object only if the key holds none yet;
	// IfMatch stores it only if the key's current ETag is this one.
	IfNoneMatch, IfMatch string
}

// PutResult describes a stored object.
type PutResult struct {
	ETag      string
	VersionID string
	// Size is the plaintext's length; ObjectSize the stored message's.
	Size, ObjectSize int64
}

// Put encrypts body under the encryption context ec and stores it as the
// object bucket/key. The body is read once, as a stream; memory stays near
// (Concurrency+1)·PartSize whatever its length. A failed Put leaves no
// object (the multipart upload is aborted).
func (c *Client) Put(ctx context.Context, bucket, key string, body io.Reader, ec map[string]string, opts *PutOptions) (*PutResult, error) {
	res, err := c.put(ctx, bucket, key, body, ec, opts)
	return res, wrap("put", bucket, key, err)
}

func (c *Client) put(ctx context.Context, bucket, key string, body io.Reader, ec map[string]string, opts *PutOptions) (*PutResult, error) {
	if opts == nil {
		opts = &PutOptions{}
	}
	if opts.SizeKnown && opts.Size < 0 {
		return nil, errors.New("negative Size")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The writer writes the header as it is made; catch it, so its length
	// can go in the metadata before the upload starts.
	sink := &headerSink{}
	w, err := c.enc.NewWriter(ctx, sink, ec)
	if err != nil {
		return nil, err
	}
	header := sink.buf.Bytes()
	pr, pw := io.Pipe()
	sink.w = pw
	counted := &countingReader{r: body}
	go func() {
		_, err := io.Copy(w, counted)
		if err == nil && opts.SizeKnown && counted.n != opts.Size {
			err = ErrSizeMismatch
		}
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err) // nil closes with io.EOF
	}()
	meta := map[string]string{
		metaFormat:      formatESDKv2,
		metaFrameLength: strconv.FormatInt(c.frameLength(header), 10),
		metaHeaderLen:   strconv.Itoa(len(header)),
	}
	if opts.SizeKnown {
		meta[metaPlaintext] = strconv.FormatInt(opts.Size, 10)
	}
	in := &transfermanager.UploadObjectInput{
		Bucket:   aws.String(bucket),
		Key:      aws.String(key),
		Body:     io.MultiReader(bytes.NewReader(header), pr),
		Metadata: meta,
	}
	if opts.ContentType != "" {
		in.ContentType = aws.String(opts.ContentType)
	}
	if opts.IfNoneMatch != "" {
		in.IfNoneMatch = aws.String(opts.IfNoneMatch)
	}
	if opts.IfMatch != "" {
		in.IfMatch = aws.String(opts.IfMatch)
	}
	out, err := c.tm.UploadObject(ctx, in)
	// Stop the sealing goroutine if the upload ended early.
	pr.CloseWithError(errUploadEnded)
	if err != nil {
		return nil, err
	}
	c.cache.forget(bucket, key)
	n := counted.n
	return &PutResult{ETag: aws.ToString(out.ETag), VersionID: aws.ToString(out.VersionID), Size: n,
		ObjectSize: aws.ToInt64(out.ContentLength)}, nil
}

var errUploadEnded = errors.New("s3crypt: the upload ended")

// frameLength reads the frame length from a header this package's
// Encryptor just wrote (version 2: it follows the content type, before the
// 32-byte commitment and the 16-byte tag).
func (c *Client) frameLength(header []byte) int64 {
	if len(header) < 4+32+16 {
		return 0
	}
	b := header[len(header)-16-32-4:]
	return int64(b[0])<<24 | int64(b[1])<<16 | int64(b[2])<<8 | int64(b[3])
}

// headerSink keeps what is written before w is set (the header), then
// passes writes on to w.
type headerSink struct {
	buf bytes.Buffer
	w   io.Writer
}

func (s *headerSink) Write(p []byte) (int, error) {
	if s.w == nil {
		return s.buf.Write(p)
	}
	return s.w.Write(p)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
