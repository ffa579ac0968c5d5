package s3crypt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
)

// PutOptions are optional settings of Put.
type PutOptions struct {
	// Size is the plaintext's length, when SizeKnown says it is known.
	// It is then recorded in the object's metadata, so a ranged reader
	// notices an object cut short or extended before reading its end,
	// and Put fails with ErrSizeMismatch (storing nothing) if the body's
	// length differs.
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

func (c *Client) put(ctx context.Context, bucket, key string, src io.Reader, ec map[string]string, opts *PutOptions) (*PutResult, error) {
	if opts == nil {
		opts = &PutOptions{}
	}
	if opts.SizeKnown && opts.Size < 0 {
		return nil, errors.New("negative Size")
	}
	if src == nil {
		return nil, errors.New("the body is nil")
	}
	fs, err := c.enc.NewFrameSealer(ctx, ec)
	if err != nil {
		return nil, err
	}
	header := fs.Header()
	want := int64(-1)
	if opts.SizeKnown {
		want = opts.Size
	}
	body := newSealingReader(src, fs, c.workers, want)
	meta := map[string]string{
		metaFormat:      formatESDKv2,
		metaFrameLength: strconv.Itoa(fs.FrameLength()),
		metaHeaderLen:   strconv.Itoa(len(header)),
	}
	if opts.SizeKnown {
		meta[metaPlaintext] = strconv.FormatInt(opts.Size, 10)
	}
	in := &transfermanager.UploadObjectInput{
		Bucket:   aws.String(bucket),
		Key:      aws.String(key),
		Body:     body,
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
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w: %w", cerr, err)
		}
		return nil, err
	}
	c.cache.forget(bucket, key)
	return &PutResult{ETag: aws.ToString(out.ETag), VersionID: aws.ToString(out.VersionID), Size: body.plain,
		ObjectSize: aws.ToInt64(out.ContentLength)}, nil
}
