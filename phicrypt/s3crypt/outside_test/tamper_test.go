package outside_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

const (
	tfl   = 4096
	tsize = 3*tfl + 100
	tfr   = 4 + 12 + tfl + 16 // a regular frame on the wire
)

// tamperRig stores one good object and hands out its bytes and metadata.
type tamperRig struct {
	*rig
	pt   []byte
	body []byte
	meta map[string]string
	hl   int
}

func newTamperRig(t *testing.T) *tamperRig {
	env := s3test.New(t)
	r := newRig(t, env, tfl)
	pt := rnd(tsize)
	r.put(t, "good", pt, map[string]string{"tenant": "a"})
	body, meta, _ := r.rawGet(t, "good")
	hl, err := strconv.Atoi(meta["phicrypt-header-length"])
	if err != nil {
		t.Fatalf("header length metadata: %v (%v)", err, meta)
	}
	if len(body) != hl+3*tfr+4+4+12+4+100+16 {
		t.Fatalf("object is %d bytes; the layout of docs/FORMAT.md gives %d", len(body), hl+3*tfr+4+4+12+4+100+16)
	}
	return &tamperRig{rig: r, pt: pt, body: body, meta: meta, hl: hl}
}

// store writes body and meta under key raw.
func (tr *tamperRig) store(t *testing.T, key string, body []byte, meta map[string]string) {
	tr.rawPut(t, key, body, meta)
}

// rangeRes reads [off, off+n) with a fresh Client (no cached header).
func (tr *tamperRig) rangeRes(t *testing.T, key string, off, n int64, expect map[string]string) ([]byte, error) {
	c := tr.another(t)
	var b []byte
	var err error
	noPanic(t, "GetRange "+key, func() { b, err = c.GetRange(context.Background(), tr.bucket, key, off, n, expect) })
	return b, err
}

func (tr *tamperRig) mustFail(t *testing.T, what string, key string, off, n int64, expect map[string]string, targets ...error) {
	t.Helper()
	b, err := tr.rangeRes(t, key, off, n, expect)
	if err == nil {
		t.Errorf("%s: GetRange(%d, %d) returned %d bytes and no error (right bytes: %v)", what, off, n, len(b), bytes.Equal(b, tr.pt[min(off, int64(len(tr.pt))):min(off+n, int64(len(tr.pt)))]))
	} else if !isOneOf(err, targets...) {
		t.Errorf("%s: GetRange(%d, %d): %v, want one of %v", what, off, n, err, targets)
	}
}

func (tr *tamperRig) mustRead(t *testing.T, what, key string, off, n int64, expect map[string]string) {
	t.Helper()
	b, err := tr.rangeRes(t, key, off, n, expect)
	if err != nil {
		t.Errorf("%s: GetRange(%d, %d): %v", what, off, n, err)
	} else if !bytes.Equal(b, tr.pt[off:min(off+n, int64(len(tr.pt)))]) {
		t.Errorf("%s: GetRange(%d, %d): wrong bytes", what, off, n)
	}
}

// getFails reads the whole object with Get and wants an error wrapping one
// of targets, and no plaintext past what authenticated frames hold.
func (tr *tamperRig) getFails(t *testing.T, what, key string, expect map[string]string, targets ...error) {
	t.Helper()
	var got []byte
	var err error
	noPanic(t, "Get "+key, func() { got, err = tr.getAll(context.Background(), tr.c, key, expect) })
	if err == nil {
		t.Errorf("%s: Get read %d bytes and no error", what, len(got))
	} else if !isOneOf(err, targets...) {
		t.Errorf("%s: Get: %v, want one of %v", what, err, targets)
	}
	if len(got) > 0 && !bytes.Equal(got, tr.pt[:min(len(got), len(tr.pt))]) {
		t.Errorf("%s: Get returned wrong bytes", what)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func without(m map[string]string, k string) map[string]string {
	c := copyMeta(m)
	delete(c, k)
	return c
}

func with(m map[string]string, k, v string) map[string]string {
	c := copyMeta(m)
	c[k] = v
	return c
}

func TestTamperedFrames(t *testing.T) {
	tr := newTamperRig(t)
	hl := tr.hl
	// A flipped bit in the header's tag: every read fails.
	tr.store(t, "hdr", flip(tr.body, hl-3), tr.meta)
	tr.mustFail(t, "header tag", "hdr", 0, 10, nil, phicrypt.ErrAuthentication)
	tr.getFails(t, "header tag", "hdr", nil, phicrypt.ErrAuthentication)
	// A flipped bit in the message id (byte 5): key commitment or tag fails.
	tr.store(t, "msgid", flip(tr.body, 5), tr.meta)
	tr.mustFail(t, "message id", "msgid", 0, 10, nil, phicrypt.ErrAuthentication, phicrypt.ErrNoKey)
	tr.getFails(t, "message id", "msgid", nil, phicrypt.ErrAuthentication, phicrypt.ErrNoKey)

	// Frame 1 altered: reads touching it fail, others do not.
	tr.store(t, "f1", flip(tr.body, hl+tfr+100), tr.meta)
	tr.mustFail(t, "frame 1", "f1", tfl, 10, nil, phicrypt.ErrAuthentication)
	tr.mustFail(t, "frame 1 (straddling)", "f1", tfl-5, 10, nil, phicrypt.ErrAuthentication)
	tr.mustRead(t, "frame 0 beside a bad frame 1", "f1", 0, 10, nil)
	tr.mustRead(t, "frame 2 beside a bad frame 1", "f1", 2*tfl, 10, nil)
	tr.getFails(t, "frame 1", "f1", nil, phicrypt.ErrAuthentication)
	// Frame 1's sequence number altered.
	tr.store(t, "f1seq", flip(tr.body, hl+tfr+3), tr.meta)
	tr.mustFail(t, "frame 1 seq", "f1seq", tfl, 10, nil, phicrypt.ErrAuthentication, phicrypt.ErrMalformed)
	// Frames 1 and 2 swapped.
	sw := bytes.Clone(tr.body)
	copy(sw[hl+tfr:], tr.body[hl+2*tfr:hl+3*tfr])
	copy(sw[hl+2*tfr:], tr.body[hl+tfr:hl+2*tfr])
	tr.store(t, "swap12", sw, tr.meta)
	tr.mustFail(t, "frames swapped", "swap12", tfl, 10, nil, phicrypt.ErrAuthentication, phicrypt.ErrMalformed)
	tr.mustFail(t, "frames swapped", "swap12", 2*tfl, 10, nil, phicrypt.ErrAuthentication, phicrypt.ErrMalformed)
	// The final frame altered (content, then its length field).
	tr.store(t, "final", flip(tr.body, len(tr.body)-20), tr.meta)
	tr.mustFail(t, "final frame", "final", tsize-10, 10, nil, phicrypt.ErrAuthentication)
	tr.mustRead(t, "frame 0 beside a bad final frame", "final", 0, 10, nil)
	tr.getFails(t, "final frame", "final", nil, phicrypt.ErrAuthentication)
	tr.store(t, "finallen", flip(tr.body, hl+3*tfr+4+4+12+3), tr.meta)
	tr.mustFail(t, "final frame length", "finallen", tsize-10, 10, nil, messageErrs...)
	tr.getFails(t, "final frame length", "finallen", nil, messageErrs...)
	// The final-frame marker of the final frame turned into a regular one.
	tr.store(t, "finalmark", flip(tr.body, hl+3*tfr), tr.meta)
	tr.mustFail(t, "final marker", "finalmark", tsize-10, 10, nil, messageErrs...)
	tr.getFails(t, "final marker", "finalmark", nil, messageErrs...)
}

func TestTruncatedAndExtended(t *testing.T) {
	tr := newTamperRig(t)
	hl := tr.hl
	noLen := without(tr.meta, "phicrypt-plaintext-length")
	cases := []struct {
		name string
		body []byte
	}{
		{"final-frame-cut", tr.body[:hl+3*tfr]},
		{"two-frames-cut", tr.body[:hl+2*tfr]},
		{"one-byte-cut", tr.body[:len(tr.body)-1]},
		{"cut-inside-frame-1", tr.body[:hl+tfr+50]},
		{"header-only", tr.body[:hl]},
		{"one-byte-added", append(bytes.Clone(tr.body), 0)},
		{"frame-added", append(bytes.Clone(tr.body), tr.body[hl+tfr:hl+2*tfr]...)},
		{"final-frame-repeated", append(bytes.Clone(tr.body), tr.body[hl+3*tfr:]...)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// With the plaintext length recorded: refused at once, even for
			// a read of frame 0.
			tr.store(t, "recorded/"+tc.name, tc.body, tr.meta)
			tr.mustFail(t, "recorded length", "recorded/"+tc.name, 0, 10, nil, s3crypt.ErrTruncated)
			// Without: the read that reaches the end fails.
			tr.store(t, "unrecorded/"+tc.name, tc.body, noLen)
			tr.mustFail(t, "no recorded length, read to the end", "unrecorded/"+tc.name, 0, 1<<40, nil, s3crypt.ErrTruncated)
			// Get: README "an object cut short or extended fails with
			// ErrTruncated", Get as ranged reads.
			tr.getFails(t, "Get", "recorded/"+tc.name, nil, s3crypt.ErrTruncated)
			tr.getFails(t, "Get (no recorded length)", "unrecorded/"+tc.name, nil, s3crypt.ErrTruncated)
		})
	}
}

// TestMetadataLies: metadata is not trusted; lies about the header length
// or frame length change nothing, a wrong plaintext length is ErrTruncated.
func TestMetadataLies(t *testing.T) {
	tr := newTamperRig(t)
	for i, v := range []string{"0", "1", strconv.Itoa(tr.hl - 1), strconv.Itoa(tr.hl + 1), "4096", "4097", "100000", "1048576", "1048577",
		"9223372036854775807", "99999999999999999999", "-5", "garbage", "", " 12", "0x10"} {
		key := fmt.Sprintf("hl/%d", i)
		tr.store(t, key, tr.body, with(tr.meta, "phicrypt-header-length", v))
		tr.mustRead(t, "header length "+strconv.Quote(v), key, 0, 10, nil)
		tr.mustRead(t, "header length "+strconv.Quote(v), key, tsize-50, 100, nil)
	}
	for i, v := range []string{"1", "17", "65536", "garbage", "-1"} {
		key := fmt.Sprintf("fl/%d", i)
		tr.store(t, key, tr.body, with(tr.meta, "phicrypt-frame-length", v))
		tr.mustRead(t, "frame length "+v, key, tfl-3, 10, nil)
	}
	tr.store(t, "fmt", tr.body, with(tr.meta, "phicrypt-format", "something-else"))
	tr.mustRead(t, "format", "fmt", 5, 10, nil)
	tr.store(t, "nometa", tr.body, nil)
	tr.mustRead(t, "no metadata", "nometa", tsize-50, 100, nil)
	for i, v := range []string{"0", strconv.Itoa(tsize - 1), strconv.Itoa(tsize + 1), strconv.Itoa(tsize + tfl)} {
		key := fmt.Sprintf("pl/%d", i)
		tr.store(t, key, tr.body, with(tr.meta, "phicrypt-plaintext-length", v))
		tr.mustFail(t, "plaintext length "+v, key, 0, 10, nil, s3crypt.ErrTruncated)
	}
	// A garbage plaintext length is ignored (not a number is not a claim).
	tr.store(t, "pl/garbage", tr.body, with(tr.meta, "phicrypt-plaintext-length", "lots"))
	tr.mustRead(t, "plaintext length garbage", "pl/garbage", 0, 10, nil)
}

// TestSwappedBodies: object b's key holds object a's message (body and
// metadata). A reader expecting b's context is refused, with or without
// b's header cached.
func TestSwappedBodies(t *testing.T) {
	tr := newTamperRig(t)
	ctx := context.Background()
	tr.put(t, "b", rnd(500), map[string]string{"tenant": "b"})
	if _, err := tr.c.GetRange(ctx, tr.bucket, "b", 0, 10, map[string]string{"tenant": "b"}); err != nil {
		t.Fatal(err)
	}
	tr.store(t, "b", tr.body, tr.meta) // a's message, under b
	_, err := tr.c.GetRange(ctx, tr.bucket, "b", 0, 10, map[string]string{"tenant": "b"})
	if !errors.Is(err, phicrypt.ErrContext) {
		t.Errorf("GetRange of a swapped body with b's header cached: %v, want ErrContext", err)
	}
	tr.mustFail(t, "swapped", "b", 0, 10, map[string]string{"tenant": "b"}, phicrypt.ErrContext)
	tr.getFails(t, "swapped", "b", map[string]string{"tenant": "b"}, phicrypt.ErrContext)
	// Two keys' frames mixed: a's header with b's frames.
	bb, bm, _ := tr.rawGet(t, "b")
	_ = bb
	tr.put(t, "c", rnd(tsize), map[string]string{"tenant": "a"})
	cb, _, _ := tr.rawGet(t, "c")
	mixed := append(bytes.Clone(tr.body[:tr.hl]), cb[tr.hl:]...)
	tr.store(t, "mixed", mixed, bm)
	tr.mustFail(t, "a's header, c's frames", "mixed", tfl, 10, nil, phicrypt.ErrAuthentication)
	tr.mustFail(t, "a's header, c's frames", "mixed", 0, tsize, nil, phicrypt.ErrAuthentication)
	tr.getFails(t, "a's header, c's frames", "mixed", nil, phicrypt.ErrAuthentication)
}

// TestNotAMessage: objects that are no message at all, and headers with
// huge lengths, are clear errors.
func TestNotAMessage(t *testing.T) {
	tr := newTamperRig(t)
	for _, tc := range []struct {
		name string
		body []byte
		meta map[string]string
	}{
		{"empty", nil, nil},
		{"empty-with-meta", nil, tr.meta},
		{"five-bytes", []byte("hello"), nil},
		{"text", bytes.Repeat([]byte("patient record\n"), 1000), nil},
		{"random-5k", rnd(5000), nil},
		{"random-2MiB-huge-hl", rnd(2 << 20), map[string]string{"phicrypt-header-length": "1048576"}},
		{"zeros", make([]byte, 100000), nil},
		{"header-only-v2-byte", []byte{0x02}, nil},
	} {
		// An empty object, or one shorter than a header, is "not a
		// message" (ErrMalformed), not an S3 failure. (Get wraps
		// ErrMalformed for the same objects.)
		t.Run(tc.name, func(t *testing.T) {
			tr.store(t, "nm/"+tc.name, tc.body, tc.meta)
			tr.mustFail(t, tc.name, "nm/"+tc.name, 0, 10, nil, phicrypt.ErrMalformed, s3crypt.ErrTruncated)
			tr.getFails(t, tc.name, "nm/"+tc.name, nil, phicrypt.ErrMalformed, s3crypt.ErrTruncated)
		})
	}
	// The header's AAD length (bytes 35-36 of a v2 header) set to 0xFFFF:
	// the header claims to be far longer than it is.
	huge := bytes.Clone(tr.body)
	huge[35], huge[36] = 0xFF, 0xFF
	// The object ends inside the claimed header: ErrMalformed.
	tr.store(t, "nm/huge-aad", huge, tr.meta)
	tr.mustFail(t, "huge AAD length", "nm/huge-aad", 0, 10, nil, messageErrs...)
	tr.getFails(t, "huge AAD length", "nm/huge-aad", nil, messageErrs...)
	// A real header followed by 3 MiB of zeros, AAD length 0xFFFF.
	big := append(bytes.Clone(huge[:tr.hl]), make([]byte, 3<<20)...)
	tr.store(t, "nm/huge-aad-big", big, nil)
	tr.mustFail(t, "huge AAD length, big object", "nm/huge-aad-big", 0, 10, nil, messageErrs...)
}
