// Package flight runs one load per key on behalf of every caller that wants
// it (single flight), for the caches of phicrypt and keyring.
//
// A load runs detached from the cancellation of the caller that started it,
// bounded by the group's own timeout, so one caller giving up (a timed-out
// HTTP request) never fails the others waiting for the same key. Each
// caller waits only as long as its own context allows. Results are not
// kept: caching them is the caller's business, inside the load.
package flight

import (
	"context"
	"sync"
	"time"
)

// DefaultTimeout bounds a load when a Group is given no timeout.
const DefaultTimeout = 30 * time.Second

// Group runs loads keyed by K. The zero value is ready to use, with
// DefaultTimeout; New sets another timeout. It is safe for concurrent use
// and must not be copied after first use.
type Group[K comparable, V any] struct {
	timeout time.Duration

	mu     sync.Mutex
	calls  map[K]*call[V]
	closed bool
	// stop is canceled by Close, which ends every load under way.
	stop   context.Context
	cancel context.CancelFunc
}

type call[V any] struct {
	done chan struct{}
	val  V
	err  error
}

// New returns a Group whose loads each run for at most timeout
// (DefaultTimeout if zero or negative).
func New[K comparable, V any](timeout time.Duration) *Group[K, V] {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	stop, cancel := context.WithCancel(context.Background())
	return &Group[K, V]{timeout: timeout, calls: map[K]*call[V]{}, stop: stop, cancel: cancel}
}

// Do returns the result of load for key: it starts load unless one for key
// is under way, and waits for it while ctx allows. load receives a context
// that carries ctx's values but not its cancellation, and ends after the
// group's timeout or when the group is closed. joined reports that another
// caller's load was already under way.
func (g *Group[K, V]) Do(ctx context.Context, key K, load func(context.Context) (V, error)) (v V, err error, joined bool) {
	c, joined := g.start(ctx, key, load)
	select {
	case <-c.done:
		return c.val, c.err, joined
	case <-ctx.Done():
		return v, ctx.Err(), joined
	}
}

// Start begins load for key unless one is under way, without waiting.
func (g *Group[K, V]) Start(ctx context.Context, key K, load func(context.Context) (V, error)) {
	g.start(ctx, key, load)
}

// InFlight reports whether a load for key is under way.
func (g *Group[K, V]) InFlight(key K) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.calls[key]
	return ok
}

// initLocked makes a zero Group ready.
func (g *Group[K, V]) initLocked() {
	if g.calls == nil {
		g.calls = map[K]*call[V]{}
	}
	if g.stop == nil {
		g.stop, g.cancel = context.WithCancel(context.Background())
	}
	if g.timeout <= 0 {
		g.timeout = DefaultTimeout
	}
}

func (g *Group[K, V]) start(ctx context.Context, key K, load func(context.Context) (V, error)) (*call[V], bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.initLocked()
	if c, ok := g.calls[key]; ok {
		return c, true
	}
	c := &call[V]{done: make(chan struct{})}
	if g.closed {
		c.err = ErrClosed
		close(c.done)
		return c, false
	}
	g.calls[key] = c
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.timeout)
	stopOnClose := context.AfterFunc(g.stop, cancel)
	go func() {
		defer cancel()
		defer stopOnClose()
		c.val, c.err = load(lctx)
		g.mu.Lock()
		delete(g.calls, key)
		if c.err != nil && g.closed {
			c.err = ErrClosed // the load failed because Close ended it
		}
		g.mu.Unlock()
		close(c.done)
	}()
	return c, false
}

// Close ends every load under way (their contexts are canceled; one that
// then fails reports ErrClosed) and makes later calls fail with ErrClosed.
// It does not wait for loads to return.
func (g *Group[K, V]) Close() {
	g.mu.Lock()
	g.initLocked()
	g.closed = true
	g.mu.Unlock()
	g.cancel()
}

// ErrClosed is returned by loads asked of a closed Group.
var ErrClosed = closedError{}

type closedError struct{}

func (closedError) Error() string { return "the cache has been closed" }
