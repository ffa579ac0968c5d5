package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"testing"
	"time"
)

// awsMetadataKeys and awsResultKeys are the fields of AWS's
// esdk-performance-testing results file that awsFile and awsResult claim
// to write, exactly.
var (
	awsMetadataKeys = []string{"cpu_count", "go_version", "language", "timestamp", "total_memory_gb", "total_tests"}
	awsResultKeys   = []string{"bytes_per_second", "concurrency", "cpu_count", "data_size", "decrypt_latency_ms",
		"encrypt_latency_ms", "end_to_end_latency_ms", "go_version", "language", "memory_efficiency_ratio",
		"ops_per_second", "p50_latency", "p95_latency", "p99_latency", "peak_memory_mb", "test_name", "timestamp",
		"total_memory_gb"}
)

// tinyPlan is -aws-json on two small sizes, a few cycles each.
var tinyPlan = awsPlan{sizes: []int64{64, 1024}, minCycles: 3, maxCycles: 20, budget: 20 * time.Millisecond,
	concurrency: []int{2}, perWorker: 2}

// A run with -aws-json writes a file of exactly the esdk-performance-testing
// schema: every field of the right type, one throughput, memory and
// concurrent result per language and size, plausible values, ordered
// percentiles.
func TestAWSJSONFollowsTheSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aws.json")
	var stdout, stderr bytes.Buffer
	c, err := parseFlags([]string{"-quick", "-benchtime", "1x", "-count", "1", "-run", "^raw-gcm/seal/64B$", "-aws-json", path}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	c.awsPlan = tinyPlan
	start := time.Now().UTC().Truncate(time.Second)
	if err := runConfig(c, &stdout, &stderr); err != nil {
		t.Fatalf("phibench: %v\n%s", err, stderr.String())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]json.RawMessage
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if keys := sortedKeys(file); !slices.Equal(keys, []string{"metadata", "results"}) {
		t.Fatalf("top-level fields %v, want metadata and results", keys)
	}
	var meta map[string]any
	var results []map[string]any
	if err := json.Unmarshal(file["metadata"], &meta); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(file["results"], &results); err != nil {
		t.Fatal(err)
	}
	checkAWSMetadata(t, meta, len(results), start)
	seen := map[string]int{}
	for _, r := range results {
		checkAWSResult(t, r, meta, start)
		key := r["language"].(string) + "/" + r["test_name"].(string) + "/" + jsonString(r["data_size"]) + "/" + jsonString(r["concurrency"])
		seen[key]++
	}
	var want []string
	for _, lang := range []string{langPhicrypt, langAWS} {
		for _, size := range []string{"64", "1024"} {
			want = append(want, lang+"/throughput/"+size+"/1", lang+"/memory/"+size+"/1", lang+"/concurrent/"+size+"/2")
		}
	}
	for _, k := range want {
		if seen[k] != 1 {
			t.Errorf("%d results %s, want 1", seen[k], k)
		}
	}
	if len(results) != len(want) {
		t.Errorf("%d results, want %d: %v", len(results), len(want), seen)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// number returns m[k] as a float64, failing t unless it is a JSON number
// (an integer when integer is set).
func number(t *testing.T, m map[string]any, k string, integer bool) float64 {
	t.Helper()
	f, ok := m[k].(float64)
	if !ok {
		t.Fatalf("%s is %T (%v), want a number", k, m[k], m[k])
	}
	if integer && f != math.Trunc(f) {
		t.Errorf("%s is %v, want an integer", k, f)
	}
	return f
}

func str(t *testing.T, m map[string]any, k string) string {
	t.Helper()
	s, ok := m[k].(string)
	if !ok {
		t.Fatalf("%s is %T (%v), want a string", k, m[k], m[k])
	}
	return s
}

// checkStamp checks a timestamp in the harness's format, taken during the
// test.
func checkStamp(t *testing.T, s string, start time.Time) {
	t.Helper()
	ts, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		t.Errorf("timestamp %q: %v", s, err)
		return
	}
	if ts.Before(start) || ts.After(time.Now().UTC().Add(time.Second)) {
		t.Errorf("timestamp %s is not during the test (from %s)", s, start.Format(time.DateTime))
	}
}

func checkAWSMetadata(t *testing.T, meta map[string]any, results int, start time.Time) {
	t.Helper()
	if keys := sortedKeys(meta); !slices.Equal(keys, awsMetadataKeys) {
		t.Fatalf("metadata fields %v, want %v", keys, awsMetadataKeys)
	}
	if lang := str(t, meta, "language"); lang != "go" {
		t.Errorf("metadata language %q, want go", lang)
	}
	if v := str(t, meta, "go_version"); v != runtime.Version() {
		t.Errorf("metadata go_version %q, want %q", v, runtime.Version())
	}
	if n := number(t, meta, "cpu_count", true); n != float64(runtime.NumCPU()) {
		t.Errorf("metadata cpu_count %v, want %d", n, runtime.NumCPU())
	}
	if gb := number(t, meta, "total_memory_gb", false); gb < 0 || gb > 1<<16 || (runtime.GOOS == "linux" && gb == 0) {
		t.Errorf("metadata total_memory_gb %v", gb)
	}
	if n := number(t, meta, "total_tests", true); n != float64(results) {
		t.Errorf("metadata total_tests %v, but %d results", n, results)
	}
	checkStamp(t, str(t, meta, "timestamp"), start)
}

func checkAWSResult(t *testing.T, r, meta map[string]any, start time.Time) {
	t.Helper()
	if keys := sortedKeys(r); !slices.Equal(keys, awsResultKeys) {
		t.Fatalf("result fields %v, want %v", keys, awsResultKeys)
	}
	name, lang := str(t, r, "test_name"), str(t, r, "language")
	if lang != langPhicrypt && lang != langAWS {
		t.Errorf("language %q", lang)
	}
	checkStamp(t, str(t, r, "timestamp"), start)
	for _, k := range []string{"go_version", "cpu_count", "total_memory_gb"} {
		if r[k] != meta[k] {
			t.Errorf("%s %s: %s %v, metadata's %v", lang, name, k, r[k], meta[k])
		}
	}
	size, conc := number(t, r, "data_size", true), number(t, r, "concurrency", true)
	if size != 64 && size != 1024 {
		t.Errorf("%s %s: data_size %v, not a planned size", lang, name, size)
	}
	enc, dec, e2e := number(t, r, "encrypt_latency_ms", false), number(t, r, "decrypt_latency_ms", false), number(t, r, "end_to_end_latency_ms", false)
	ops, bps := number(t, r, "ops_per_second", false), number(t, r, "bytes_per_second", false)
	p50, p95, p99 := number(t, r, "p50_latency", false), number(t, r, "p95_latency", false), number(t, r, "p99_latency", false)
	peak, eff := number(t, r, "peak_memory_mb", false), number(t, r, "memory_efficiency_ratio", false)
	timed := name == "throughput" || name == "concurrent"
	switch name {
	case "throughput":
		if conc != 1 || enc <= 0 || dec <= 0 || e2e < enc+dec-1e-9 {
			t.Errorf("%s %s: concurrency %v, encrypt %v ms, decrypt %v ms, end to end %v ms: want 1 and a cycle at least both halves",
				lang, name, conc, enc, dec, e2e)
		}
	case "concurrent":
		if conc != 2 || e2e <= 0 || enc != 0 || dec != 0 {
			t.Errorf("%s %s: concurrency %v, end to end %v ms, halves %v and %v ms: want 2, a cycle, no halves", lang, name, conc, e2e, enc, dec)
		}
	case "memory":
		if conc != 1 || peak < 0 || peak > 1024 || eff < 0 || e2e != 0 || ops != 0 || p50 != 0 {
			t.Errorf("%s %s: concurrency %v, peak %v MB, efficiency %v, latency %v, ops %v, p50 %v: want heap figures only",
				lang, name, conc, peak, eff, e2e, ops, p50)
		}
	default:
		t.Errorf("test_name %q", name)
	}
	if !timed {
		return
	}
	if peak != 0 || eff != 0 {
		t.Errorf("%s %s: memory figures %v MB, %v in a timed test", lang, name, peak, eff)
	}
	if ops <= 0 || math.Abs(bps-ops*size) > 1e-6*bps {
		t.Errorf("%s %s: %v ops/s and %v bytes/s of %v-byte messages", lang, name, ops, bps, size)
	}
	if !(0 < p50 && p50 <= p95 && p95 <= p99) {
		t.Errorf("%s %s: percentiles %v, %v, %v, want 0 < p50 <= p95 <= p99", lang, name, p50, p95, p99)
	}
	if p50 > 1000 || e2e > 1000 || ops*e2e/1000 > conc*1.01 {
		t.Errorf("%s %s: a %v-byte cycle of %v ms (p50 %v ms) at %v ops/s on %v goroutines is implausible", lang, name, size, e2e, p50, ops, conc)
	}
}
