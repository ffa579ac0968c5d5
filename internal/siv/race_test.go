//go:build race

package siv

// The race detector makes sync.Pool drop blocks at random, so Open's
// scratch block is sometimes allocated.
const raceEnabled = true
