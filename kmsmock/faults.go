package kmsmock

import (
	"crypto/rand"
	"encoding/binary"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Fault describes failures to inject into one operation (or every
// operation), for reliability tests. Rates are probabilities in [0, 1],
// rolled independently on each request in the order drop, throttle,
// internal error.
type Fault struct {
	// Latency is added to every request; Jitter adds a uniform random extra
	// in [0, Jitter).
	Latency time.Duration `json:"latency,omitempty"`
	Jitter  time.Duration `json:"jitter,omitempty"`
	// DropRate closes the connection without a response.
	DropRate float64 `json:"dropRate,omitempty"`
	// ThrottleRate answers ThrottlingException (HTTP 400), which the SDK
	// retries with back-off.
	ThrottleRate float64 `json:"throttleRate,omitempty"`
	// InternalErrorRate answers KMSInternalException (HTTP 500).
	InternalErrorRate float64 `json:"internalErrorRate,omitempty"`
}

func (f Fault) valid() bool {
	ok := func(r float64) bool { return r >= 0 && r <= 1 }
	return f.Latency >= 0 && f.Jitter >= 0 && ok(f.DropRate) && ok(f.ThrottleRate) && ok(f.InternalErrorRate)
}

type faultSet struct {
	mu     sync.Mutex
	all    Fault
	byOp   map[string]Fault
	outage bool
	rng    *mrand.Rand
}

func (fs *faultSet) init() {
	var seed [16]byte
	rand.Read(seed[:])
	fs.byOp = map[string]Fault{}
	fs.rng = mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
}

// SetFault injects f into operation op (for example "GenerateDataKey"), or
// into every operation without a fault of its own when op is "". A zero Fault
// removes the injection. It panics on an unknown operation or a rate outside
// [0, 1].
func (s *Server) SetFault(op string, f Fault) {
	if op != "" && operations[op] == nil {
		panic("kmsmock: SetFault for unknown operation " + op)
	}
	if !f.valid() {
		panic("kmsmock: SetFault with a negative duration or a rate outside [0, 1]")
	}
	fs := &s.faults
	fs.mu.Lock()
	defer fs.mu.Unlock()
	switch {
	case op == "":
		fs.all = f
	case f == Fault{}:
		delete(fs.byOp, op)
	default:
		fs.byOp[op] = f
	}
}

// ClearFaults removes every injected fault and ends an outage.
func (s *Server) ClearFaults() {
	fs := &s.faults
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.all, fs.outage = Fault{}, false
	clear(fs.byOp)
}

// SetOutage switches a full outage on or off: while on, every request's
// connection is closed without a response, as if KMS were unreachable.
func (s *Server) SetOutage(on bool) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.outage = on
}

// faultPlan is what to do to one request.
type faultPlan struct {
	delay                  time.Duration
	drop, throttle, failed bool
}

func (fs *faultSet) plan(op string) faultPlan {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.outage {
		return faultPlan{drop: true}
	}
	f, ok := fs.byOp[op]
	if !ok {
		f = fs.all
	}
	p := faultPlan{delay: f.Latency}
	if f.Jitter > 0 {
		p.delay += time.Duration(fs.rng.Int64N(int64(f.Jitter)))
	}
	p.drop = fs.rng.Float64() < f.DropRate
	p.throttle = !p.drop && fs.rng.Float64() < f.ThrottleRate
	p.failed = !p.drop && !p.throttle && fs.rng.Float64() < f.InternalErrorRate
	return p
}

// injectFault applies the request's fault plan; it reports whether the
// request has been answered (or dropped) already.
func (s *Server) injectFault(w http.ResponseWriter, r *http.Request, c *call) bool {
	p := s.faults.plan(c.op)
	if p.delay > 0 {
		t := time.NewTimer(p.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	switch {
	case p.drop:
		s.metrics.record(c, "ConnectionDropped", s.Now())
		// The standard way to abort a response: net/http closes the
		// connection without writing anything and logs nothing.
		panic(http.ErrAbortHandler)
	case p.throttle:
		s.finish(w, c, nil, errThrottled())
	case p.failed:
		s.finish(w, c, nil, errInternal())
	default:
		return false
	}
	return true
}
