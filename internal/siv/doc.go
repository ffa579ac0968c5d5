// Package siv implements AES-SIV (RFC 5297), deterministic authenticated
// encryption: the same key, associated data and plaintext always give the
// same ciphertext, and any change to the ciphertext or the associated data
// makes Open fail.
//
// For most use cases, use [New] with a 64-byte key (AES-256-SIV, the key
// size Tink's DeterministicAEAD uses) and [SIV.Seal] / [SIV.Open] with one
// associated-data string. The output of Seal is the 16-byte synthetic IV
// followed by the ciphertext, byte for byte what Tink's
// EncryptDeterministically returns for the same key, plaintext and
// associated data. A caller that seals many values under one associated
// data string binds it once with [SIV.Bind]: the [Bound] it returns gives
// the same results and skips the associated data's share of the work.
//
// phicrypt uses it for deterministic column encryption in fieldenc: equal
// values in one column encrypt to equal ciphertexts, so the column can be
// searched for equality and carry a unique index, while the associated data
// binds each ciphertext to its table and column.
//
// What it is not: it is not a general-purpose AEAD. Determinism reveals
// which values are equal; use it only where that is the point, and use the
// randomised AES-GCM formats for everything else. It takes no nonce; callers
// who want a nonce-based SIV pass the nonce as the last associated-data
// string of [SIV.SealVector] (RFC 5297, section 3). There is no streaming
// interface: SIV needs the whole plaintext before it can emit any
// ciphertext.
//
// The package builds only on crypto/aes, crypto/cipher and crypto/subtle. A
// *SIV is safe for concurrent use, and Seal and Open allocate nothing when
// dst has room for the output.
package siv
