package suite_test

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/phicrypt/phicrypt/benchmarks/suite"
)

// fullSuite is set by scripts/test.sh, which starts every server: there a
// server case left out is a failure, not a skip (the main module's tests
// treat PHICRYPT_FULL_SUITE the same way).
func fullSuite() bool { return os.Getenv("PHICRYPT_FULL_SUITE") != "" }

// checkServers fails tb in the full suite when a server is not given, and
// logs what is left out otherwise.
func checkServers(tb testing.TB) {
	tb.Helper()
	for _, line := range suite.Unavailable() {
		if fullSuite() {
			tb.Fatalf("the full suite must give every server: %s", line)
		}
		tb.Log(line)
	}
}

// runOnce runs c for one iteration under testing.Benchmark.
func runOnce(t *testing.T, c suite.Case) testing.BenchmarkResult {
	t.Helper()
	old := flag.Lookup("test.benchtime").Value.String()
	if err := flag.Set("test.benchtime", "1x"); err != nil {
		t.Fatal(err)
	}
	defer flag.Set("test.benchtime", old)
	res := testing.Benchmark(c.Bench)
	if res.N != 1 {
		t.Fatalf("%s: %d iterations, want 1 (the case failed)", c.Name, res.N)
	}
	return res
}

// The store and S3 cases run once over every server given (the file store
// always): a warm hierarchical keyring makes no KMS call, a cold one one
// per message, and each S3 case moves its bytes.
func TestServerCases(t *testing.T) {
	checkServers(t)
	env := newEnv(t)
	ran := map[string]bool{}
	for _, c := range suite.Cases(env, suite.Options{Quick: true}) {
		server := strings.Contains(c.Name, "/hier-") || c.Op == "store-read" || strings.HasPrefix(c.Op, "s3-")
		if !server {
			continue
		}
		if !c.NoJSON {
			t.Errorf("%s has a record, but the schema has no slot for a store or S3", c.Name)
		}
		res := runOnce(t, c)
		kms := res.Extra[suite.KMSCallsMetric]
		switch {
		case strings.HasSuffix(c.Name, "-cold") && kms != 1:
			t.Errorf("%s: %v KMS calls per message, want 1 (the branch key unwrapped again)", c.Name, kms)
		case strings.Contains(c.Name, "/hier-") && !strings.HasSuffix(c.Name, "-cold") && kms != 0:
			t.Errorf("%s: %v KMS calls per message, want 0 (the branch key cached)", c.Name, kms)
		case strings.HasPrefix(c.Op, "s3-") && res.Bytes != c.Size:
			t.Errorf("%s: %d bytes per op, want %d", c.Name, res.Bytes, c.Size)
		}
		ran[c.Name] = true
	}
	want := []string{"phicrypt/message-encrypt/1KiB/hier-file", "phicrypt/message-encrypt/1KiB/hier-file-cold", "phicrypt/store-read/file"}
	if os.Getenv(suite.EnvMoto) != "" {
		want = append(want, "phicrypt/message-encrypt/1KiB/hier-dynamodb-cold", "phicrypt/store-read/dynamodb")
	}
	if os.Getenv(suite.EnvPostgres) != "" {
		want = append(want, "phicrypt/message-encrypt/1KiB/hier-postgres-cold", "phicrypt/store-read/postgres")
	}
	if os.Getenv(suite.EnvS3) != "" {
		want = append(want, "phicrypt/s3-put/64MiB", "s3-plain/s3-put/64MiB", "phicrypt/s3-get-range/1MiB/of64MiB",
			"s3-plain/s3-get-range/1MiB/of64MiB")
	}
	for _, name := range want {
		if !ran[name] {
			t.Errorf("no case %s", name)
		}
	}
}

// A cache that allows one message per data key misses on every message,
// each a GenerateDataKey; the hit case makes none.
func TestCachedEncryptHitAndMiss(t *testing.T) {
	env := newEnv(t)
	cs := suite.Cases(env, suite.Options{Quick: true})
	for name, want := range map[string]float64{"phicrypt/cached-encrypt/1KiB": 0, "phicrypt/cached-encrypt/1KiB/miss": 1} {
		c, err := suite.Find(cs, name)
		if err != nil {
			t.Fatal(err)
		}
		res := runOnce(t, c)
		if got := res.Extra[suite.KMSCallsMetric]; got != want {
			t.Errorf("%s: %v KMS calls per message, want %v", name, got, want)
		}
		if c.KMSLatency != suite.CacheKMSLatency {
			t.Errorf("%s: kmsmock latency %v, want %v", name, c.KMSLatency, suite.CacheKMSLatency)
		}
		if want == 1 && res.NsPerOp() < int64(suite.CacheKMSLatency) {
			t.Errorf("%s: %d ns per message, less than kmsmock's %v: the miss did not wait for KMS", name, res.NsPerOp(), suite.CacheKMSLatency)
		}
	}
}
