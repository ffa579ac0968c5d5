package outside2_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

// hostile is an S3 endpoint that forwards to MinIO and misbehaves as a test
// says: it can stall a request (until released or cancelled) or rewrite a
// response. The client's SigV4 signature covers the proxy's host, which
// the proxy forwards unchanged, so MinIO accepts the requests.
type hostile struct {
	env     *s3test.Env
	stall   func(*http.Request) bool
	modify  func(*http.Request, *http.Response)
	release chan struct{}
	mu      sync.Mutex
}

func newHostile(t *testing.T, env *s3test.Env) *hostile {
	t.Helper()
	target, err := url.Parse(env.URL)
	if err != nil {
		t.Fatal(err)
	}
	h := &hostile{release: make(chan struct{})}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		h.mu.Lock()
		m := h.modify
		h.mu.Unlock()
		if m != nil {
			m(resp.Request, resp)
		}
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		s := h.stall
		h.mu.Unlock()
		if s != nil && s(r) {
			select {
			case <-h.release:
			case <-r.Context().Done():
			}
			http.Error(w, "released", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		h.unstall()
		srv.CloseClientConnections()
		srv.Close()
	})
	e := *env
	e.URL = srv.URL
	h.env = &e
	return h
}

func (h *hostile) unstall() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.release:
	default:
		close(h.release)
	}
}

func (h *hostile) set(stall func(*http.Request) bool, modify func(*http.Request, *http.Response)) {
	h.mu.Lock()
	h.stall, h.modify = stall, modify
	h.mu.Unlock()
}

// frameRead reports whether r is a ranged GET that does not start at byte
// 0 (the header fetch does).
func frameRead(r *http.Request) bool {
	rg := r.Header.Get("Range")
	return r.Method == http.MethodGet && rg != "" && !strings.HasPrefix(rg, "bytes=0-")
}

// TestHostileStall: a server that accepts a ranged GET of frames and then
// sends nothing. GetRange returns when its context ends. Object.ReadAt has
// no context: it must still not hang forever.
//
// io.ReaderAt has no context, so Object.ReadAt cannot be cancelled (its
// doc says so); Object.ReadAtContext returns when its context ends.
func TestHostileStall(t *testing.T) {
	env := s3test.MinIO(t)
	h := newHostile(t, env)
	r := newRig(t, h.env)
	ctx := context.Background()
	ec := map[string]string{"tenant": "t1"}
	pt := rnd(8 * frameLen)
	r.put(t, r.c, "obj", pt, ec)
	o, err := r.c.Open(ctx, r.bucket, "obj", ec)
	if err != nil {
		t.Fatal(err)
	}
	h.set(frameRead, nil)

	tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := r.c.GetRange(tctx, r.bucket, "obj", frameLen, 10, ec); err == nil {
		t.Errorf("GetRange from a stalled server succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("GetRange with a 2s context returned after %v", d)
	}

	// ReadAt (io.ReaderAt) cannot be cancelled; ReadAtContext can.
	done := make(chan error, 1)
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer rcancel()
	go func() {
		_, err := o.ReadAtContext(rctx, make([]byte, 10), frameLen)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("Object.ReadAtContext against a stalled server succeeded")
		}
		h.unstall()
	case <-time.After(8 * time.Second):
		t.Errorf("Object.ReadAtContext with a 2s context had not returned after 8s")
		h.unstall()
		<-done
	}
}

// TestHostileLyingLength: a server (or a writer who grew the object with
// UploadPartCopy, which costs them one 5 MiB upload per 5 GiB) says the
// object is 1 TiB; its bytes are a 33 KiB message. A GetRange of 256 MiB
// from offset 0, as a caller reading "to the end" would ask, must not
// allocate hundreds of MiB before it has authenticated a single frame.
//
// (This failed before the review's fixes; it now holds.)
func TestHostileLyingLength(t *testing.T) {
	env := s3test.MinIO(t)
	h := newHostile(t, env)
	r := newRig(t, h.env)
	ctx := context.Background()
	ec := map[string]string{"tenant": "t1"}
	pt := rnd(8 * frameLen)
	r.rawPut(t, "placeholder", nil, nil)
	// Stored without a recorded plaintext length, as a writer who
	// rewrote the object would leave it.
	if _, err := r.c.Put(ctx, r.bucket, "obj", bytes.NewReader(pt), ec, nil); err != nil {
		t.Fatal(err)
	}
	h.set(nil, func(req *http.Request, resp *http.Response) {
		if cr := resp.Header.Get("Content-Range"); cr != "" && strings.HasPrefix(req.Header.Get("Range"), "bytes=0-") {
			i := strings.LastIndexByte(cr, '/')
			resp.Header.Set("Content-Range", cr[:i+1]+"1099511627776")
		}
	})
	c := r.client(t, nil)
	o, err := c.Open(ctx, r.bucket, "obj", ec)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Logf("Object.Size() = %d", o.Size())
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got, err := c.GetRange(ctx, r.bucket, "obj", 0, 256*mib, ec)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Errorf("GetRange of an object that ends early returned %d bytes and no error", len(got))
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64*mib {
		t.Errorf("GetRange allocated %d MiB for a %d KiB object that claims to be 1 TiB", alloc/mib, len(pt)>>10)
	}
}

// TestHostileEndlessBody: every GET body runs on past its Content-Range
// with up to 512 MiB of junk (chunked, no Content-Length). Get, GetRange and
// the legacy path end with an error or the right bytes, and the heap stays
// far below the junk.
//
// (This failed before the review's fixes; it now holds.)
func TestHostileEndlessBody(t *testing.T) {
	env := s3test.MinIO(t)
	h := newHostile(t, env)
	r := newRig(t, h.env)
	ctx := context.Background()
	ec := map[string]string{"tenant": "t1"}
	pt := rnd(12 * mib)
	r.put(t, r.c, "obj", pt, ec)
	o := r.v2(t, r.keyARN, []byte("legacy"), ec)
	r.store(t, "legacy", o)
	block := rnd(mib)
	var sent atomic.Int64
	h.set(nil, func(req *http.Request, resp *http.Response) {
		if req.Method != http.MethodGet {
			return
		}
		junk := io.LimitReader(repeatReader{block: block, n: &sent}, 512*mib)
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(resp.Body, junk), resp.Body}
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
	})
	tctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	c := r.client(t, nil)
	lc := r.legacyClient(t, false)
	ops := []struct {
		name string
		f    func()
	}{
		{"Get", func() {
			rd, err := c.Get(tctx, r.bucket, "obj", ec)
			if err != nil {
				return
			}
			defer rd.Close()
			got, err := io.ReadAll(rd)
			if err == nil && !bytes.Equal(got, pt) || err != nil && !bytes.Equal(got, pt[:len(got)]) {
				t.Errorf("Get returned other bytes than the plaintext")
			}
		}},
		{"GetRange", func() {
			if got, err := c.GetRange(tctx, r.bucket, "obj", 5*frameLen, 100, ec); err == nil && !bytes.Equal(got, pt[5*frameLen:5*frameLen+100]) {
				t.Errorf("GetRange returned other bytes than the plaintext")
			}
		}},
		{"legacy Get", func() {
			if got, err := r.getAll(lc, "legacy", ec); err == nil && string(got) != "legacy" {
				t.Errorf("legacy Get returned %q", got)
			}
		}},
	}
	for _, op := range ops {
		sent.Store(0)
		runtime.GC()
		peak := peakHeap(op.f)
		t.Logf("%s: junk sent %d MiB; peak heap in use %d MiB", op.name, sent.Load()/mib, peak/mib)
		if peak > 128*mib {
			t.Errorf("%s: peak heap %d MiB while reading endless bodies (object %d MiB, PartSize 5 MiB, Concurrency 2)", op.name, peak/mib, len(pt)/mib)
		}
	}
	if tctx.Err() != nil {
		t.Errorf("reads did not finish within 120s against endless bodies")
	}
	_ = s3crypt.ErrTruncated
}

type repeatReader struct {
	block []byte
	n     *atomic.Int64
}

func (r repeatReader) Read(p []byte) (int, error) {
	k := copy(p, r.block)
	r.n.Add(int64(k))
	return k, nil
}

// peakHeap runs f and returns the largest HeapInuse seen meanwhile.
func peakHeap(f func()) uint64 {
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	f()
	close(stop)
	wg.Wait()
	return peak.Load()
}
