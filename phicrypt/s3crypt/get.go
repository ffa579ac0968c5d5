package s3crypt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/phicrypt/phicrypt/phicrypt"
)

// Reader is the plaintext of an object, decrypted as it is read. Close
// must be called; it stops the download.
type Reader struct {
	r       io.Reader
	ec      map[string]string
	cancel  context.CancelFunc
	bucket  string
	key     string
	failed  error
	version string
}

// Read implements io.Reader. The last Read returns io.EOF only after the
// message's final frame (and signature, for signed suites) verified.
func (r *Reader) Read(p []byte) (int, error) {
	if r.failed != nil {
		return 0, r.failed
	}
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.failed = wrap("get", r.bucket, r.key, classify(err))
		return n, r.failed
	}
	return n, err
}

// Close stops the download.
func (r *Reader) Close() error {
	r.cancel()
	return nil
}

// EncryptionContext returns the object's encryption context.
func (r *Reader) EncryptionContext() map[string]string { return maps.Clone(r.ec) }

// VersionID is the S3 version read, when the bucket keeps versions.
func (r *Reader) VersionID() string { return r.version }

// Get opens the object bucket/key for reading. expect lists context pairs
// the object must carry. The header is authenticated before Get returns;
// the body is downloaded in parts (PartSize, Concurrency at once) and
// decrypted as it is read, each frame authenticated before its plaintext is
// returned. Objects of the Amazon S3 Encryption Client are read whole (up
// to LegacyConfig.MaxObjectBytes) and authenticated before the first byte
// is returned.
func (c *Client) Get(ctx context.Context, bucket, key string, expect map[string]string) (*Reader, error) {
	r, err := c.get(ctx, bucket, key, expect)
	return r, wrap("get", bucket, key, err)
}

func (c *Client) get(ctx context.Context, bucket, key string, expect map[string]string) (*Reader, error) {
	d, err := c.startDownload(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	if isLegacy(d.meta) || c.unmarkedLegacy(ctx, bucket, key, d.meta) {
		pt, ec, err := c.readLegacy(ctx, bucket, key, d)
		d.close()
		if err == nil {
			err = checkLegacyContext(ec, expect)
		}
		if err != nil {
			clear(pt)
			return nil, err
		}
		return &Reader{r: bytes.NewReader(pt), ec: ec, cancel: func() {}, bucket: bucket, key: key, version: d.versionID}, nil
	}
	pr, err := c.enc.NewReader(ctx, d, expect)
	if err != nil {
		d.close()
		return nil, err
	}
	return &Reader{r: pr, ec: pr.EncryptionContext(), cancel: d.close, bucket: bucket, key: key, version: d.versionID}, nil
}

// Object is one stored object opened for ranged reads: its header
// authenticated, its layout known. It implements io.ReaderAt over the
// plaintext; each ReadAt is one ranged GET of the frames it touches, made
// only if the object still has the ETag the header came from. It is safe
// for concurrent use.
type Object struct {
	c         *Client
	bucket    string
	key       string
	etag      string
	versionID string
	header    []byte // as fetched, to open again with other expected pairs
	msg       *phicrypt.Message
	layout    phicrypt.Layout
}

// Size is the plaintext's length, from the object's length. An object cut
// short at a frame boundary is noticed when a read reaches its end, where
// the last frame is not the final one (or, when the plaintext length was
// recorded at Put, at once).
func (o *Object) Size() int64 { return o.layout.PlaintextSize }

// ETag is the S3 ETag of the object version the header came from.
func (o *Object) ETag() string { return o.etag }

// EncryptionContext returns the object's encryption context.
func (o *Object) EncryptionContext() map[string]string { return o.msg.EncryptionContext() }

// ReadAt implements io.ReaderAt over the plaintext. It cannot be
// cancelled: against a server that may stall, use ReadAtContext.
func (o *Object) ReadAt(p []byte, off int64) (int, error) {
	return o.ReadAtContext(context.Background(), p, off)
}

// ReadAtContext is ReadAt under ctx.
func (o *Object) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, wrap("read", o.bucket, o.key, errors.New("negative offset"))
	}
	n := min(int64(len(p)), max(o.layout.PlaintextSize-off, 0))
	// Frames are decrypted whole: past n they need room p does not
	// lend (its capacity beyond its length is the caller's).
	out, err := o.read(ctx, p[:0:n], off, n)
	if err != nil {
		return 0, err
	}
	if len(out) > 0 && &out[0] != &p[0] {
		copy(p, out)
		clear(out)
	}
	if len(out) < len(p) {
		return len(out), io.EOF
	}
	return len(out), nil
}

// read appends plaintext [off, off+n) to dst with one ranged GET.
func (o *Object) read(ctx context.Context, dst []byte, off, n int64) ([]byte, error) {
	if n == 0 {
		return dst, nil
	}
	start, end := o.layout.Span(off, n)
	out, err := o.c.s3.GetObject(ctx, &s3.GetObjectInput{
		Bucket:  aws.String(o.bucket),
		Key:     aws.String(o.key),
		Range:   aws.String(fmt.Sprintf("bytes=%d-%d", start, end-1)),
		IfMatch: aws.String(o.etag),
	})
	if err != nil {
		return dst, wrap("read", o.bucket, o.key, classify(err))
	}
	defer out.Body.Close()
	if aws.ToString(out.ETag) != o.etag {
		// A server that ignores If-Match on GET still names the version
		// it sent.
		return dst, wrap("read", o.bucket, o.key, classify(errStale))
	}
	// Read what arrives, up to the range's length: memory follows the
	// bytes received, not the length the server claims.
	var body bytes.Buffer
	body.Grow(int(min(end-start, initialRoom)))
	if k, err := io.CopyN(&body, out.Body, end-start); err != nil || k != end-start {
		return dst, wrap("read", o.bucket, o.key, fmt.Errorf("%w: the ranged GET returned fewer bytes than asked: %v", ErrTruncated, err))
	}
	buf := body.Bytes()
	res, err := o.msg.OpenFrames(dst, o.layout, start, buf, off, n)
	if err != nil {
		if errors.Is(err, phicrypt.ErrMalformed) && end == o.layout.MessageSize {
			err = fmt.Errorf("%w: %w", ErrTruncated, err)
		}
		return dst, wrap("read", o.bucket, o.key, err)
	}
	return res, nil
}

// GetRange returns plaintext bytes [off, off+n) of the object bucket/key,
// fewer only where the object ends first (an offset at or past the end
// returns none). It fetches the header once per object version (cached,
// see Config.HeaderCacheTTL) and the frames the range touches with one
// ranged GET; every frame used is authenticated.
func (c *Client) GetRange(ctx context.Context, bucket, key string, off, n int64, expect map[string]string) ([]byte, error) {
	if off < 0 || n < 0 {
		return nil, wrap("read", bucket, key, errors.New("negative offset or length"))
	}
	for attempt := 0; ; attempt++ {
		o, err := c.Open(ctx, bucket, key, expect)
		if err != nil {
			return nil, err
		}
		if attempt == 0 && n > o.layout.PlaintextSize-off && !c.current(ctx, o) {
			// A range past the end of a cached object that has changed
			// since (it may have grown): open it afresh.
			c.cache.drop(o)
			if o, err = c.Open(ctx, bucket, key, expect); err != nil {
				return nil, err
			}
		}
		k := min(n, max(o.layout.PlaintextSize-off, 0))
		// Room grows with the bytes that arrive, not with the length the
		// server claims for the object.
		out, err := o.read(ctx, make([]byte, 0, min(k, initialRoom)), off, k)
		if err != nil && isPreconditionFailed(err) {
			// The object changed since its header was cached.
			c.cache.drop(o)
			if attempt == 0 {
				continue
			}
			return nil, wrap("read", bucket, key, classify(err))
		}
		return out, err
	}
}

// initialRoom bounds what a read reserves before any byte has arrived.
const initialRoom = 1 << 20

// current reports whether o's object still has o's ETag (a HEAD: no body,
// no keyring call).
func (c *Client) current(ctx context.Context, o *Object) bool {
	head, err := c.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(o.bucket), Key: aws.String(o.key)})
	return err == nil && aws.ToString(head.ETag) == o.etag
}

// Open opens the object bucket/key for ranged reads. expect lists context
// pairs the object must carry. A header opened before (within
// HeaderCacheTTL) is reused without any request; otherwise one ranged GET
// fetches the header (its length recorded in the metadata; more is fetched
// if the metadata lies) and the keyring unwraps the data key.
func (c *Client) Open(ctx context.Context, bucket, key string, expect map[string]string) (*Object, error) {
	o := c.cache.get(bucket, key)
	if o == nil {
		// One header fetch and keyring call per object for every caller
		// that wants it at the same time.
		var err error
		o, err, _ = c.opens.Do(ctx, objectKey{bucket, key}, func(ctx context.Context) (*Object, error) {
			if o := c.cache.get(bucket, key); o != nil {
				return o, nil
			}
			o, err := c.open(ctx, bucket, key, nil)
			if err == nil {
				c.cache.put(o)
			}
			return o, err
		})
		if err != nil {
			if len(expect) == 0 || !errors.Is(err, phicrypt.ErrNoKey) {
				return nil, wrap("open", bucket, key, err)
			}
			// A message whose context holds pairs it does not store opens
			// only with them: try the caller's.
			if o, err = c.open(ctx, bucket, key, expect); err != nil {
				return nil, wrap("open", bucket, key, err)
			}
			return o, nil
		}
	}
	if o.msg.MatchesContext(expect) {
		return o, nil
	}
	// Expected pairs the header does not store are authenticated by its
	// tag: open the cached bytes again with them.
	msg, err := c.enc.OpenHeader(ctx, o.header, expect)
	if err != nil {
		return nil, wrap("open", bucket, key, err)
	}
	o2 := *o
	o2.msg = msg
	return &o2, nil
}

func (c *Client) open(ctx context.Context, bucket, key string, expect map[string]string) (*Object, error) {
	src, err := c.fetchHeader(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	msg, err := c.enc.OpenHeader(ctx, src.header, expect)
	if err != nil {
		return nil, err
	}
	if msg.Signed() {
		return nil, ErrSignedRange
	}
	layout, err := src.checkLength(msg.Layout(src.total))
	if err != nil {
		return nil, err
	}
	return &Object{c: c, bucket: bucket, key: key, etag: src.etag, versionID: src.versionID,
		header: src.header[:src.headerLen], msg: msg, layout: layout}, nil
}

// source is one version of an object as its header fetch found it.
type source struct {
	bucket, key string
	etag        string
	versionID   string
	contentType *string
	meta        map[string]string
	total       int64  // the object's length
	header      []byte // the header and possibly more of the body
	headerLen   int64
	downloaded  int64 // bytes fetched from the object
}

// checkLength refuses an object whose length fits no message (l and err
// are a Layout's results) or disagrees with the plaintext length Put
// recorded.
func (src *source) checkLength(l phicrypt.Layout, err error) (phicrypt.Layout, error) {
	if err != nil {
		return l, fmt.Errorf("%w: %w", ErrTruncated, err)
	}
	if want, ok := recorded(src.meta, metaPlaintext); ok && want != l.PlaintextSize {
		return l, fmt.Errorf("%w: the object holds %d bytes of plaintext; %d were stored", ErrTruncated, l.PlaintextSize, want)
	}
	return l, nil
}

// fetchHeader fetches an object's header with ranged GETs: the length its
// metadata records (or a first guess), more if that was not enough (the
// metadata is not trusted), every GET after the first conditional on the
// first one's ETag. The first response also gives the ETag, the length
// and the metadata, so no HEAD is needed.
func (c *Client) fetchHeader(ctx context.Context, bucket, key string) (*source, error) {
	src := &source{bucket: bucket, key: key}
	want := int64(firstHeaderFetch)
	for {
		in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Range: aws.String(fmt.Sprintf("bytes=0-%d", want-1))}
		if src.etag != "" {
			in.IfMatch = aws.String(src.etag)
		}
		out, err := c.s3.GetObject(ctx, in)
		if err != nil {
			if isInvalidRange(err) {
				return nil, fmt.Errorf("%w: the object is empty, so it holds no message: %w", phicrypt.ErrMalformed, err)
			}
			return nil, classify(err)
		}
		if src.etag == "" {
			src.etag, src.meta, src.versionID, src.contentType = aws.ToString(out.ETag), out.Metadata, aws.ToString(out.VersionId), out.ContentType
			if src.total, err = totalSize(out); err != nil {
				out.Body.Close()
				return nil, err
			}
			if isLegacy(src.meta) {
				out.Body.Close()
				if c.legacy == nil {
					return nil, fmt.Errorf("%w; %w", ErrLegacyRange, ErrLegacyNotAllowed)
				}
				return nil, ErrLegacyRange
			}
			if src.etag == "" {
				out.Body.Close()
				return nil, errors.New("the server returned no ETag, so later requests could not be made conditional on this version")
			}
			if h, ok := recorded(src.meta, metaHeaderLen); ok && h > want && h <= maxHeaderFetch && h <= src.total {
				// The metadata says how long the header is: fetch that.
				out.Body.Close()
				want = h
				continue
			}
		}
		src.header, err = io.ReadAll(io.LimitReader(out.Body, want))
		out.Body.Close()
		src.downloaded += int64(len(src.header))
		if err != nil {
			return nil, err
		}
		hl, err := c.enc.HeaderLength(src.header)
		if errors.Is(err, phicrypt.ErrShortHeader) {
			if int64(len(src.header)) == want && want < maxHeaderFetch && want < src.total {
				want = min(want*4, maxHeaderFetch)
				continue
			}
			if int64(len(src.header)) >= src.total {
				return nil, fmt.Errorf("%w: the object ends inside its header: %w", phicrypt.ErrMalformed, err)
			}
			return nil, fmt.Errorf("%w: the header is longer than %d bytes: %w", phicrypt.ErrLimit, maxHeaderFetch, err)
		}
		if err != nil {
			return nil, err
		}
		src.headerLen = int64(hl)
		return src, nil
	}
}

// totalSize reads the object's length from a ranged GET's Content-Range
// ("bytes a-b/total"), or its Content-Length when the whole object came.
func totalSize(out *s3.GetObjectOutput) (int64, error) {
	cr := aws.ToString(out.ContentRange)
	if cr == "" {
		return aws.ToInt64(out.ContentLength), nil
	}
	i := strings.LastIndexByte(cr, '/')
	if i < 0 {
		return 0, errors.New("the server's Content-Range has no total length")
	}
	n, err := strconv.ParseInt(cr[i+1:], 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("the server's Content-Range has no total length")
	}
	return n, nil
}

// classify adds this package's sentinel to a failure of a read whose
// cause has one: a body that ends early or runs on (ErrTruncated), an
// object replaced while it was read (ErrChanged).
func classify(err error) error {
	var me *phicrypt.MessageError
	switch {
	case errors.As(err, &me) && me.Stage == phicrypt.StageFrame && errors.Is(err, phicrypt.ErrMalformed) && !errors.Is(err, ErrTruncated):
		return fmt.Errorf("%w: %w", ErrTruncated, err)
	case isPreconditionFailed(err) && !errors.Is(err, ErrChanged):
		return fmt.Errorf("%w: %w", ErrChanged, err)
	}
	return err
}

// errStale: a ranged GET returned another version of the object than the
// one whose header is cached.
var errStale = errors.New("the object's ETag is no longer the one its header came from")

func isInvalidRange(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange"
}

func isPreconditionFailed(err error) bool {
	var ae smithy.APIError
	return errors.Is(err, errStale) || errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || strings.Contains(ae.ErrorCode(), "412"))
}
