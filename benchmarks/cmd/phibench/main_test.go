package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestMain lets the test binary serve as phibench's child process, as the
// command re-executes itself for streaming cases.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		os.Exit(childMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// recordKeys are the -json record's fields, exactly.
var recordKeys = []string{"allocs_per_op", "bytes_per_op", "impl", "kms_calls_per_op", "mb_per_s", "ns_per_op",
	"op", "peak_rss_bytes", "size_bytes", "suite", "workers"}

// opsOf are the ops each implementation's records may have.
var opsOf = map[string][]string{
	"phicrypt": {"field-seal", "field-open", "deterministic-seal", "blind-index", "struct-seal", "message-encrypt",
		"message-decrypt", "stream-encrypt", "stream-decrypt", "range-read", "cached-encrypt"},
	"raw-gcm":     {"seal", "open"},
	"tink":        {"aead-encrypt", "aead-decrypt", "daead-encrypt", "stream-encrypt", "stream-decrypt", "envelope-encrypt"},
	"aws-esdk-go": {"message-encrypt", "message-decrypt"},
}

// A -quick run of one case per kind, each once, writes records of exactly
// the schema, a table and a plot; the streaming case runs in a child and
// has its peak RSS.
func TestQuickRunWritesTheSchema(t *testing.T) {
	dir := t.TempDir()
	jsonPath, plotPath := filepath.Join(dir, "out.json"), filepath.Join(dir, "out.svg")
	only := `^(raw-gcm/(seal|open)/1KiB|phicrypt/message-(en|de)crypt/1KiB|tink/aead-encrypt/1KiB|aws-esdk-go/message-encrypt/1KiB|` +
		`phicrypt/cached-encrypt/1KiB|phicrypt/field-seal/64B|phicrypt/stream-encrypt/64MiB/w1|raw-gcm/seal/1MiB)$`
	var stdout, stderr bytes.Buffer
	err := run([]string{"-quick", "-benchtime", "1x", "-count", "2", "-run", only, "-json", jsonPath, "-plot", plotPath}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("phibench: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "[10/10 round 2/2] ") {
		t.Errorf("want a progress line per case, stderr:\n%s", stderr.String())
	}
	if !strings.Contains(stdout.String(), "phicrypt/message-encrypt/1KiB") || !strings.Contains(stdout.String(), "×AWS ESDK") {
		t.Errorf("the table lacks a row or the ratio columns:\n%s", stdout.String())
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	if err := json.Unmarshal(raw, &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 10 {
		t.Fatalf("got %d records, want 10", len(recs))
	}
	for _, r := range recs {
		checkRecord(t, r)
	}
	stream := find(t, recs, "phicrypt", "stream-encrypt")
	if rss := stream["peak_rss_bytes"].(float64); rss < 1<<20 || rss > 1<<32 {
		t.Errorf("stream-encrypt peak RSS %v, want a child's resident set", rss)
	}
	if w := stream["workers"].(float64); w != 1 {
		t.Errorf("stream-encrypt workers %v, want 1", w)
	}
	if kms := find(t, recs, "phicrypt", "cached-encrypt")["kms_calls_per_op"].(float64); kms != 0 {
		t.Errorf("a warm cache made %v KMS calls per message", kms)
	}
	svg, err := os.ReadFile(plotPath)
	if err != nil || !bytes.Contains(svg, []byte("<svg")) {
		t.Fatalf("no SVG plot written: %v", err)
	}
}

func checkRecord(t *testing.T, r map[string]any) {
	t.Helper()
	var keys []string
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !slices.Equal(keys, recordKeys) {
		t.Fatalf("record fields %v, want %v", keys, recordKeys)
	}
	impl, _ := r["impl"].(string)
	op, _ := r["op"].(string)
	if !slices.Contains(opsOf[impl], op) {
		t.Errorf("record impl %q op %q is not in the schema", impl, op)
	}
	for _, k := range []string{"size_bytes", "workers", "ns_per_op", "mb_per_s", "allocs_per_op", "bytes_per_op", "kms_calls_per_op", "peak_rss_bytes"} {
		if _, ok := r[k].(float64); !ok {
			t.Errorf("%s/%s: %s is %T, want a number", impl, op, k, r[k])
		}
	}
	if s, ok := r["suite"].(string); !ok || (s != "" && !strings.HasPrefix(s, "0x")) {
		t.Errorf("%s/%s: suite %v", impl, op, r["suite"])
	}
	if r["ns_per_op"].(float64) <= 0 || r["mb_per_s"].(float64) <= 0 {
		t.Errorf("%s/%s: ns_per_op %v, mb_per_s %v, want both above 0", impl, op, r["ns_per_op"], r["mb_per_s"])
	}
}

func find(t *testing.T, recs []map[string]any, impl, op string) map[string]any {
	t.Helper()
	for _, r := range recs {
		if r["impl"] == impl && r["op"] == op {
			return r
		}
	}
	t.Fatalf("no %s %s record", impl, op)
	return nil
}

func TestFlagsRefuseBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"-sweep", "frame-length"},
		{"-sweep", "colour=1,2"},
		{"-sweep", "workers=0"},
		{"-sweep", "frame-length=4q"},
		{"-plot", "out.pdf"},
		{"-count", "0"},
		{"-run", "("},
		{"stray"},
	} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%q: accepted", args)
		}
	}
	c, err := parseFlags([]string{"-sweep", "frame-length=4k,64k,1m", "-sweep", "workers=1,2,4"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.opts.FrameLengths, []int{4096, 65536, 1 << 20}) || !slices.Equal(c.opts.Workers, []int{1, 2, 4}) {
		t.Errorf("sweep read as frame lengths %v, workers %v", c.opts.FrameLengths, c.opts.Workers)
	}
}

func TestPercentilesInterpolate(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3} // sorted 1..5
	p50, p95, p99 := percentiles(xs)
	if p50 != 3 || p95 != 4.8 || p99 != 4.96 {
		t.Errorf("percentiles %v %v %v, want 3 4.8 4.96", p50, p95, p99)
	}
	if a, b, c := percentiles(nil); a != 0 || b != 0 || c != 0 {
		t.Errorf("empty input gave %v %v %v", a, b, c)
	}
}
