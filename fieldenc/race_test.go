//go:build race

package fieldenc_test

const raceEnabled = true
