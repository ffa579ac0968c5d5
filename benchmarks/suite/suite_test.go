package suite_test

import (
	"testing"

	"github.com/phicrypt/phicrypt/benchmarks/suite"
)

// BenchmarkSuite runs every case of the full list as a sub-benchmark:
//
//	go test ./suite/ -run '^$' -bench . -benchmem
//	go test ./suite/ -run '^$' -bench 'Suite/phicrypt/message' -benchmem
func BenchmarkSuite(b *testing.B) {
	env, err := suite.NewEnv()
	if err != nil {
		b.Fatal(err)
	}
	defer env.Close()
	for _, c := range suite.Cases(env, suite.Options{}) {
		b.Run(c.Name, c.Bench)
	}
}
