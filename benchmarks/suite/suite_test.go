package suite_test

import (
	"testing"

	"github.com/phicrypt/phicrypt/benchmarks/suite"
)

// BenchmarkSuite runs every case of the full list as a sub-benchmark, the
// store and S3 cases over the servers the environment names (see
// suite.Unavailable; scripts/test.sh gives them all):
//
//	go test ./suite/ -run '^$' -bench . -benchmem
//	go test ./suite/ -run '^$' -bench 'Suite/phicrypt/message' -benchmem
func BenchmarkSuite(b *testing.B) {
	checkServers(b)
	env := newEnv(b)
	for _, c := range suite.Cases(env, suite.Options{}) {
		b.Run(c.Name, c.Bench)
	}
}

// newEnv makes the cases' Env, closed when tb ends.
func newEnv(tb testing.TB) *suite.Env {
	tb.Helper()
	env, err := suite.NewEnv()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { env.Close() })
	return env
}
