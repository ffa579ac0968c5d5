package suite_test

import (
	"slices"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/benchmarks/suite"
)

// Without refresh-ahead, the message that finds its entry expired waits
// for kmsmock's injected latency; the refills show as KMS calls.
func TestEncryptLatenciesSeeExpiries(t *testing.T) {
	env := newEnv(t)
	const kmsLatency = 5 * time.Millisecond
	for _, ahead := range []time.Duration{0, 30 * time.Millisecond} {
		lat, calls, err := suite.EncryptLatencies(env, suite.LatencyConfig{
			KMSLatency: kmsLatency, MaxAge: 50 * time.Millisecond, RefreshAhead: ahead, Duration: 300 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(lat) == 0 || calls == 0 {
			t.Fatalf("refresh-ahead %v: %d messages, %d KMS calls; want entries to expire and refill", ahead, len(lat), calls)
		}
		if ahead == 0 && slices.Max(lat) < kmsLatency {
			t.Errorf("no message waited for KMS (slowest %v) though entries expired", slices.Max(lat))
		}
	}
	if _, _, err := suite.EncryptLatencies(env, suite.LatencyConfig{}); err == nil {
		t.Error("a zero LatencyConfig was accepted")
	}
}
