//go:build race

package phicrypt

const raceEnabledInternal = true
