package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/benchmarks/suite"
)

// childArg, as the first argument, makes phibench run one case and print
// its result as JSON: the parent reads the child's peak RSS from its
// resource usage.
const childArg = "-phibench-child"

// childResult is what a child prints.
type childResult struct {
	N         int
	T         time.Duration
	MemAllocs uint64
	MemBytes  uint64
	Extra     map[string]float64
	// PeakRSS is the child's VmHWM (Linux), 0 elsewhere.
	PeakRSS int64
}

// childArgs are the arguments that make a child run case name under c.
func childArgs(c config, name string) []string {
	args := []string{childArg, name, "-benchtime", c.benchtime, "-quick=" + strconv.FormatBool(c.quick)}
	if len(c.opts.FrameLengths) > 0 {
		args = append(args, "-sweep", "frame-length="+joinInts(c.opts.FrameLengths))
	}
	if len(c.opts.Workers) > 0 {
		args = append(args, "-sweep", "workers="+joinInts(c.opts.Workers))
	}
	return args
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// runChild runs case name in a child process and returns its result and
// the child's peak RSS in bytes.
func runChild(c config, name string) (testing.BenchmarkResult, int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return testing.BenchmarkResult{}, 0, err
	}
	cmd := exec.Command(exe, childArgs(c, name)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return testing.BenchmarkResult{}, 0, fmt.Errorf("child: %v: %s", err, strings.TrimSpace(errOut.String()))
	}
	var cr childResult
	if err := json.Unmarshal(out.Bytes(), &cr); err != nil {
		return testing.BenchmarkResult{}, 0, fmt.Errorf("child output: %w", err)
	}
	res := testing.BenchmarkResult{N: cr.N, T: cr.T, MemAllocs: cr.MemAllocs, MemBytes: cr.MemBytes, Extra: cr.Extra}
	return res, cr.PeakRSS, nil
}

// peakRSS is this process's peak resident set in bytes. It reads VmHWM
// from /proc/self/status: getrusage's ru_maxrss would do on a fresh
// process, but Linux carries into it the high-water mark of the memory the
// process had before execve, which for a child Go starts with vfork is the
// parent's. Elsewhere it falls back to ru_maxrss (KiB on Linux, bytes on
// macOS: only Linux is trusted here), and 0.
func peakRSS() int64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				if err == nil {
					return kb * 1024
				}
			}
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil && runtime.GOOS == "linux" {
		return ru.Maxrss * 1024
	}
	return 0
}

// childMain runs one case: args are its name and the parent's flags.
func childMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "phibench child: no case named")
		return 2
	}
	if err := runOne(args[0], args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "phibench child:", err)
		return 1
	}
	return 0
}

func runOne(name string, args []string) error {
	c, err := parseFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	env, err := newEnv(c)
	if err != nil {
		return err
	}
	defer env.Close()
	cs, err := suite.Find(suite.Cases(env, c.opts), name)
	if err != nil {
		return err
	}
	res := testing.Benchmark(cs.Bench)
	if res.N == 0 {
		return errors.New("the case failed")
	}
	return json.NewEncoder(os.Stdout).Encode(childResult{N: res.N, T: res.T, MemAllocs: res.MemAllocs, MemBytes: res.MemBytes, Extra: res.Extra, PeakRSS: peakRSS()})
}
