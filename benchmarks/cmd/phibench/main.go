// Command phibench measures phicrypt beside raw AES-256-GCM, Tink for Go
// and the AWS Encryption SDK for Go, in one process and one run, and
// prints a table of ns/op, MB/s, allocations and same-run ratios. Run it
// from the benchmarks module:
//
//	cd benchmarks && go run ./cmd/phibench -quick -json out.json -plot out.svg
//
// Flags:
//
//	-quick            the goals' sizes with a short benchtime (under 3 minutes on 2 cores)
//	-benchtime D      time per case, or Nx iterations (default 1s, 250ms with -quick)
//	-count N          rounds over every case, keeping each case's fastest (default 3)
//	-run REGEXP       only the cases whose name matches
//	-json FILE        records {"impl", "op", "suite", "size_bytes", "workers", "ns_per_op", ...}
//	-aws-json FILE    results in the schema of aws/aws-encryption-sdk's esdk-performance-testing
//	-plot FILE        throughput against size (.svg or .png)
//	-sweep K=V,V,...  frame-length=4k,64k,1m or workers=1,2,4 (repeatable): a tuning sweep
//	-rss=false        run streaming cases in-process (no peak RSS)
//	-latency=false    skip the cache latency experiment (1 KiB Encrypt
//	                  percentiles with kmsmock 20 ms away, refresh-ahead off
//	                  and on; also skipped with -run or -sweep)
//
// Streaming cases run in a child process (phibench re-executed with a
// hidden first argument) so that their peak RSS is their own.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/benchmarks/suite"
	"github.com/phicrypt/phicrypt/phicrypt"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		os.Exit(childMain(os.Args[2:]))
	}
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "phibench:", err)
		os.Exit(1)
	}
}

// config is the parsed command line.
type config struct {
	quick     bool
	benchtime string
	count     int
	only      *regexp.Regexp
	jsonFile  string
	awsJSON   string
	plotFile  string
	rss       bool
	latency   bool
	opts      suite.Options
	// awsPlan is what -aws-json runs (planFor(quick) unless a test sets it).
	awsPlan awsPlan
}

// sweepFlag collects -sweep values.
type sweepFlag struct{ opts *suite.Options }

func (s sweepFlag) String() string { return "" }

func (s sweepFlag) Set(v string) error {
	key, list, ok := strings.Cut(v, "=")
	if !ok {
		return errors.New("want KEY=V1,V2,... (frame-length or workers)")
	}
	var vals []int
	for _, item := range strings.Split(list, ",") {
		n, err := parseSize(item)
		if err != nil {
			return err
		}
		vals = append(vals, n)
	}
	switch key {
	case "frame-length":
		if m := slices.Max(vals); m > phicrypt.DefaultMaxFrameLength {
			return fmt.Errorf("frame length %d: at most %d (phicrypt's MaxFrameLength)", m, phicrypt.DefaultMaxFrameLength)
		}
		s.opts.FrameLengths = append(s.opts.FrameLengths, vals...)
	case "workers":
		if m := slices.Max(vals); m > maxSweepWorkers {
			return fmt.Errorf("%d workers: at most %d (what phicrypt allows)", m, maxSweepWorkers)
		}
		s.opts.Workers = append(s.opts.Workers, vals...)
	default:
		return fmt.Errorf("unknown sweep %q (frame-length or workers)", key)
	}
	return nil
}

// maxSweepWorkers is the most workers phicrypt.Config allows.
const maxSweepWorkers = 256

// parseSize reads 4096, 4k, 64K, 1m, 1MiB.
func parseSize(s string) (int, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "ib"), "b")
	mult := 1
	switch {
	case strings.HasSuffix(t, "k"):
		mult, t = suite.KiB, strings.TrimSuffix(t, "k")
	case strings.HasSuffix(t, "m"):
		mult, t = suite.MiB, strings.TrimSuffix(t, "m")
	}
	n, err := strconv.Atoi(t)
	if err != nil || n <= 0 || n > 1<<30/mult {
		return 0, fmt.Errorf("bad size or count %q", s)
	}
	return n * mult, nil
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("phibench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&c.quick, "quick", false, "the goals' sizes with a short benchtime (under 3 minutes on 2 cores)")
	fs.StringVar(&c.benchtime, "benchtime", "", "time per case, or Nx iterations (default 1s, 250ms with -quick)")
	fs.IntVar(&c.count, "count", 3, "rounds over every case, keeping each case's fastest (the machine may be shared)")
	run := fs.String("run", "", "only the cases whose name matches this regular expression")
	fs.StringVar(&c.jsonFile, "json", "", "write the records as a JSON array to `file`")
	fs.StringVar(&c.awsJSON, "aws-json", "", "write results in the schema of AWS's esdk-performance-testing to `file`")
	fs.StringVar(&c.plotFile, "plot", "", "draw throughput against size to `file` (.svg or .png)")
	fs.BoolVar(&c.rss, "rss", true, "run streaming cases in a child process and record its peak RSS")
	fs.BoolVar(&c.latency, "latency", true, "run the cache latency experiment (refresh-ahead off and on; skipped with -run or -sweep)")
	fs.Var(sweepFlag{&c.opts}, "sweep", "tuning sweep: frame-length=4k,64k,1m or workers=1,2,4 (repeatable)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c.opts.Quick = c.quick
	if c.count < 1 || c.count > 100 {
		return c, errors.New("-count: want 1 to 100")
	}
	if c.benchtime == "" {
		c.benchtime = "1s"
		if c.quick {
			c.benchtime = "250ms"
		}
	}
	if *run != "" {
		re, err := regexp.Compile(*run)
		if err != nil {
			return c, fmt.Errorf("-run: %w", err)
		}
		c.only = re
	}
	if c.plotFile != "" && !strings.HasSuffix(c.plotFile, ".svg") && !strings.HasSuffix(c.plotFile, ".png") {
		return c, errors.New("-plot: the file must end in .svg or .png")
	}
	for flagName, path := range map[string]string{"-json": c.jsonFile, "-aws-json": c.awsJSON, "-plot": c.plotFile} {
		if err := checkWritable(path); err != nil {
			return c, fmt.Errorf("%s: %w", flagName, err)
		}
	}
	c.awsPlan = planFor(c.quick)
	return c, nil
}

// checkWritable fails now, rather than after the whole run, when path
// ("" for none) cannot be written: it opens the file for writing without
// changing it, and removes it again if it did not exist.
func checkWritable(path string) error {
	if path == "" {
		return nil
	}
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	f.Close()
	if errors.Is(statErr, os.ErrNotExist) {
		return os.Remove(path)
	}
	return nil
}

// setBenchtime sets the testing package's benchtime, which
// testing.Benchmark reads.
func setBenchtime(v string) error {
	testing.Init()
	if err := flag.Set("test.benchtime", v); err != nil {
		return fmt.Errorf("-benchtime %q: %w", v, err)
	}
	return nil
}

func run(args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	return runConfig(c, stdout, stderr)
}

// newEnv sets the benchtime of c and makes the cases' Env.
func newEnv(c config) (*suite.Env, error) {
	if err := setBenchtime(c.benchtime); err != nil {
		return nil, err
	}
	return suite.NewEnv()
}

// runConfig is run after the command line is parsed.
func runConfig(c config, stdout, stderr io.Writer) error {
	env, err := newEnv(c)
	if err != nil {
		return err
	}
	defer env.Close()
	if len(c.opts.FrameLengths) == 0 && len(c.opts.Workers) == 0 {
		for _, line := range suite.Unavailable() {
			fmt.Fprintln(stderr, "phibench:", line)
		}
	}
	var cases []suite.Case
	for _, cs := range suite.Cases(env, c.opts) {
		if c.only == nil || c.only.MatchString(cs.Name) {
			cases = append(cases, cs)
		}
	}
	if len(cases) == 0 {
		return errors.New("no case matches -run")
	}
	start := time.Now()
	rows, failed := measure(c, cases, stderr)
	fmt.Fprintf(stderr, "phibench: %d cases, %d rounds in %v\n", len(rows), c.count, time.Since(start).Round(time.Millisecond))
	printTable(stdout, rows)
	printGoals(stdout, checkGoals(rows))
	var lat []latencyRun
	if c.latency && c.only == nil && len(c.opts.FrameLengths) == 0 && len(c.opts.Workers) == 0 {
		if lat, err = measureLatency(env, c.quick, stderr); err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		printLatency(stdout, c.quick, lat)
	}
	if c.jsonFile != "" {
		if err := writeJSON(c.jsonFile, rows); err != nil {
			return err
		}
	}
	if c.plotFile != "" {
		if err := drawPlot(c.plotFile, rows); err != nil {
			return fmt.Errorf("-plot: %w", err)
		}
		if len(lat) > 0 {
			if err := drawLatency(latencyPlotPath(c.plotFile), lat); err != nil {
				return fmt.Errorf("-plot: %w", err)
			}
		}
	}
	if c.awsJSON != "" {
		if err := writeAWSJSON(c.awsJSON, env, c.awsPlan, stderr); err != nil {
			return fmt.Errorf("-aws-json: %w", err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d cases failed (run them with go test ./suite/ -bench to see why)", failed)
	}
	return nil
}

// measure runs every case c.count times, in rounds (so that a slow spell
// of a shared machine does not fall on one case's every run), and keeps
// each case's fastest result and largest peak RSS. It prints a progress
// line per case and round.
func measure(c config, cases []suite.Case, stderr io.Writer) ([]row, int) {
	best := make([]*row, len(cases))
	failedCase := make([]bool, len(cases))
	for round := 1; round <= c.count; round++ {
		for i, cs := range cases {
			if failedCase[i] {
				continue
			}
			fmt.Fprintf(stderr, "[%d/%d round %d/%d] %s ... ", i+1, len(cases), round, c.count, cs.Name)
			r, n, err := measureOne(c, cs)
			if err != nil {
				failedCase[i] = true
				fmt.Fprintf(stderr, "FAILED: %v\n", err)
				continue
			}
			fmt.Fprintf(stderr, "%s ns/op, %d iterations\n", fmtFloat(r.NsPerOp), n)
			if best[i] == nil {
				best[i] = &r
				continue
			}
			rss := max(best[i].PeakRSSBytes, r.PeakRSSBytes)
			if r.NsPerOp < best[i].NsPerOp {
				*best[i] = r
			}
			best[i].PeakRSSBytes = rss
		}
	}
	var rows []row
	failed := 0
	for i := range cases {
		if failedCase[i] {
			failed++
		} else {
			rows = append(rows, *best[i])
		}
	}
	return rows, failed
}

// measureOne runs cs once (in a child when it streams and c.rss is set).
func measureOne(c config, cs suite.Case) (row, int, error) {
	var res testing.BenchmarkResult
	var rss int64
	var err error
	if cs.Streaming && c.rss {
		res, rss, err = runChild(c, cs.Name)
	} else {
		res = testing.Benchmark(cs.Bench)
	}
	if err == nil && res.N == 0 {
		err = errors.New("the case failed")
	}
	if err != nil {
		return row{}, 0, err
	}
	return newRow(cs, res, rss), res.N, nil
}

func writeJSON(path string, rows []row) error {
	recs := []Record{}
	for _, r := range rows {
		if !r.noJSON {
			recs = append(recs, r.Record)
		}
	}
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
