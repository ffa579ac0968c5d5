// Package keyring will hold the keyrings (AWS KMS, raw AES, multi,
// hierarchical, threshold), the branch-key stores, rotation and the audit log.
// Not implemented yet: see the README's status table.
package keyring
