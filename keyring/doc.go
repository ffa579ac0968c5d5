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
// Recovery keyrings keep data readable when KMS access is lost (a key
// deleted by mistake, an account gone). Each is a Multi child beside the
// KMS generator, holding only a public key on the service side:
// RawRSA (the ESDK's raw RSA keyring, OAEP; PKCS #1 v1.5 read only), read
// by the AWS Encryption SDKs too; HPKEEscrow (our provider id
// "phicrypt-hpke": the data key sealed with HPKE to a hybrid ML-KEM-768 +
// X25519 key, so messages recorded today stay safe against a future
// quantum computer); and Threshold (our provider id "phicrypt-threshold"):
// the data key split M-of-N with Shamir's secret sharing, each share
// wrapped by a different child keyring, so no single custodian's key
// recovers it. The ESDK in other languages ignores the last two. Their
// byte layouts are in docs/FORMAT.md.
//
// Data keys are secrets: they are held as Secret values, which never print,
// log or marshal themselves.
package keyring
