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
// branch keys, whose material comes from KMS and which a keystore.Store
// keeps only wrapped, are created and rotated by custodians (package
// custody); the keyring unwraps a branch key version once through KMS
// (BranchKeys), caches it for a TTL, and wraps each message's data key
// under a key derived from it and a random salt, in the layout of
// AWS's hierarchical keyring (provider id "aws-kms-hierarchy"). A branch key
// id supplier picks the branch key from the encryption context, for one
// branch key per tenant or patient. Retired versions no longer decrypt
// (ErrVersionRetired).
//
// Branch keys rotate on demand (custody.BranchKeys.Rotate), by a custodian
// job (custody.BranchKeys.RotateDue, by age and by messages), and by the
// keyring itself
// when HierarchicalConfig.MaxUsesPerVersion is set: every encryption is
// counted against its version in the keystore.Store (reserved a block of
// UsageBlock uses per store write, keystore.Store.AddUsage), and a version that
// reaches the cap is replaced, so no version wraps more than the cap
// across all processes sharing the store. Packages that derive their own
// keys from branch keys (fieldenc) hold versions through
// Hierarchical.AcquireActive and AcquireVersion, which return a BranchKey
// handle whose only use is HKDF (BranchKey.DeriveKey).
//
// The stores live in package keystore (the file store, the default) and its
// opt-in subpackages keystore/sqlite and keystore/postgres, so importing
// keyring links no database driver. They keep only wrapped material, each
// version's state and usage count.
//
// Data keys are secrets: they are held as Secret values, which never print,
// log or marshal themselves.
package keyring
