//go:build race

package blind

// raceEnabled: the race detector's instrumentation allocates, so allocation
// counts are asserted without it (scripts/test.sh runs those tests again
// without -race).
const raceEnabled = true
