package phicrypt_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

// Every worker count writes the same layout as Encrypt for any pattern of
// writes: one large write (sealed straight from the caller's slice),
// writes that leave whole frames buffered before a large one, and small
// writes that fill the buffer of whole frames to its limit.
func TestParallelWriterLayout(t *testing.T) {
	ctx := context.Background()
	const frame = 64
	patterns := map[string]func(n int) []int{
		"one write":   func(n int) []int { return []int{n} },
		"small":       func(n int) []int { return repeat(n, 7) },
		"frames":      func(n int) []int { return repeat(n, frame) },
		"frames+1":    func(n int) []int { return repeat(n, frame+1) },
		"large mixed": func(n int) []int { return cycle(n, []int{3, 5*frame - 3, frame, 40*frame + 1, 1}) },
	}
	for _, workers := range []int{1, 2, 5} {
		enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(t), FrameLength: frame, Workers: workers})
		require.NoError(t, err)
		for _, size := range []int{0, frame, 2*frame + 1, 100 * frame, 100*frame + 5, 300*frame - 1} {
			pt := randomBytes(size)
			whole, err := enc.Encrypt(ctx, pt, nil)
			require.NoError(t, err)
			for name, pattern := range patterns {
				var msg bytes.Buffer
				w, err := enc.NewWriter(ctx, &msg, nil)
				require.NoError(t, err)
				rest := pt
				for _, k := range pattern(size) {
					n, err := w.Write(rest[:k])
					require.NoError(t, err)
					require.Equal(t, k, n)
					rest = rest[k:]
				}
				require.NoError(t, w.Close())
				require.Equal(t, len(whole), msg.Len(), "workers %d size %d %s: the layout differs from Encrypt's", workers, size, name)
				got, _, err := enc.Decrypt(ctx, msg.Bytes(), nil)
				require.NoError(t, err, "workers %d size %d %s", workers, size, name)
				require.Equal(t, pt, nonNil(got), "workers %d size %d %s", workers, size, name)
			}
		}
	}
}

// repeat splits n into writes of k bytes and a shorter last one.
func repeat(n, k int) []int { return cycle(n, []int{k}) }

func cycle(n int, ks []int) []int {
	var out []int
	for i := 0; n > 0; i++ {
		k := min(n, ks[i%len(ks)])
		out = append(out, k)
		n -= k
	}
	return out
}

// failingWriter accepts limit bytes, then fails every write.
type failingWriter struct {
	n, limit int
}

var errDestination = errors.New("destination failed")

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n+len(p) > f.limit {
		return 0, errDestination
	}
	f.n += len(p)
	return len(p), nil
}

// A destination failing while frames are sealed in parallel ends the
// stream with its error: the Write returns it (after every worker has
// stopped using the caller's slice), and so do later calls and Close.
func TestParallelWriterDestinationFails(t *testing.T) {
	ctx := context.Background()
	for _, workers := range []int{2, 4} {
		for _, limit := range []int{2000, 20000, 60000} {
			enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(t), FrameLength: 128, Workers: workers})
			require.NoError(t, err)
			dst := &failingWriter{limit: limit}
			w, err := enc.NewWriter(ctx, dst, nil)
			require.NoError(t, err)
			pt := randomBytes(1000 * 128)
			_, err = w.Write(pt)
			require.ErrorIs(t, err, errDestination, "workers %d limit %d", workers, limit)
			clear(pt) // the workers are done with it
			_, err = w.Write([]byte("more"))
			require.ErrorIs(t, err, errDestination)
			require.ErrorIs(t, w.Close(), errDestination)
			require.LessOrEqual(t, dst.n, limit)
		}
	}
}

// A parallel writer's workers live as long as it: Close stops them, and so
// does the collection of a writer dropped without Close (after a failed
// write, say). No goroutine is left behind either way.
func TestParallelWriterWorkersStop(t *testing.T) {
	ctx := context.Background()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(t), FrameLength: 64, Workers: 4})
	require.NoError(t, err)
	pt := randomBytes(100 * 64)
	sealWorkerFunc := sealWorkersOfMine()
	w, err := enc.NewWriter(ctx, io.Discard, nil)
	require.NoError(t, err)
	_, err = w.Write(pt)
	require.NoError(t, err)
	require.Equal(t, 3, goroutinesIn(sealWorkerFunc), "the workers run between writes")
	require.NoError(t, w.Close())
	require.True(t, goroutinesDownTo(sealWorkerFunc, false), "Close leaves workers running")

	func() {
		w, err := enc.NewWriter(ctx, io.Discard, nil)
		require.NoError(t, err)
		_, err = w.Write(pt)
		require.NoError(t, err)
	}() // dropped without Close
	require.True(t, goroutinesDownTo(sealWorkerFunc, true), "an abandoned writer's workers keep running")
}

// sealWorkersOfMine finds the worker goroutines of the writers this test's
// goroutine started in a stack dump, by the function that starts them
// (the only name a goroutine not yet scheduled shows) and the goroutine
// that ran it. Goroutines are counted by what they run and who started
// them, since other tests' goroutines (HTTP servers, finishing helpers,
// writers they dropped) come and go.
func sealWorkersOfMine() string {
	return "created by github.com/phicrypt/phicrypt/phicrypt.(*writer).startWorkers in goroutine " + goroutineID() + "\n"
}

// goroutineID is the number of the calling goroutine, as stack dumps
// print it.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := strings.Cut(strings.TrimPrefix(string(buf), "goroutine "), " ")
	return id
}

// goroutinesIn counts the goroutines whose stack holds fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			count++
		}
	}
	return count
}

// goroutinesDownTo waits up to five seconds for no goroutine to run fn,
// collecting garbage meanwhile if gc is set.
func goroutinesDownTo(fn string, gc bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if gc {
			runtime.GC()
		}
		if goroutinesIn(fn) == 0 {
			return true
		}
	}
	return false
}
