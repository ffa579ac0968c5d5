package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSlogMirror: every appended record reaches the logger once, in
// order, as structured attributes that match the record; the log itself
// still verifies.
func TestSlogMirror(t *testing.T) {
	signer, v, _ := testKeys(t)
	h := testHasher(t)
	var out bytes.Buffer
	m := NewSlogMirror(NewMemorySink(), slog.New(slog.NewJSONHandler(&out, nil)))
	l := newTestLog(t, m, signer)
	appendN(t, l, h, 0, 10)
	c := openCheckpoint(t, v, l)
	if err := v.VerifyRecords(c, allRecords(t, l)); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 10 {
		t.Fatalf("%d lines logged, want 10", len(lines))
	}
	for i, line := range lines {
		var got struct {
			Msg   string
			Audit struct {
				Index     int64
				Time      time.Time
				Kind      string
				Actor     string
				Operation string
				Key       string
				Context   string
				Reason    string
				Approvers []string
			}
		}
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatal(err)
		}
		want := testEvent(h, i)
		a := got.Audit
		if got.Msg != "audit record" || a.Index != int64(i) || !a.Time.Equal(want.Time) || a.Kind != want.Kind.String() ||
			a.Actor != want.Actor || a.Operation != want.Operation || a.Reason != want.Reason ||
			strings.Join(a.Approvers, ",") != strings.Join(want.Approvers, ",") {
			t.Fatalf("line %d = %s, want the fields of %+v", i, line, want)
		}
		if a.Key != want.Key.String() || (want.Context.IsZero() && a.Context != "") || (!want.Context.IsZero() && a.Context != want.Context.String()) {
			t.Fatalf("line %d digests: %s", i, line)
		}
	}
}

// TestSlogMirrorNoPHI: a canary branch key id and encryption context
// appended through the mirror never reach its output, in JSON or text.
func TestSlogMirrorNoPHI(t *testing.T) {
	signer, _, _ := testKeys(t)
	h, err := NewHasher([]byte(canaryKey))
	if err != nil {
		t.Fatal(err)
	}
	var jsonOut, textOut bytes.Buffer
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ctx := map[string]string{canaryCtxKey: canaryCtxVal}
	for _, handler := range []slog.Handler{slog.NewJSONHandler(&jsonOut, nil), slog.NewTextHandler(&textOut, nil)} {
		m := NewSlogMirror(NewMemorySink(), slog.New(handler))
		l := newTestLog(t, m, signer)
		for _, e := range []Event{
			h.KeyUse(at, "svc", "Decrypt", canaryID, ctx),
			h.StaleServe(at, "svc", canaryID, "store unreachable"),
			h.AdminChange(at, "alice", "rotate", canaryID, []string{"alice", "bob"}),
			h.Denial(at, "svc", "destroy", canaryID, "not a custodian"),
			h.Destruction(at, "alice", "destroy", canaryID, []string{"alice", "carol"}),
		} {
			if _, err := l.Append(e); err != nil {
				t.Fatal(err)
			}
		}
		m.Close()
	}
	out := append(jsonOut.Bytes(), textOut.Bytes()...)
	if c := leaks(out); c != "" {
		t.Fatalf("canary %q reached the slog output", c)
	}
	// The output is there and names the keys by digest.
	for _, want := range []string{h.BranchKey(canaryID).String(), h.Context(ctx).String()} {
		if bytes.Count(jsonOut.Bytes(), []byte(want)) == 0 || bytes.Count(textOut.Bytes(), []byte(want)) == 0 {
			t.Fatalf("the mirror's output lacks the digest %s: the test saw nothing useful", want)
		}
	}
}

// blockingWriter blocks every Write until released.
type blockingWriter struct{ release chan struct{} }

func (w blockingWriter) Write(p []byte) (int, error) { <-w.release; return len(p), nil }

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// panickingHandler panics on every record.
type panickingHandler struct{ slog.Handler }

func (panickingHandler) Handle(context.Context, slog.Record) error { panic("handler bug") }

// TestSlogMirrorNeverBlocksAppend: a logger that blocks, fails or panics
// slows and fails no append; the mirror counts what it dropped and says
// so once the logger takes lines again.
func TestSlogMirrorNeverBlocksAppend(t *testing.T) {
	signer, v, _ := testKeys(t)
	h := testHasher(t)

	t.Run("blocking", func(t *testing.T) {
		release := make(chan struct{})
		var out lockedBuffer
		w := io.MultiWriter(blockingWriter{release}, &out)
		m := NewSlogMirror(NewMemorySink(), slog.New(slog.NewJSONHandler(w, nil)))
		l := newTestLog(t, m, signer)
		const n = mirrorQueue + 200
		done := make(chan error, 1)
		go func() {
			for i := range n {
				if _, err := l.Append(testEvent(h, i)); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			close(release)
			t.Fatal("appends blocked behind a blocked logger")
		}
		if m.Dropped() == 0 {
			t.Fatal("the mirror dropped nothing although its logger was blocked for more records than it queues")
		}
		close(release)
		l.Append(testEvent(h, n)) // let the warning out
		m.Close()
		if !strings.Contains(out.String(), "audit mirror dropped records") {
			t.Fatal("the mirror did not report the dropped records")
		}
		c := openCheckpoint(t, v, l)
		if c.Size != n+1 {
			t.Fatalf("the log holds %d records, want %d", c.Size, n+1)
		}
	})
	for name, handler := range map[string]slog.Handler{
		"failing":   slog.NewTextHandler(failingWriter{}, nil),
		"panicking": panickingHandler{slog.NewTextHandler(io.Discard, nil)},
	} {
		t.Run(name, func(t *testing.T) {
			m := NewSlogMirror(NewMemorySink(), slog.New(handler))
			l := newTestLog(t, m, signer)
			appendN(t, l, h, 0, 5)
			m.Close()
			if err := v.VerifyRecords(openCheckpoint(t, v, l), allRecords(t, l)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer safe for the mirror's goroutine and the
// test's.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestSlogMirrorAppendAfterClose: an append after Close still stores the
// record and counts it as not mirrored.
func TestSlogMirrorAppendAfterClose(t *testing.T) {
	signer, v, _ := testKeys(t)
	h := testHasher(t)
	m := NewSlogMirror(NewMemorySink(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	l := newTestLog(t, m, signer)
	appendN(t, l, h, 0, 2)
	m.Close()
	appendN(t, l, h, 2, 1)
	m.Close() // twice is fine
	if m.Dropped() != 1 {
		t.Fatalf("Dropped = %d, want 1", m.Dropped())
	}
	if err := v.VerifyRecords(openCheckpoint(t, v, l), allRecords(t, l)); err != nil {
		t.Fatal(err)
	}
}
