//go:build race

package keyring_test

// rawAESRaceBuild says the race detector is on, which allocates on its own
// account.
const rawAESRaceBuild = true
