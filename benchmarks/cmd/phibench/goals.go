package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/phicrypt/phicrypt/benchmarks/suite"
)

// goal is one of the performance goals of the issue that phibench answers
// (README "Performance"), checked against the rows of one run. check
// returns what was measured and whether it meets the goal; ok is false
// when a row it needs was not measured (with -run, say), and the goal is
// then left out.
type goal struct {
	text  string
	check func(g goalRows) (measured string, met, ok bool)
}

// goalRows finds rows by case name.
type goalRows []row

func (g goalRows) get(name string) (row, bool) {
	for _, r := range g {
		if r.name == name {
			return r, true
		}
	}
	return row{}, false
}

// ratio is the named row's time per byte over its counterpart's in impl.
func (g goalRows) ratio(name, impl string) (float64, bool) {
	r, ok := g.get(name)
	if !ok {
		return math.NaN(), false
	}
	x := ratio(g, r, impl)
	return x, !math.IsNaN(x)
}

// atMost is a goal on one ratio: the named row at most limit times its
// counterpart's time per byte in impl.
func atMost(text, name, impl string, limit float64) goal {
	return goal{text: text, check: func(g goalRows) (string, bool, bool) {
		x, ok := g.ratio(name, impl)
		return fmt.Sprintf("%.2f×", x), x <= limit, ok
	}}
}

// fasterBy is a goal on throughput: the named row at least times as fast as
// its counterpart in impl (measured as the inverse of the time ratio).
func fasterBy(text, name, impl string, times float64) goal {
	return goal{text: text, check: func(g goalRows) (string, bool, bool) {
		x, ok := g.ratio(name, impl)
		return fmt.Sprintf("%.2f×", 1/x), 1/x >= times, ok
	}}
}

const (
	streamName     = "phicrypt/stream-encrypt/64MiB/w1"
	streamName2    = "phicrypt/stream-encrypt/64MiB/w2"
	maxStreamRSS   = 32 << 20
	smallLatencyNs = 4000
)

// cachedSmall is the goal on a 1 KiB message with a cached data key.
func cachedSmall(text, name string) goal {
	return goal{text: text, check: func(g goalRows) (string, bool, bool) {
		r, ok := g.get(name)
		return fmt.Sprintf("%.2f µs, %d allocs", r.NsPerOp/1e3, allocs(r)),
			r.NsPerOp <= smallLatencyNs && allocs(r) <= 3, ok
	}}
}

// allocs is r's allocations per operation as go test -benchmem reports
// them: whole allocations, the fraction dropped (a pool refilled after a
// garbage collection adds a few over a run).
func allocs(r row) int64 { return int64(r.AllocsPerOp) }

// goals are the issue's, in its order.
var goals = []goal{
	{text: "field-seal 64 B ≤ 1.2× raw seal, 0 allocs", check: func(g goalRows) (string, bool, bool) {
		r, ok := g.get("phicrypt/field-seal/64B")
		x, ok2 := g.ratio("phicrypt/field-seal/64B", suite.ImplRawGCM)
		return fmt.Sprintf("%.2f×, %d allocs", x, allocs(r)), x <= 1.2 && allocs(r) == 0, ok && ok2
	}},
	atMost("field-open 64 B ≤ 1.2× raw open", "phicrypt/field-open/64B", suite.ImplRawGCM, 1.2),
	atMost("deterministic-seal 64 B ≤ 0.4× Tink", "phicrypt/deterministic-seal/64B", suite.ImplTink, 0.4),
	atMost("struct-seal 10 fields ≤ 1.3× ten raw seals", "phicrypt/struct-seal/64B/x10", suite.ImplRawGCM, 1.3),
	// Encrypt and Decrypt themselves, with their fresh outputs (the /alloc
	// rows), not the append forms the records measure.
	cachedSmall("Encrypt 1 KiB, cached key: ≤ 4 µs, ≤ 3 allocs", "phicrypt/cached-encrypt/1KiB/alloc"),
	cachedSmall("Decrypt 1 KiB, cached key: ≤ 4 µs, ≤ 3 allocs", "phicrypt/cached-decrypt/1KiB/alloc"),
	fasterBy("message-encrypt 64 MiB ≥ 0.8× raw seal throughput", "phicrypt/message-encrypt/64MiB", suite.ImplRawGCM, 0.8),
	fasterBy("message-encrypt 64 MiB ≥ 5× the AWS Go ESDK", "phicrypt/message-encrypt/64MiB", suite.ImplAWS, 5),
	fasterBy("message-encrypt 64 MiB, 2 workers, ≥ 5× the AWS Go ESDK", "phicrypt/message-encrypt/64MiB/w2", suite.ImplAWS, 5),
	fasterBy("stream-encrypt 64 MiB ≥ 0.9× raw seal at 1 MiB", streamName, suite.ImplRawGCM, 0.9),
	fasterBy("stream-encrypt 64 MiB ≥ 1.25× Tink streaming AEAD (its faster segment size)", streamName, suite.ImplTink, 1.25),
	{text: "stream-encrypt 64 MiB, 2 workers ≥ 1.8× 1 worker", check: func(g goalRows) (string, bool, bool) {
		one, ok := g.get(streamName)
		two, ok2 := g.get(streamName2)
		x := one.NsPerOp / two.NsPerOp
		return fmt.Sprintf("%.2f×", x), x >= 1.8, ok && ok2
	}},
	fasterBy("stream-decrypt 64 MiB ≥ 0.9× raw open at 1 MiB (in cache)", "phicrypt/stream-decrypt/64MiB", suite.ImplRawGCM, 0.9),
	{text: "stream-decrypt 64 MiB ≥ 0.9× raw open of the same 64 MiB", check: func(g goalRows) (string, bool, bool) {
		r, ok := g.get("phicrypt/stream-decrypt/64MiB")
		raw, ok2 := g.get("raw-gcm/open/64MiB")
		x := raw.NsPerOp / r.NsPerOp
		return fmt.Sprintf("%.2f×", x), x >= 0.9, ok && ok2
	}},
	atMost("range-read 1 MiB of 64 MiB, open included, ≤ 1.3× raw open of 1 MiB", "phicrypt/range-read/1MiB/of64MiB", suite.ImplRawGCM, 1.3),
	fasterBy("message-encrypt 1 KiB (0x0478, no cache) ≥ 50× the AWS Go ESDK", "phicrypt/message-encrypt/1KiB", suite.ImplAWS, 50),
	fasterBy("message-decrypt 1 KiB (0x0478, no cache) ≥ 50× the AWS Go ESDK", "phicrypt/message-decrypt/1KiB", suite.ImplAWS, 50),
	{text: "cached-encrypt ≤ 0.0001 KMS calls per message", check: func(g goalRows) (string, bool, bool) {
		r, ok := g.get("phicrypt/cached-encrypt/1KiB")
		return fmt.Sprintf("%.4g", r.KMSCallsPerOp), r.KMSCallsPerOp <= 0.0001, ok
	}},
	{text: "streaming peak RSS ≤ 32 MiB", check: func(g goalRows) (string, bool, bool) {
		var peak int64
		for _, r := range g {
			if r.Impl == suite.ImplPhicrypt && strings.HasPrefix(r.Op, "stream-") {
				peak = max(peak, r.PeakRSSBytes)
			}
		}
		return fmtRSS(peak), peak <= maxStreamRSS, peak > 0
	}},
}

// goalResult is one goal as measured in a run.
type goalResult struct {
	text, measured string
	met            bool
}

// checkGoals answers every goal whose rows were measured.
func checkGoals(rows []row) []goalResult {
	var out []goalResult
	for _, gl := range goals {
		measured, met, ok := gl.check(goalRows(rows))
		if ok {
			out = append(out, goalResult{gl.text, measured, met})
		}
	}
	return out
}

// printGoals prints the goals this run answers, met or missed.
func printGoals(w io.Writer, results []goalResult) {
	if len(results) == 0 {
		return
	}
	fmt.Fprintln(w, "\nGoals (same-run ratios; a shared machine moves them between runs):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range results {
		verdict := "met"
		if !r.met {
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.text, r.measured, verdict)
	}
	tw.Flush()
}
