package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phicrypt/phicrypt/benchmarks/suite"
)

// The latency experiment's table has both runs and every percentile, and
// its plot is written beside the throughput plot.
func TestLatencyTableAndPlot(t *testing.T) {
	env, err := suite.NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	var stderr, out bytes.Buffer
	runs, err := measureLatency(env, true, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	printLatency(&out, true, runs)
	for _, want := range []string{"refresh-ahead off", "refresh-ahead on", "p99.9", "max"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the latency table lacks %q:\n%s", want, out.String())
		}
	}
	path := latencyPlotPath(filepath.Join(t.TempDir(), "out.svg"))
	if !strings.HasSuffix(path, "out-latency.svg") {
		t.Errorf("latency plot path %q", path)
	}
	if err := drawLatency(path, runs); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || !bytes.Contains(b, []byte("<svg")) {
		t.Fatalf("no latency SVG: %v", err)
	}
}
