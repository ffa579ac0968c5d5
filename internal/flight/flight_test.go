package flight

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestOneLoadForManyCallers(t *testing.T) {
	g := New[string, int](time.Second)
	var loads atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]int, 32)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err, _ := g.Do(context.Background(), "k", func(context.Context) (int, error) {
				loads.Add(1)
				<-release
				return 7, nil
			})
			if err != nil {
				t.Error(err)
			}
			results[i] = v
		}()
	}
	for !g.InFlight("k") {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads, want 1", n)
	}
	for _, v := range results {
		if v != 7 {
			t.Fatalf("result %d, want 7", v)
		}
	}
}

// The caller that started the load gives up; the others get the result.
func TestStarterCancellationDoesNotFailWaiters(t *testing.T) {
	g := New[string, int](time.Second)
	release := make(chan struct{})
	var loads atomic.Int32
	var loadErr atomic.Value
	load := func(ctx context.Context) (int, error) {
		loads.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			loadErr.Store(ctx.Err())
			return 0, ctx.Err()
		}
		return 42, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err, _ := g.Do(ctx, "k", load)
		first <- err
	}()
	for !g.InFlight("k") {
		time.Sleep(time.Millisecond)
	}
	second := make(chan int, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		v, err, _ := g.Do(context.Background(), "k", load)
		if err != nil {
			t.Errorf("second caller: %v", err)
		}
		second <- v
	}()
	<-started
	time.Sleep(50 * time.Millisecond) // the second caller joins the load
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: %v, want its own cancellation", err)
	}
	close(release)
	if v := <-second; v != 42 {
		t.Fatalf("second caller got %d, want 42", v)
	}
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads, want 1 shared by both callers", n)
	}
	if err := loadErr.Load(); err != nil {
		t.Fatalf("the load saw %v", err)
	}
}

func TestLoadTimeout(t *testing.T) {
	g := New[int, int](50 * time.Millisecond)
	start := time.Now()
	_, err, _ := g.Do(context.Background(), 1, func(ctx context.Context) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the group's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the load ran %v", d)
	}
}

func TestCloseEndsLoads(t *testing.T) {
	g := New[int, int](time.Hour)
	done := make(chan error, 1)
	go func() {
		_, err, _ := g.Do(context.Background(), 1, func(ctx context.Context) (int, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		})
		done <- err
	}()
	for !g.InFlight(1) {
		time.Sleep(time.Millisecond)
	}
	g.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("err %v, want ErrClosed", err)
	}
	if _, err, _ := g.Do(context.Background(), 2, func(context.Context) (int, error) { return 1, nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}

func TestContextValuesReachTheLoad(t *testing.T) {
	type key struct{}
	g := New[int, string](time.Second)
	ctx := context.WithValue(context.Background(), key{}, "trace-1")
	v, err, _ := g.Do(ctx, 1, func(ctx context.Context) (string, error) {
		s, _ := ctx.Value(key{}).(string)
		return s, nil
	})
	if err != nil || v != "trace-1" {
		t.Fatalf("got %q, %v", v, err)
	}
}

func TestZeroGroupIsReady(t *testing.T) {
	var g Group[string, int]
	v, err, joined := g.Do(context.Background(), "k", func(ctx context.Context) (int, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("a zero Group's load has no deadline")
		}
		return 3, nil
	})
	if v != 3 || err != nil || joined {
		t.Fatalf("got %d, %v, %v", v, err, joined)
	}
}
