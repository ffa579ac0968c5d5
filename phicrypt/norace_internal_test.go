//go:build !race

package phicrypt

const raceEnabledInternal = false
