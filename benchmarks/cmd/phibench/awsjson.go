package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/phicrypt/phicrypt/benchmarks/suite"
)

// awsResult is one result in the schema of aws/aws-encryption-sdk's
// esdk-performance-testing (results/raw-data/*_results.json): latencies in
// milliseconds, percentiles of the whole encrypt-and-decrypt cycle, peak
// heap growth in MB.
type awsResult struct {
	TestName          string  `json:"test_name"`
	Language          string  `json:"language"`
	DataSize          int     `json:"data_size"`
	Concurrency       int     `json:"concurrency"`
	EncryptLatencyMs  float64 `json:"encrypt_latency_ms"`
	DecryptLatencyMs  float64 `json:"decrypt_latency_ms"`
	EndToEndLatencyMs float64 `json:"end_to_end_latency_ms"`
	OpsPerSecond      float64 `json:"ops_per_second"`
	BytesPerSecond    float64 `json:"bytes_per_second"`
	PeakMemoryMB      float64 `json:"peak_memory_mb"`
	MemoryEfficiency  float64 `json:"memory_efficiency_ratio"`
	P50Latency        float64 `json:"p50_latency"`
	P95Latency        float64 `json:"p95_latency"`
	P99Latency        float64 `json:"p99_latency"`
	Timestamp         string  `json:"timestamp"`
	GoVersion         string  `json:"go_version"`
	CPUCount          int     `json:"cpu_count"`
	TotalMemoryGB     float64 `json:"total_memory_gb"`
}

// awsFile is the file: metadata and the results.
type awsFile struct {
	Metadata struct {
		Language      string  `json:"language"`
		Timestamp     string  `json:"timestamp"`
		GoVersion     string  `json:"go_version"`
		CPUCount      int     `json:"cpu_count"`
		TotalMemoryGB float64 `json:"total_memory_gb"`
		TotalTests    int     `json:"total_tests"`
	} `json:"metadata"`
	Results []awsResult `json:"results"`
}

// The languages the file names: "go" is the AWS Go ESDK, as AWS's own Go
// harness labels it; phicrypt's results are "go-phicrypt".
const (
	langAWS      = "go"
	langPhicrypt = "go-phicrypt"
)

// awsPlan is what -aws-json runs: sizes, cycles and concurrency levels.
type awsPlan struct {
	sizes       []int64
	minCycles   int
	maxCycles   int
	budget      time.Duration // per size and implementation, for the throughput test
	concurrency []int
	perWorker   int
}

func planFor(quick bool) awsPlan {
	if quick {
		return awsPlan{sizes: []int64{suite.KiB, suite.MiB, 64 * suite.MiB}, minCycles: 3, maxCycles: 1000,
			budget: 300 * time.Millisecond, concurrency: []int{2}, perWorker: 2}
	}
	return awsPlan{sizes: []int64{64, suite.KiB, 64 * suite.KiB, suite.MiB, 64 * suite.MiB}, minCycles: 10, maxCycles: 10000,
		budget: 2 * time.Second, concurrency: []int{2, 4}, perWorker: 5}
}

// writeAWSJSON runs the throughput, memory and concurrent tests of AWS's
// harness for phicrypt and for the AWS Go ESDK, and writes the file.
func writeAWSJSON(path string, env *suite.Env, plan awsPlan, stderr io.Writer) error {
	impls := []struct {
		lang string
		make func(*suite.Env) (suite.RoundTrip, error)
	}{{langPhicrypt, suite.PhicryptRoundTrip}, {langAWS, suite.AWSRoundTrip}}
	var out awsFile
	for _, impl := range impls {
		rt, err := impl.make(env)
		if err != nil {
			return err
		}
		for _, size := range plan.sizes {
			fmt.Fprintf(stderr, "aws-json: %s %s ... ", impl.lang, suite.SizeName(size))
			rs, err := awsTests(rt, env.Plaintext(size), plan)
			if err != nil {
				fmt.Fprintln(stderr, "FAILED")
				return err
			}
			for i := range rs {
				rs[i].Language = impl.lang
			}
			out.Results = append(out.Results, rs...)
			fmt.Fprintf(stderr, "%.3f ms per cycle\n", rs[0].EndToEndLatencyMs)
		}
	}
	m := &out.Metadata
	m.Language, m.GoVersion, m.CPUCount = "go", runtime.Version(), runtime.NumCPU()
	m.Timestamp, m.TotalMemoryGB, m.TotalTests = stamp(), totalMemoryGB(), len(out.Results)
	for i := range out.Results {
		r := &out.Results[i]
		r.GoVersion, r.CPUCount, r.TotalMemoryGB = m.GoVersion, m.CPUCount, m.TotalMemoryGB
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func stamp() string { return time.Now().UTC().Format("2006-01-02 15:04:05") }

// awsTests runs the three tests on pt.
func awsTests(rt suite.RoundTrip, pt []byte, plan awsPlan) ([]awsResult, error) {
	ec := map[string]string{"purpose": "performance-test", "size": strconv.Itoa(len(pt))}
	thr, err := throughputTest(rt, pt, ec, plan)
	if err != nil {
		return nil, err
	}
	mem, err := memoryTest(rt, pt, ec)
	if err != nil {
		return nil, err
	}
	rs := []awsResult{thr, mem}
	for _, n := range plan.concurrency {
		r, err := concurrentTest(rt, pt, ec, n, plan.perWorker)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// throughputTest runs cycles one after another (one warm-up first) until
// the budget is spent, within the plan's bounds.
func throughputTest(rt suite.RoundTrip, pt []byte, ec map[string]string, plan awsPlan) (awsResult, error) {
	if _, _, err := rt(pt, ec); err != nil {
		return awsResult{}, err
	}
	var enc, dec, e2e []float64
	start := time.Now()
	for len(e2e) < plan.maxCycles && (len(e2e) < plan.minCycles || time.Since(start) < plan.budget) {
		t0 := time.Now()
		de, dd, err := rt(pt, ec)
		if err != nil {
			return awsResult{}, err
		}
		e2e = append(e2e, ms(time.Since(t0)))
		enc, dec = append(enc, ms(de)), append(dec, ms(dd))
	}
	total := time.Since(start).Seconds()
	r := awsResult{TestName: "throughput", DataSize: len(pt), Concurrency: 1,
		EncryptLatencyMs: mean(enc), DecryptLatencyMs: mean(dec), EndToEndLatencyMs: mean(e2e),
		OpsPerSecond: float64(len(e2e)) / total, BytesPerSecond: float64(len(e2e)*len(pt)) / total, Timestamp: stamp()}
	r.P50Latency, r.P95Latency, r.P99Latency = percentiles(e2e)
	return r, nil
}

// memoryTest samples the live heap every millisecond through a few cycles
// (after a GC each), and once at the end of each, and reports its largest growth over the baseline, and
// the size over the average growth, as AWS's harness does.
func memoryTest(rt suite.RoundTrip, pt []byte, ec map[string]string) (awsResult, error) {
	const cycles = 3
	var peak float64
	var avgs []float64
	for range cycles {
		runtime.GC()
		base := heapBytes()
		stop, done := make(chan struct{}), make(chan struct{})
		var maxMB, sum float64
		var n int
		go func() {
			defer close(done)
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					d := math.Max(0, float64(heapBytes())-float64(base)) / (1 << 20)
					maxMB, sum, n = math.Max(maxMB, d), sum+d, n+1
				}
			}
		}()
		_, _, err := rt(pt, ec)
		close(stop)
		<-done
		if err != nil {
			return awsResult{}, err
		}
		// One sample more once the cycle is done (no GC ran since its
		// allocations): a cycle shorter than the tick has no other.
		d := math.Max(0, float64(heapBytes())-float64(base)) / (1 << 20)
		maxMB, sum, n = math.Max(maxMB, d), sum+d, n+1
		peak = math.Max(peak, maxMB)
		if n > 0 {
			avgs = append(avgs, sum/float64(n))
		}
	}
	r := awsResult{TestName: "memory", DataSize: len(pt), Concurrency: 1, PeakMemoryMB: peak, Timestamp: stamp()}
	if avg := mean(avgs); avg > 0 {
		r.MemoryEfficiency = float64(len(pt)) / (avg * (1 << 20))
	}
	return r, nil
}

func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// concurrentTest runs perWorker cycles on each of n goroutines at once.
func concurrentTest(rt suite.RoundTrip, pt []byte, ec map[string]string, n, perWorker int) (awsResult, error) {
	var mu sync.Mutex
	var all []float64
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for range n {
		wg.Go(func() {
			for range perWorker {
				t0 := time.Now()
				_, _, err := rt(pt, ec)
				d := ms(time.Since(t0))
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				all = append(all, d)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return awsResult{}, firstErr
	}
	total := time.Since(start).Seconds()
	r := awsResult{TestName: "concurrent", DataSize: len(pt), Concurrency: n, EndToEndLatencyMs: mean(all),
		OpsPerSecond: float64(len(all)) / total, BytesPerSecond: float64(len(all)*len(pt)) / total, Timestamp: stamp()}
	r.P50Latency, r.P95Latency, r.P99Latency = percentiles(all)
	return r, nil
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// percentiles are the 50th, 95th and 99th, interpolated between ranks.
func percentiles(xs []float64) (p50, p95, p99 float64) {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	at := func(p float64) float64 {
		if len(s) == 0 {
			return 0
		}
		pos := p / 100 * float64(len(s)-1)
		lo := int(math.Floor(pos))
		hi := min(lo+1, len(s)-1)
		return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
	}
	return at(50), at(95), at(99)
}

// totalMemoryGB is the machine's memory from /proc/meminfo (0 elsewhere).
func totalMemoryGB() float64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var kb float64
	if _, err := fmt.Sscanf(string(b), "MemTotal: %f kB", &kb); err != nil {
		return 0
	}
	return math.Round(kb/(1<<20)*10) / 10
}
