//go:build !unix

package fieldenc_test

import "time"

// processCPU is 0 where the process's CPU time is not read: the benchmarks
// then report ns/op only.
func processCPU() time.Duration { return 0 }
