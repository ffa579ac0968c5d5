// Package shamir splits a secret into shares with Shamir's secret sharing
// over GF(2^8), the field of AES, one independent polynomial per byte of the
// secret: any m of the n shares give the secret back, fewer give nothing
// about it.
//
// Split draws the polynomials' coefficients from crypto/rand and gives the
// shares the x-coordinates 1 … n. Combine interpolates at zero. The field
// arithmetic uses no tables and no branches on secret bytes.
//
// The package knows nothing of keys or keyrings: keyring.NewThreshold
// splits data keys with it; a share carries no check of its own, so
// callers that must detect a wrong share verify what Combine returns.
package shamir
