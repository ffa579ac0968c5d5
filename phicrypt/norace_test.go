//go:build !race

package phicrypt_test

const raceEnabled = false
