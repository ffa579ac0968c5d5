package main

import (
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/benchmarks/suite"
)

// A sweep value phicrypt refuses (a frame length over its MaxFrameLength,
// more workers than it allows) is a flag error naming the limit, not a run
// whose cases all fail with "the case failed".
func TestOutsideSweepRefusesWhatPhicryptRefuses(t *testing.T) {
	for _, bad := range []string{"frame-length=8m", "frame-length=4k,5m", "workers=257", "workers=1,100000"} {
		_, err := parseFlags([]string{"-quick", "-sweep", bad}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "at most") {
			t.Errorf("-sweep %s: err = %v, want a flag error naming the limit", bad, err)
		}
	}
	for _, good := range []string{"frame-length=4k,64k,1m", "frame-length=4m", "workers=1,2,4", "workers=256"} {
		if _, err := parseFlags([]string{"-quick", "-sweep", good}, io.Discard); err != nil {
			t.Errorf("-sweep %s: %v", good, err)
		}
	}
}

// The AWS Go ESDK rows use a raw AES keyring: a phicrypt row that calls
// KMS for every message (message-encrypt/1KiB/kms, a cold hierarchical
// keyring) has no AWS counterpart, and its ×AWS column is empty.
func TestOutsideKMSRowHasNoAWSRatio(t *testing.T) {
	mk := func(impl, op string, ns, kms float64) row {
		var r row
		r.Impl, r.Op, r.Suite, r.SizeBytes, r.NsPerOp, r.KMSCallsPerOp = impl, op, suite.Suite0478, 1024, ns, kms
		r.name = impl + "/" + op + "/1KiB"
		return r
	}
	aws := mk(suite.ImplAWS, "message-encrypt", 100000, 0)
	local := mk(suite.ImplPhicrypt, "message-encrypt", 4000, 0)
	viaKMS := mk(suite.ImplPhicrypt, "message-encrypt", 90000, 1)
	rows := []row{aws, local, viaKMS}
	if got := ratio(rows, local, suite.ImplAWS); math.Abs(got-0.04) > 1e-9 {
		t.Errorf("raw AES row: ×AWS = %v, want 0.04", got)
	}
	if got := ratio(rows, viaKMS, suite.ImplAWS); !math.IsNaN(got) {
		t.Errorf("a row with a KMS call per message: ×AWS = %v against the AWS raw AES keyring's row, want none", got)
	}
}

var outsideSink [][]byte

// The memory test reports the heap a round trip grew by even when the
// round trip ends before the sampler's first tick (a 1 KiB or 1 MiB
// message takes well under a millisecond): 0 would read as "no memory".
func TestOutsideMemoryTestSeesFastRoundTrips(t *testing.T) {
	rt := func(pt []byte, _ map[string]string) (time.Duration, time.Duration, error) {
		outsideSink = append(outsideSink[:0], make([]byte, 64<<10), make([]byte, 64<<10))
		return 0, 0, nil
	}
	r, err := memoryTest(rt, make([]byte, 1024), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.PeakMemoryMB < 0.1 || r.MemoryEfficiency <= 0 {
		t.Errorf("a round trip allocating 128 KiB in well under a millisecond: peak %v MB, efficiency %v; want about 0.125 and above 0", r.PeakMemoryMB, r.MemoryEfficiency)
	}
}
