//go:build race

package memtest

// raceEnabled: the race detector's shadow memory raises a process's
// resident size, so memory bounds are checked without it (scripts/test.sh
// runs this test again without -race).
const raceEnabled = true
