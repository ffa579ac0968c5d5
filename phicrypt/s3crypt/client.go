package s3crypt

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/phicrypt/phicrypt/internal/flight"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// Config configures a Client. S3 and Encryptor are required.
type Config struct {
	// S3 is the client objects are stored with.
	S3 *s3.Client
	// Encryptor writes and reads the messages. Its frame length is the
	// granularity of ranged reads (a read fetches whole frames), and its
	// Workers seal a stream's frames in parallel.
	Encryptor *phicrypt.Encryptor
	// PartSize is the size of each part of a multipart upload and of each
	// ranged GET of a download (default 8 MiB, at least 5 MiB, the least S3
	// accepts for every part but the last).
	PartSize int64
	// Concurrency is how many parts are uploaded or downloaded at once
	// (default 3). Memory of a Put or Get is about (Concurrency+1)·PartSize
	// whatever the object's size.
	Concurrency int
	// Workers seal the frames of each part in parallel as the part is
	// filled (default GOMAXPROCS, at most 64).
	Workers int
	// HeaderCacheSize bounds how many opened headers ranged reads keep
	// (default 256; negative turns the cache off). A cached header holds
	// its message's derived key.
	HeaderCacheSize int
	// HeaderCacheTTL bounds how long an opened header is reused (default
	// one minute): a key destroyed or disabled in the meantime stops ranged
	// reads of objects under it within this time (Forget at once).
	HeaderCacheTTL time.Duration
	// Legacy, when set, lets Get, GetRange and Migrate read objects written
	// by the Amazon S3 Encryption Client. Without it they are refused.
	Legacy *LegacyConfig
}

const (
	defaultPartSize    = 8 << 20
	minPartSize        = 5 << 20
	maxPartSize        = 5 << 30
	defaultConcurrency = 3
	maxConcurrency     = 64
	defaultCacheSize   = 256
	defaultCacheTTL    = time.Minute
	// abortTimeout bounds the clean-up of a failed upload.
	abortTimeout = 30 * time.Second
	// maxHeaderFetch caps the bytes fetched to find a header.
	maxHeaderFetch = 1 << 20
	// firstHeaderFetch is the first ranged GET of an object: a header
	// with a few KMS-wrapped keys fits; its response's metadata says how
	// much more to fetch when one does not.
	firstHeaderFetch = 1 << 10
)

// Client stores and reads encrypted objects. It is safe for concurrent use.
type Client struct {
	s3      *s3.Client
	enc     *phicrypt.Encryptor
	tm      *transfermanager.Client
	part    int64
	conc    int
	workers int
	legacy  *LegacyConfig
	cache   *headerCache
	opens   *flight.Group[objectKey, *Object]
}

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.S3 == nil || cfg.Encryptor == nil {
		return nil, errors.New("s3crypt: Config needs S3 and Encryptor")
	}
	part := cfg.PartSize
	if part == 0 {
		part = defaultPartSize
	}
	if part < minPartSize || part > maxPartSize {
		return nil, fmt.Errorf("s3crypt: PartSize %d is outside [%d, %d]", part, minPartSize, maxPartSize)
	}
	conc := cfg.Concurrency
	if conc == 0 {
		conc = defaultConcurrency
	}
	if conc < 1 || conc > maxConcurrency {
		return nil, fmt.Errorf("s3crypt: Concurrency %d is outside [1, %d]", conc, maxConcurrency)
	}
	workers := cfg.Workers
	if workers == 0 {
		workers = min(runtime.GOMAXPROCS(0), maxConcurrency)
	}
	if workers < 1 || workers > maxConcurrency {
		return nil, fmt.Errorf("s3crypt: Workers %d is outside [1, %d]", workers, maxConcurrency)
	}
	if cfg.Legacy != nil {
		if err := cfg.Legacy.validate(); err != nil {
			return nil, err
		}
	}
	size, ttl := cfg.HeaderCacheSize, cfg.HeaderCacheTTL
	if size == 0 {
		size = defaultCacheSize
	}
	if ttl == 0 {
		ttl = defaultCacheTTL
	}
	if ttl < 0 {
		return nil, errors.New("s3crypt: HeaderCacheTTL is negative")
	}
	tm := transfermanager.New(cfg.S3, func(o *transfermanager.Options) {
		o.PartSizeBytes = part
		// The first part is read whole before the upload starts: no more
		// than one part.
		o.MultipartUploadThreshold = part
		o.Concurrency = conc
		o.GetObjectBufferSize = part * int64(conc)
		// A failed upload is aborted under a context of its own, so a
		// cancelled Put leaves no multipart upload behind.
		o.FailTimeout = abortTimeout
		// Ranges of PartSize, whatever part sizes the object was
		// uploaded with.
		o.GetObjectType = tmtypes.GetObjectRanges
	})
	return &Client{s3: cfg.S3, enc: cfg.Encryptor, tm: tm, part: part, conc: conc, workers: workers, legacy: cfg.Legacy,
		cache: newHeaderCache(size, ttl), opens: flight.New[objectKey, *Object](flight.DefaultTimeout)}, nil
}

// Forget drops the cached header of one object, so the next ranged read
// opens it again through the keyring.
func (c *Client) Forget(bucket, key string) { c.cache.forget(bucket, key) }

// ForgetAll drops every cached header.
func (c *Client) ForgetAll() { c.cache.forgetAll() }

// Redaction: a Client caches opened headers (derived keys, encryption
// contexts), an Object holds one, a Reader buffers plaintext. Each prints
// only its kind under every fmt verb and in log/slog, and encoding/json
// sees no exported fields.

// Format implements fmt.Formatter: "s3crypt.Config" whatever the verb (its
// S3 client holds credentials, which fmt would walk into).
func (Config) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "s3crypt.Config") }

// LogValue implements slog.LogValuer.
func (Config) LogValue() slog.Value { return slog.StringValue("s3crypt.Config") }

// Format implements fmt.Formatter: "s3crypt.Client" whatever the verb.
func (Client) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "s3crypt.Client") }

// LogValue implements slog.LogValuer.
func (Client) LogValue() slog.Value { return slog.StringValue("s3crypt.Client") }

// Format implements fmt.Formatter: "s3crypt.Object" whatever the verb.
func (Object) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "s3crypt.Object") }

// LogValue implements slog.LogValuer.
func (Object) LogValue() slog.Value { return slog.StringValue("s3crypt.Object") }

// Format implements fmt.Formatter: "s3crypt.Reader" whatever the verb.
func (Reader) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "s3crypt.Reader") }

// LogValue implements slog.LogValuer.
func (Reader) LogValue() slog.Value { return slog.StringValue("s3crypt.Reader") }

// Object metadata, as S3 user metadata (x-amz-meta-...). None of it is
// trusted: it plans reads, the message authenticates them.
const (
	metaFormat      = "phicrypt-format"
	metaFrameLength = "phicrypt-frame-length"
	metaHeaderLen   = "phicrypt-header-length"
	metaPlaintext   = "phicrypt-plaintext-length"
	formatESDKv2    = "aws-esdk-message-v2"
)

// recorded reads a non-negative integer from metadata; ok is false when it
// is absent or not one.
func recorded(meta map[string]string, name string) (int64, bool) {
	s, ok := meta[name]
	if !ok || len(s) > 19 {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// objectError names the object a failure concerns. Object keys are the
// caller's names; context values never reach here.
type objectError struct {
	op, bucket, key string
	err             error
}

func (e *objectError) Error() string {
	return "s3crypt: " + e.op + " s3://" + e.bucket + "/" + e.key + ": " + e.err.Error()
}

func (e *objectError) Unwrap() error { return e.err }

func wrap(op, bucket, key string, err error) error {
	if err == nil {
		return nil
	}
	var oe *objectError
	if errors.As(err, &oe) || strings.Contains(err.Error(), "s3://"+bucket+"/"+key+":") {
		return err // it names the object already
	}
	return &objectError{op: op, bucket: bucket, key: key, err: err}
}

// Errors of this package; every error wraps the cause too (phicrypt's
// sentinels for the message itself, S3's API errors for requests).
var (
	// ErrTruncated: the object is shorter or longer than the message it
	// claims to hold (its length disagrees with the recorded plaintext
	// length, or its last frame was not sealed as the final one).
	ErrTruncated = errors.New("s3crypt: the object was cut short or extended")
	// ErrChanged: the object changed while it was being read (its ETag no
	// longer matches the header's), twice in a row.
	ErrChanged = errors.New("s3crypt: the object changed while it was read")
	// ErrSignedRange: ranged reads of a signed message (suite 0x0578) are
	// refused, since its signature covers every byte; use Get.
	ErrSignedRange = errors.New("s3crypt: a signed message can only be read whole, since its signature covers every byte")
	// ErrLegacyNotAllowed: the object was written by the Amazon S3
	// Encryption Client and the Client has no LegacyConfig.
	ErrLegacyNotAllowed = errors.New("s3crypt: the object was written by the Amazon S3 Encryption Client; set Config.Legacy to read it")
	// ErrLegacyRange: ranged reads and Rewrap are refused for objects of
	// the Amazon S3 Encryption Client: its format has no separate header,
	// and its own ranged reads are unauthenticated. Use Get, or Migrate
	// the object first.
	ErrLegacyRange = errors.New("s3crypt: ranged reads and rewrap are not offered for objects of the Amazon S3 Encryption Client; use Get, or Migrate the object first")
	// ErrSizeMismatch: Put was told a size the body did not have.
	ErrSizeMismatch = errors.New("s3crypt: the body's length is not the size given")
)

// headerCache keeps opened headers by object, bounded in count and age.
type headerCache struct {
	mu    sync.Mutex
	size  int
	ttl   time.Duration
	items map[objectKey]*cachedHeader
	now   func() time.Time
}

type objectKey struct{ bucket, key string }

type cachedHeader struct {
	obj     *Object
	expires time.Time
	used    time.Time
}

func newHeaderCache(size int, ttl time.Duration) *headerCache {
	return &headerCache{size: size, ttl: ttl, items: map[objectKey]*cachedHeader{}, now: time.Now}
}

func (hc *headerCache) get(bucket, key string) *Object {
	if hc.size < 0 {
		return nil
	}
	hc.mu.Lock()
	defer hc.mu.Unlock()
	k := objectKey{bucket, key}
	it := hc.items[k]
	if it == nil {
		return nil
	}
	now := hc.now()
	if !now.Before(it.expires) {
		delete(hc.items, k)
		return nil
	}
	it.used = now
	return it.obj
}

func (hc *headerCache) put(o *Object) {
	if hc.size < 0 {
		return
	}
	hc.mu.Lock()
	defer hc.mu.Unlock()
	k := objectKey{o.bucket, o.key}
	if _, ok := hc.items[k]; !ok && len(hc.items) >= hc.size {
		// Evict the least recently used; the cache is small.
		var oldest objectKey
		var at time.Time
		first := true
		for ok, it := range hc.items {
			if first || it.used.Before(at) {
				oldest, at, first = ok, it.used, false
			}
		}
		delete(hc.items, oldest)
	}
	now := hc.now()
	hc.items[k] = &cachedHeader{obj: o, expires: now.Add(hc.ttl), used: now}
}

// drop removes o if it is still the cached header of its object.
func (hc *headerCache) drop(o *Object) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	k := objectKey{o.bucket, o.key}
	if it := hc.items[k]; it != nil && it.obj == o {
		delete(hc.items, k)
	}
}

func (hc *headerCache) forget(bucket, key string) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	delete(hc.items, objectKey{bucket, key})
}

func (hc *headerCache) forgetAll() {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	clear(hc.items)
}
