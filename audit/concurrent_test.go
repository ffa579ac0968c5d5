package audit

import (
	"sync"
	"testing"
)

// TestConcurrentAppends: goroutines append, take checkpoints and prove
// records at once (run with -race); every index is handed out once and
// the result verifies, on both sinks.
func TestConcurrentAppends(t *testing.T) {
	sinks := map[string]func(t *testing.T) Sink{
		"memory": func(t *testing.T) Sink { return NewMemorySink() },
		"file": func(t *testing.T) Sink {
			s := openSink(t, t.TempDir())
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	for name, mk := range sinks {
		t.Run(name, func(t *testing.T) {
			signer, v, _ := testKeys(t)
			h := testHasher(t)
			l := newTestLog(t, mk(t), signer)
			const workers, each = 8, 12
			var wg sync.WaitGroup
			indexes := make(chan int64, workers*each)
			errs := make(chan error, workers*each*2)
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						idx, err := l.Append(testEvent(h, w*each+i))
						if err != nil {
							errs <- err
							return
						}
						indexes <- idx
						signed, err := l.Checkpoint()
						if err == nil {
							_, err = v.Open(signed)
						}
						if err != nil {
							errs <- err
						}
					}
				})
			}
			wg.Wait()
			close(indexes)
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			seen := make(map[int64]bool)
			for idx := range indexes {
				if seen[idx] {
					t.Fatalf("index %d handed out twice", idx)
				}
				seen[idx] = true
			}
			if len(seen) != workers*each {
				t.Fatalf("%d indexes, want %d", len(seen), workers*each)
			}
			c := openCheckpoint(t, v, l)
			if c.Size != workers*each {
				t.Fatalf("checkpoint size %d", c.Size)
			}
			if err := v.VerifyRecords(c, allRecords(t, l)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
