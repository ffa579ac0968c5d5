package kmsmock

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// TrailEvent is one request as a CloudTrail-like record. It never holds
// plaintext, key material or encryption-context values: each context value is
// replaced by a keyed hash, so equal values can be correlated within one
// server's lifetime but not read back or guessed offline.
type TrailEvent struct {
	Time      time.Time `json:"time"`
	Principal string    `json:"principal"`
	Operation string    `json:"operation"`
	// KeyARN is the key the request used, once resolved ("" for operations
	// without a key, or when resolution failed).
	KeyARN string `json:"keyArn,omitempty"`
	// EncryptionContext maps each context key to "hmac-sha256:<hex>" of its
	// value.
	EncryptionContext map[string]string `json:"encryptionContext,omitempty"`
	// Result is "Success" or the exception name (or "ConnectionDropped").
	Result string `json:"result"`
}

const defaultTrailCapacity = 10000

type metrics struct {
	calls   map[string]*atomic.Int64 // fixed at init: every operation
	hashKey [32]byte

	mu    sync.Mutex
	trail []TrailEvent // ring buffer
	next  int
	full  bool
}

func (m *metrics) init(capacity int) {
	if capacity <= 0 {
		capacity = defaultTrailCapacity
	}
	m.calls = make(map[string]*atomic.Int64, len(operations))
	for op := range operations {
		m.calls[op] = new(atomic.Int64)
	}
	rand.Read(m.hashKey[:])
	m.trail = make([]TrailEvent, capacity)
}

func (m *metrics) count(op string) { m.calls[op].Add(1) }

func (m *metrics) record(c *call, result string, now time.Time) {
	ev := TrailEvent{Time: now, Principal: c.principal, Operation: c.op, KeyARN: c.keyARN, Result: result}
	if len(c.context) > 0 {
		ev.EncryptionContext = make(map[string]string, len(c.context))
		for k, v := range c.context {
			mac := hmac.New(sha256.New, m.hashKey[:])
			mac.Write([]byte(v))
			ev.EncryptionContext[k] = "hmac-sha256:" + hex.EncodeToString(mac.Sum(nil)[:16])
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.trail[m.next] = ev
	m.next = (m.next + 1) % len(m.trail)
	m.full = m.full || m.next == 0
}

// Calls returns how many requests for operation op the server has received
// (answered, failed or dropped), counted once authenticated.
func (s *Server) Calls(op string) int64 {
	if c, ok := s.metrics.calls[op]; ok {
		return c.Load()
	}
	return 0
}

// CallCounts returns Calls for every operation that has been called.
func (s *Server) CallCounts() map[string]int64 {
	out := map[string]int64{}
	for op, c := range s.metrics.calls {
		if n := c.Load(); n > 0 {
			out[op] = n
		}
	}
	return out
}

// Trail returns the recorded events, oldest first.
func (s *Server) Trail() []TrailEvent {
	m := &s.metrics
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []TrailEvent
	if m.full {
		out = append(out, m.trail[m.next:]...)
	}
	out = append(out, m.trail[:m.next]...)
	for i := range out {
		out[i].EncryptionContext = maps.Clone(out[i].EncryptionContext)
	}
	return out
}
