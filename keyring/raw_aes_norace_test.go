//go:build !race

package keyring_test

const rawAESRaceBuild = false
