// Package benchmarks will hold the cross-package benchmark suite and the
// phibench command. Until then, each package's benchmarks live beside it
// (for example kmsmock/bench_test.go).
package benchmarks
