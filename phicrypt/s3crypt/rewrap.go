package s3crypt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// RewrapResult describes an object Rewrap rewrote.
type RewrapResult struct {
	// ETag and VersionID are the new object's.
	ETag, VersionID string
	// Downloaded is the bytes Rewrap fetched from the object; Copied the
	// bytes S3 copied from the old object into the new one without them
	// leaving the server (UploadPartCopy).
	Downloaded, Copied int64
}

// Rewrap moves the object bucket/key to another keyring without
// decrypting its body: this Client's Encryptor authenticates the object's
// header (expect lists context pairs it must carry) and unwraps its data
// key, to wraps the same data key, and the object is written again as the
// new header followed by the old body, byte for byte (the body's frames do
// not depend on the wrapped keys). Afterwards a Client whose keyring holds
// only to's keys reads it; the old keyring no longer does, though older
// versions, where the bucket keeps them, are left as they were.
//
// The object is rewritten only if it is still the version whose header was
// read: every request after the first carries its ETag (If-Match on reads,
// CopySourceIfMatch on copies, If-Match on the final PutObject or
// CompleteMultipartUpload), so where the server checks that condition
// atomically with the write (Amazon S3; MinIO on unversioned buckets) a
// concurrent overwrite is never lost; Rewrap then fails with an error
// wrapping ErrChanged and may be called again. MinIO on a versioned bucket
// checks it before committing: a concurrent write can land just before the
// rewrite and be hidden by it (kept in the version history); Rewrap lists
// the versions after writing and reports ErrChanged when it sees one there.
// Before anything is written the object's final frame is authenticated,
// so an object cut short or extended is refused (ErrTruncated). (A signed object's download
// cut short by an overwrite is told apart from a damaged object by a HEAD.) An object smaller than twice PartSize is downloaded whole and put
// again. A larger one becomes a multipart upload whose first part is the
// new header and the first PartSize bytes of the old body (one ranged GET)
// and whose other parts S3 copies from the old object (UploadPartCopy), so
// only about PartSize bytes travel. A signed object (suite 0x0578) is
// downloaded and uploaded whole, since its signature covers every byte: its
// old signature is checked as it streams through and a new signing key
// signs it. The Content-Type and the user metadata are kept (the recorded
// header length updated); tags, ACLs, storage class and other system
// metadata are not copied. A failed Rewrap aborts its multipart upload and
// leaves the object as it was.
func (c *Client) Rewrap(ctx context.Context, bucket, key string, to keyring.Keyring, expect map[string]string) (*RewrapResult, error) {
	res, err := c.rewrap(ctx, bucket, key, to, expect)
	if err != nil {
		if !errors.Is(err, ErrChanged) && (isPreconditionFailed(err) || isNoSuchKey(err)) {
			err = fmt.Errorf("%w: %w", ErrChanged, err)
		}
		return nil, wrap("rewrap", bucket, key, err)
	}
	c.cache.forget(bucket, key)
	return res, nil
}

func (c *Client) rewrap(ctx context.Context, bucket, key string, to keyring.Keyring, expect map[string]string) (*RewrapResult, error) {
	if to == nil {
		return nil, errors.New("the keyring to wrap the data key with is nil")
	}
	src, err := c.fetchHeader(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	res, err := c.rewrapSource(ctx, src, to, expect)
	if err == nil {
		err = c.followsSource(ctx, src, res.VersionID)
	}
	if err != nil && !errors.Is(err, ErrChanged) && !isPreconditionFailed(err) && c.changed(ctx, src) {
		// A request that failed because the object was overwritten under
		// it (a stream cut short, a connection the server dropped on a
		// failed condition) is a change, not a damaged object.
		err = fmt.Errorf("%w: %w", ErrChanged, err)
	}
	return res, err
}

// rewrapSource rewrites the object version src.
func (c *Client) rewrapSource(ctx context.Context, src *source, to keyring.Keyring, expect map[string]string) (*RewrapResult, error) {
	newHeader, old, err := c.enc.RewrapHeaderMessage(ctx, src.header, expect, to)
	if errors.Is(err, phicrypt.ErrSignedRewrap) {
		return c.rewrapSigned(ctx, src, to, expect)
	}
	if err != nil {
		return nil, err
	}
	// The body is carried over unread: refuse an object whose length
	// shows it cut short or extended, or whose last frame is not the final
	// frame sealed there, rather than carry the damage forward.
	layout, err := src.checkLength(old.Layout(src.total))
	if err != nil {
		return nil, err
	}
	checkEnd := func(final []byte) error {
		if err := old.CheckFinal(layout, final); err != nil {
			return fmt.Errorf("%w: %w", ErrTruncated, err)
		}
		return nil
	}
	meta := maps.Clone(src.meta)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[metaHeaderLen] = strconv.Itoa(len(newHeader))
	if src.total < 2*c.part {
		return c.rewrapWhole(ctx, src, newHeader, meta, func(obj []byte) error {
			return checkEnd(obj[int64(len(newHeader))+layout.FinalFrameStart()-src.headerLen:])
		})
	}
	final := make([]byte, src.total-layout.FinalFrameStart())
	if err := c.rangeInto(ctx, src, final, layout.FinalFrameStart()); err != nil {
		return nil, err
	}
	if err := checkEnd(final); err != nil {
		return nil, err
	}
	return c.rewrapCopy(ctx, src, newHeader, meta)
}

// abortUpload aborts a multipart upload under a context of its own, and
// again while the server still lists it: a part copy the caller's
// cancellation cut short on the client may still be running on the
// server, and finish after the first abort.
func (c *Client) abortUpload(ctx context.Context, src *source, uploadID *string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	for range 5 {
		_, _ = c.s3.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(src.bucket), Key: aws.String(src.key), UploadId: uploadID})
		ups, err := c.s3.ListMultipartUploads(actx, &s3.ListMultipartUploadsInput{Bucket: aws.String(src.bucket), Prefix: aws.String(src.key)})
		if err != nil {
			return
		}
		left := false
		for _, u := range ups.Uploads {
			left = left || aws.ToString(u.UploadId) == aws.ToString(uploadID)
		}
		if !left {
			return
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-actx.Done():
			return
		}
	}
}

// followsSource checks, on a versioned bucket, that the version just
// written directly follows the version src read. A server whose
// conditional write is not atomic with its commit (MinIO on versioned
// buckets) can let another writer's version land in between; the new
// version then hides it, and Rewrap reports ErrChanged, naming nothing
// but the fact: the other version is kept in the bucket's history.
func (c *Client) followsSource(ctx context.Context, src *source, written string) error {
	if written == "" || src.versionID == "" {
		return nil // not versioned
	}
	out, err := c.s3.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(src.bucket), Prefix: aws.String(src.key), MaxKeys: aws.Int32(100)})
	if err != nil {
		return fmt.Errorf("the object's versions cannot be listed to check that no write came between: %w", err)
	}
	var ids []string // this key's versions, newest first
	for _, v := range out.Versions {
		if aws.ToString(v.Key) == src.key {
			ids = append(ids, aws.ToString(v.VersionId))
		}
	}
	for i, id := range ids {
		if id != written {
			continue
		}
		if i+1 < len(ids) && ids[i+1] != src.versionID {
			return fmt.Errorf("%w: another version was written between the one rewrapped and the rewrite, which now hides it (it is kept in the bucket's version history)", ErrChanged)
		}
		return nil
	}
	return nil
}

// changed reports whether the object is no longer the version src read
// (overwritten or deleted), as far as a HEAD can tell.
func (c *Client) changed(ctx context.Context, src *source) bool {
	head, err := c.s3.HeadObject(context.WithoutCancel(ctx), &s3.HeadObjectInput{Bucket: aws.String(src.bucket), Key: aws.String(src.key)})
	if err != nil {
		var ae smithy.APIError
		return errors.As(err, &ae) && (ae.ErrorCode() == "NotFound" || ae.ErrorCode() == "NoSuchKey")
	}
	return aws.ToString(head.ETag) != src.etag
}

// rangeInto fills dst with the source object's bytes from off on.
func (c *Client) rangeInto(ctx context.Context, src *source, dst []byte, off int64) error {
	if len(dst) == 0 {
		return nil
	}
	out, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(src.bucket), Key: aws.String(src.key),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+int64(len(dst))-1)), IfMatch: aws.String(src.etag)})
	if err != nil {
		return err
	}
	defer out.Body.Close()
	n, err := io.ReadFull(out.Body, dst)
	src.downloaded += int64(n)
	if err != nil {
		return fmt.Errorf("%w: the ranged GET returned fewer bytes than asked: %w", ErrTruncated, err)
	}
	return nil
}

// withHeader returns a buffer of the new header followed by bytes
// [off, end) of the old object: the request bodies are seekable, so the
// SDK can sign and retry them.
func (c *Client) withHeader(ctx context.Context, src *source, newHeader []byte, off, end int64) ([]byte, error) {
	runHook(ctx, hookBeforeBody)
	buf := make([]byte, int64(len(newHeader))+end-off)
	copy(buf, newHeader)
	rest := buf[len(newHeader):]
	if off < int64(len(src.header)) {
		// The header fetch brought the body's first bytes already.
		k := copy(rest, src.header[off:])
		rest, off = rest[k:], off+int64(k)
	}
	return buf, c.rangeInto(ctx, src, rest, off)
}

// rewrapWhole puts the new header and the old body as one object.
func (c *Client) rewrapWhole(ctx context.Context, src *source, newHeader []byte, meta map[string]string, check func(obj []byte) error) (*RewrapResult, error) {
	obj, err := c.withHeader(ctx, src, newHeader, src.headerLen, src.total)
	if err != nil {
		return nil, err
	}
	if err := check(obj); err != nil {
		return nil, err
	}
	runHook(ctx, hookBeforeComplete)
	out, err := c.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(src.bucket), Key: aws.String(src.key),
		Body: bytes.NewReader(obj), ContentLength: aws.Int64(int64(len(obj))), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		Metadata: meta, ContentType: src.contentType, IfMatch: aws.String(src.etag)})
	if err != nil {
		return nil, err
	}
	return &RewrapResult{ETag: aws.ToString(out.ETag), VersionID: aws.ToString(out.VersionId), Downloaded: src.downloaded}, nil
}

// S3's limits on multipart uploads.
const maxParts = 10000

// rewrapCopy writes the new object as a multipart upload: part 1 is the
// new header and the first PartSize bytes of the old body, the other parts
// are copied by S3 from the old object.
func (c *Client) rewrapCopy(ctx context.Context, src *source, newHeader []byte, meta map[string]string) (res *RewrapResult, err error) {
	first, err := c.withHeader(ctx, src, newHeader, src.headerLen, src.headerLen+c.part)
	if err != nil {
		return nil, err
	}
	ranges, err := copyRanges(src.headerLen+c.part, src.total, c.part)
	if err != nil {
		return nil, err
	}
	// Created under a context of its own: a cancellation that arrived
	// while the server created the upload would leave an upload whose id
	// was never read, and so never aborted.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	up, err := c.s3.CreateMultipartUpload(cctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(src.bucket), Key: aws.String(src.key),
		Metadata: meta, ContentType: src.contentType})
	ccancel()
	if err != nil {
		return nil, err
	}
	uploadID := up.UploadId
	defer func() {
		if err != nil {
			// The caller's context may be what ended the upload.
			c.abortUpload(ctx, src, uploadID)
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	parts := make([]types.CompletedPart, 1+len(ranges))
	p1, err := c.s3.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(src.bucket), Key: aws.String(src.key), UploadId: uploadID,
		PartNumber: aws.Int32(1), Body: bytes.NewReader(first), ContentLength: aws.Int64(int64(len(first)))})
	if err != nil {
		return nil, err
	}
	parts[0] = types.CompletedPart{PartNumber: aws.Int32(1), ETag: p1.ETag}
	runHook(ctx, hookBeforeCopy)
	if err := c.copyParts(ctx, src, uploadID, ranges, parts[1:]); err != nil {
		return nil, err
	}
	runHook(ctx, hookBeforeComplete)
	out, err := c.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(src.bucket), Key: aws.String(src.key),
		UploadId: uploadID, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}, IfMatch: aws.String(src.etag)})
	if err != nil {
		return nil, err
	}
	copied := src.total - src.headerLen - c.part
	return &RewrapResult{ETag: aws.ToString(out.ETag), VersionID: aws.ToString(out.VersionId), Downloaded: src.downloaded, Copied: copied}, nil
}

// byteRange is [start, end) of the old object.
type byteRange struct{ start, end int64 }

// copyRanges splits [start, end) into parts S3 accepts: at least 5 MiB
// each but the last, at most 5 GiB, at most 9999 of them (part 1 is the
// uploaded one). A short tail joins the part before it.
func copyRanges(start, end, partSize int64) ([]byteRange, error) {
	n := end - start
	if n <= 0 {
		return nil, nil
	}
	size := max(partSize, (n+maxParts-2)/(maxParts-1))
	if size > maxPartSize {
		return nil, fmt.Errorf("the object is too large to copy in %d parts", maxParts)
	}
	var out []byteRange
	for off := start; off < end; off += size {
		out = append(out, byteRange{off, min(off+size, end)})
	}
	if k := len(out); k > 1 && out[k-1].end-out[k-1].start < minPartSize {
		merged := byteRange{out[k-2].start, out[k-1].end}
		out = out[:k-1]
		if merged.end-merged.start <= maxPartSize {
			out[k-2] = merged
		} else {
			mid := merged.start + (merged.end-merged.start)/2
			out[k-2] = byteRange{merged.start, mid}
			out = append(out, byteRange{mid, merged.end})
		}
	}
	return out, nil
}

// copyParts copies ranges of the old object into parts 2, 3, ... of the
// upload, Concurrency at a time, filling parts.
func (c *Client) copyParts(ctx context.Context, src *source, uploadID *string, ranges []byteRange, parts []types.CompletedPart) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	copySource := url.PathEscape(src.bucket + "/" + src.key)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range min(c.conc, len(ranges)) {
		wg.Go(func() {
			for i := range next {
				r := ranges[i]
				out, err := c.s3.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: aws.String(src.bucket), Key: aws.String(src.key),
					UploadId: uploadID, PartNumber: aws.Int32(int32(i + 2)), CopySource: aws.String(copySource),
					CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", r.start, r.end-1)), CopySourceIfMatch: aws.String(src.etag)})
				if err == nil && (out.CopyPartResult == nil || out.CopyPartResult.ETag == nil) {
					err = errors.New("the server's UploadPartCopy answer has no ETag")
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
					continue
				}
				parts[i] = types.CompletedPart{PartNumber: aws.Int32(int32(i + 2)), ETag: out.CopyPartResult.ETag}
			}
		})
	}
	for i := range ranges {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// rewrapSigned streams a signed object through phicrypt.SignedRewrap: the
// new header, the old body as stored, and the new footer, uploaded with
// If-Match on the old ETag.
func (c *Client) rewrapSigned(ctx context.Context, src *source, to keyring.Keyring, expect map[string]string) (*RewrapResult, error) {
	sr, err := c.enc.RewrapSigned(ctx, src.header, expect, to)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runHook(ctx, hookBeforeBody)
	// The body: what the header fetch brought beyond the header, then the
	// rest.
	counted := &countingReader{r: bytes.NewReader(nil)}
	body := io.Reader(bytes.NewReader(src.header[src.headerLen:]))
	if fetched := int64(len(src.header)); fetched < src.total {
		out, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(src.bucket), Key: aws.String(src.key),
			Range: aws.String(fmt.Sprintf("bytes=%d-%d", fetched, src.total-1)), IfMatch: aws.String(src.etag)})
		if err != nil {
			return nil, err
		}
		defer out.Body.Close()
		counted.r = out.Body
		body = io.MultiReader(body, counted)
	}
	newHeader := sr.Header()
	meta := maps.Clone(src.meta)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[metaHeaderLen] = strconv.Itoa(len(newHeader))
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(passSigned(pw, body, sr))
	}()
	runHook(ctx, hookBeforeComplete)
	up, err := c.tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: aws.String(src.bucket), Key: aws.String(src.key),
		Body: io.MultiReader(bytes.NewReader(newHeader), pr), Metadata: meta, ContentType: src.contentType, IfMatch: aws.String(src.etag)})
	pr.CloseWithError(errUploadEnded)
	if err != nil {
		return nil, err
	}
	return &RewrapResult{ETag: aws.ToString(up.ETag), VersionID: aws.ToString(up.VersionID), Downloaded: src.downloaded + counted.n}, nil
}

// passSigned streams the old body and footer from r to w through sr (its
// frames unchanged, then the new footer). A body that ends early, a frame
// longer than the frame length or bytes after the signature are damage:
// ErrTruncated, beside phicrypt's own sentinel.
func passSigned(w io.Writer, r io.Reader, sr *phicrypt.SignedRewrap) error {
	err := sr.CopyBody(w, r)
	if errors.Is(err, phicrypt.ErrMalformed) {
		return fmt.Errorf("%w: %w", ErrTruncated, err)
	}
	return err
}

func isNoSuchKey(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "NoSuchKey"
}

// A test's hook, in the context Rewrap is given (rewrap_export_test.go):
// called with the name of the step about to run.
type rewrapHookKey struct{}

// hookBeforeBody names the step that downloads the old body (all of it, or
// the first PartSize bytes).
const hookBeforeBody = "before-body"

// hookBeforeCopy names the step that copies the old body's other parts.
const hookBeforeCopy = "before-copy"

// hookBeforeComplete names the step that writes the new object (PutObject,
// CompleteMultipartUpload, or the signed object's upload).
const hookBeforeComplete = "before-complete"

func runHook(ctx context.Context, step string) {
	if f, ok := ctx.Value(rewrapHookKey{}).(func(string)); ok {
		f(step)
	}
}

var errUploadEnded = errors.New("s3crypt: the upload ended")

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
