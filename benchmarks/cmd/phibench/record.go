package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/phicrypt/phicrypt/benchmarks/suite"
)

// Record is one case's result in the -json output. Fields that do not
// apply are 0.
type Record struct {
	Impl          string  `json:"impl"`
	Op            string  `json:"op"`
	Suite         string  `json:"suite"`
	SizeBytes     int64   `json:"size_bytes"`
	Workers       int     `json:"workers"`
	NsPerOp       float64 `json:"ns_per_op"`
	MBPerS        float64 `json:"mb_per_s"`
	AllocsPerOp   float64 `json:"allocs_per_op"`
	BytesPerOp    float64 `json:"bytes_per_op"`
	KMSCallsPerOp float64 `json:"kms_calls_per_op"`
	PeakRSSBytes  int64   `json:"peak_rss_bytes"`
}

// row is a Record with what the table needs besides.
type row struct {
	Record
	name       string
	noJSON     bool
	kmsLatency time.Duration
}

func newRow(c suite.Case, res testing.BenchmarkResult, rss int64) row {
	r := row{name: c.Name, noJSON: c.NoJSON, kmsLatency: c.KMSLatency}
	r.Impl, r.Op, r.Suite, r.Workers = c.Impl, c.Op, c.Suite, c.Workers
	r.SizeBytes = c.Size * int64(max(c.Count, 1))
	r.NsPerOp = float64(res.T.Nanoseconds()) / float64(res.N)
	if r.NsPerOp > 0 {
		r.MBPerS = float64(r.SizeBytes) * 1e3 / r.NsPerOp // bytes/ns × 1e9 / 1e6
	}
	r.AllocsPerOp = float64(res.MemAllocs) / float64(res.N)
	r.BytesPerOp = float64(res.MemBytes) / float64(res.N)
	r.KMSCallsPerOp = res.Extra[suite.KMSCallsMetric]
	r.PeakRSSBytes = rss
	return r
}

// encryptSide says whether op encrypts (its raw peer is seal).
func encryptSide(op string) bool {
	switch op {
	case "seal", "field-seal", "deterministic-seal", "struct-seal", "message-encrypt", "stream-encrypt",
		"cached-encrypt", "aead-encrypt", "daead-encrypt", "envelope-encrypt":
		return true
	}
	return false
}

// peer is the op and size of r's counterpart in the column of impl ("" when
// it has none), and the implementation that has it: impl, or plain S3 for
// the s3 rows in the raw column.
func peer(r row, impl string) (peerImpl, op string, size int64) {
	if r.Impl == impl || r.Op == "blind-index" || r.Op == "store-read" || r.Impl == suite.ImplPlainS3 {
		return "", "", 0
	}
	if r.kmsLatency > 0 && r.KMSCallsPerOp > 0 {
		return "", "", 0 // no counterpart waited for the same KMS latency
	}
	if strings.HasPrefix(r.Op, "s3-") {
		if impl != suite.ImplRawGCM {
			return "", "", 0
		}
		return suite.ImplPlainS3, r.Op, r.SizeBytes
	}
	op, size = peerOp(r, impl)
	return impl, op, size
}

// peerOp is peer for the rows that compare with impl itself.
func peerOp(r row, impl string) (op string, size int64) {
	enc := encryptSide(r.Op)
	stream := r.Op == "stream-encrypt" || r.Op == "stream-decrypt"
	switch impl {
	case suite.ImplRawGCM:
		op = "open"
		if enc {
			op = "seal"
		}
		if stream { // the goals compare streams with a 1 MiB seal or open
			return op, suite.MiB
		}
		return op, r.SizeBytes
	case suite.ImplTink:
		switch {
		case stream:
			return r.Op, r.SizeBytes
		case r.Op == "deterministic-seal":
			return "daead-encrypt", r.SizeBytes
		case r.Op == "range-read" || r.Op == "struct-seal":
			return "", 0
		case r.KMSCallsPerOp >= 0.5 && enc:
			return "envelope-encrypt", r.SizeBytes
		case enc:
			return "aead-encrypt", r.SizeBytes
		}
		return "aead-decrypt", r.SizeBytes
	case suite.ImplAWS:
		if r.KMSCallsPerOp >= 0.5 {
			return "", 0 // the AWS rows use a raw AES keyring: no KMS call
		}
		switch r.Op {
		case "message-encrypt", "cached-encrypt":
			return "message-encrypt", r.SizeBytes
		case "message-decrypt":
			return "message-decrypt", r.SizeBytes
		}
	}
	return "", 0
}

// ratio is r's time per byte over its counterpart's in impl (the fastest
// if several match, such as Tink's two segment sizes), or NaN.
func ratio(rows []row, r row, impl string) float64 {
	peerImpl, op, size := peer(r, impl)
	if op == "" {
		return math.NaN()
	}
	best := math.NaN()
	for _, p := range rows {
		// Table-only rows are no counterparts, but for plain S3's, which
		// have no record.
		if p.Impl != peerImpl || p.Op != op || p.SizeBytes != size || (p.noJSON && p.Impl != suite.ImplPlainS3) {
			continue
		}
		if impl == suite.ImplAWS && p.Suite != r.Suite && !(r.Op == "cached-encrypt" && p.Suite == suite.Suite0478) {
			continue
		}
		if impl == suite.ImplRawGCM && r.Op != "struct-seal" && isTen(p) {
			continue
		}
		per := p.NsPerOp / float64(max(p.SizeBytes, 1))
		if math.IsNaN(best) || per < best {
			best = per
		}
	}
	return r.NsPerOp / float64(max(r.SizeBytes, 1)) / best
}

// isTen is the ten raw seals beside the ten-field struct.
func isTen(r row) bool { return len(r.name) > 4 && r.name[len(r.name)-4:] == "/x10" }

func fmtFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "-"
	case f >= 100:
		return fmt.Sprintf("%.0f", f)
	case f >= 10:
		return fmt.Sprintf("%.1f", f)
	}
	return fmt.Sprintf("%.2f", f)
}

func fmtRatio(f float64) string {
	if math.IsNaN(f) {
		return "-"
	}
	return fmt.Sprintf("%.2f×", f)
}

func fmtRSS(n int64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/suite.MiB)
}

// printTable writes the results with ratios of time per byte against raw
// GCM, Tink and the AWS Go ESDK (below 1 is faster).
func printTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "name\tns/op\tMB/s\tallocs/op\tB/op\tkms/op\tpeak RSS\t×raw GCM\t×Tink\t×AWS ESDK\t")
	for _, r := range rows {
		kms := "-"
		if r.KMSCallsPerOp > 0 || r.Op == "cached-encrypt" {
			kms = fmt.Sprintf("%.4g", r.KMSCallsPerOp)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.name,
			fmtFloat(r.NsPerOp), fmtFloat(r.MBPerS), fmtFloat(r.AllocsPerOp), fmtFloat(r.BytesPerOp), kms, fmtRSS(r.PeakRSSBytes),
			fmtRatio(ratio(rows, r, suite.ImplRawGCM)), fmtRatio(ratio(rows, r, suite.ImplTink)), fmtRatio(ratio(rows, r, suite.ImplAWS)))
	}
	tw.Flush()
	fmt.Fprintln(w, "Ratios are time per byte over the counterpart's in the same run (below 1 is faster); streams compare with a 1 MiB raw seal or open,")
	fmt.Fprintln(w, "s3 rows with plain S3 requests of the same size on the same endpoint (in the raw column); rows that wait for kmsmock's added latency have none,\n"+
		"and rows that call KMS have no AWS ESDK ratio (its rows use a raw AES keyring).")
}
