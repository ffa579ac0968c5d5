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
// For many small messages, use the hierarchical keyring (NewHierarchical):
// BranchKeys creates and rotates branch keys whose material comes from KMS
// and which a Store keeps only wrapped; the keyring unwraps a branch key
// version once through KMS, caches it for a TTL, and wraps each message's
// data key under a key derived from it and a random salt, in the layout of
// AWS's hierarchical keyring (provider id "aws-kms-hierarchy"). A branch key
// id supplier picks the branch key from the encryption context, for one
// branch key per tenant or patient. Retired versions no longer decrypt
// (ErrVersionRetired).
//
// Data keys are secrets: they are held as Secret values, which never print,
// log or marshal themselves.
package keyring
