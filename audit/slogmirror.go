package audit

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/mod/sumdb/tlog"
)

// mirrorQueue is how many records a SlogMirror holds for its logger
// before it drops them.
const mirrorQueue = 1024

// SlogMirror is a Sink that stores through another Sink and also emits
// every record it stored to a *slog.Logger, for the log pipelines and
// alerting that operations teams already watch.
//
// The mirror is not the source of truth: the wrapped sink and its signed
// checkpoints are. Mirrored lines carry no proof and may be missing: the
// mirror logs a record only after the wrapped sink stored it, from a
// goroutine of its own, through a queue of 1024 records; when the logger
// falls that far behind (or blocks) it drops records, counts them in
// Dropped and says so in a warning once the logger takes lines again. A
// slow, failing or panicking handler never blocks or fails an append.
//
// Each record is one Info line, "audit record", whose attributes sit in
// the group "audit": index, time, kind, actor, operation, key and context
// (the digests in hex, when the record has them; never raw ids or
// values), reason and approvers when not empty.
type SlogMirror struct {
	sink    Sink
	logger  *slog.Logger
	queue   chan []byte
	done    chan struct{}
	dropped atomic.Int64
	mu      sync.RWMutex // guards closed against Append's send
	closed  bool
}

// NewSlogMirror returns a sink that stores through sink and mirrors each
// stored record to logger. Call Close to stop the mirror; it does not
// close sink.
func NewSlogMirror(sink Sink, logger *slog.Logger) *SlogMirror {
	if sink == nil || logger == nil {
		panic("audit: NewSlogMirror needs a sink and a logger")
	}
	m := &SlogMirror{sink: sink, logger: logger, queue: make(chan []byte, mirrorQueue), done: make(chan struct{})}
	go m.run()
	return m
}

// Append stores record through the wrapped sink and, once stored, queues
// it for the logger without waiting for it.
func (m *SlogMirror) Append(record []byte, hashes []tlog.Hash) error {
	if err := m.sink.Append(record, hashes); err != nil {
		return err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		m.dropped.Add(1)
		return nil
	}
	select {
	case m.queue <- slices.Clone(record):
	default:
		m.dropped.Add(1)
	}
	return nil
}

// Size is the wrapped sink's.
func (m *SlogMirror) Size() int64 { return m.sink.Size() }

// ReadHashes reads from the wrapped sink.
func (m *SlogMirror) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	return m.sink.ReadHashes(indexes)
}

// ReadRecords reads from the wrapped sink, never from the logger.
func (m *SlogMirror) ReadRecords(start, end int64) ([][]byte, error) {
	return m.sink.ReadRecords(start, end)
}

// Dropped is the number of records the mirror did not log because its
// queue was full.
func (m *SlogMirror) Dropped() int64 { return m.dropped.Load() }

// Close stops the mirror after the logger has taken the records already
// queued. It leaves the wrapped sink open: appends after Close still store
// records, and count them as dropped.
func (m *SlogMirror) Close() error {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.queue)
	}
	m.mu.Unlock()
	<-m.done
	return nil
}

func (m *SlogMirror) run() {
	defer close(m.done)
	var reported int64
	for record := range m.queue {
		if d := m.dropped.Load(); d > reported {
			m.emit(func() {
				m.logger.LogAttrs(context.Background(), slog.LevelWarn, "audit mirror dropped records: the logger fell behind; the log itself has them",
					slog.Int64("dropped", d))
			})
			reported = d
		}
		m.emit(func() { m.logRecord(record) })
	}
}

// emit runs one logger call, and survives a handler that panics.
func (m *SlogMirror) emit(f func()) {
	defer func() { _ = recover() }()
	f()
}

func (m *SlogMirror) logRecord(b []byte) {
	r, err := ParseRecord(b)
	if err != nil {
		// The Log encoded it; only a foreign writer of the sink gets here.
		m.logger.LogAttrs(context.Background(), slog.LevelWarn, "audit mirror: a stored record does not parse")
		return
	}
	attrs := []any{
		slog.Int64("index", r.Index),
		slog.Time("time", r.Time),
		slog.String("kind", r.Kind.String()),
		slog.String("actor", r.Actor),
		slog.String("operation", r.Operation),
	}
	if !r.Key.IsZero() {
		attrs = append(attrs, slog.String("key", r.Key.String()))
	}
	if !r.Context.IsZero() {
		attrs = append(attrs, slog.String("context", r.Context.String()))
	}
	if r.Reason != "" {
		attrs = append(attrs, slog.String("reason", r.Reason))
	}
	if len(r.Approvers) > 0 {
		attrs = append(attrs, slog.Any("approvers", r.Approvers))
	}
	m.logger.LogAttrs(context.Background(), slog.LevelInfo, "audit record", slog.Group("audit", attrs...))
}
