// Package keyring produces and unwraps the data keys that protect messages.
//
// For most uses, wrap data keys with AWS KMS:
//
//	kr, err := keyring.NewKMS(keyring.KMSConfig{Client: kmsClient, Generator: keyARN})
//
// and hand kr to phicrypt.New. A Keyring is two methods: OnEncrypt makes (or
// wraps) the data key of a message being written, OnDecrypt unwraps one of
// the encrypted data keys of a message being read. The keyrings here follow
// the AWS Encryption SDK's keyring specification, so what they write is read
// by the ESDK in other languages and the reverse: RawAES (a wrapping key held
// by the caller), KMS (strict: named keys) and KMSDiscovery (any key the
// caller may use, filtered by partition and account), and Multi (a generator
// plus extra wrappers, such as an escrow key or a second region).
//
// Data keys are secrets: they are held as Secret values, which never print,
// log or marshal themselves.
package keyring
