package phicrypt

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
)

// Suite is an AWS Encryption SDK algorithm suite
// (framework/algorithm-suites.md). Every suite here encrypts with
// AES-256-GCM (12-byte IV, 16-byte tag) under a key derived with HKDF.
type Suite uint16

const (
	// SuiteCommitted is the default: HKDF-SHA512 key derivation with key
	// commitment, message format version 2.
	SuiteCommitted Suite = 0x0478
	// SuiteCommittedSigned adds an ECDSA P-384 signature over the whole
	// message, so a reader can tell that the writer held the private key,
	// not merely the data key.
	SuiteCommittedSigned Suite = 0x0578
	// SuiteLegacy (HKDF-SHA256, no commitment, format version 1) is read,
	// never written, and only when the commitment policy allows it.
	SuiteLegacy Suite = 0x0178
	// SuiteLegacySigned (HKDF-SHA384, ECDSA P-384, format version 1) is
	// read, never written, and only when the commitment policy allows it.
	SuiteLegacySigned Suite = 0x0378
)

// suiteInfo is what the format needs to know about a suite.
type suiteInfo struct {
	id         Suite
	version    byte // message format version
	kdfHash    func() hash.Hash
	signed     bool
	committing bool
}

const (
	formatV1      = 0x01
	formatV2      = 0x02
	dataKeyLength = 32
	ivLength      = 12
	tagLength     = 16
	commitKeyLen  = 32
)

func (s Suite) info() (*suiteInfo, bool) {
	switch s {
	case SuiteCommitted:
		return &suiteCommitted, true
	case SuiteCommittedSigned:
		return &suiteCommittedSigned, true
	case SuiteLegacy:
		return &suiteLegacy, true
	case SuiteLegacySigned:
		return &suiteLegacySigned, true
	}
	return nil, false
}

// These are never written after package initialisation.
var (
	suiteCommitted       = suiteInfo{id: SuiteCommitted, version: formatV2, kdfHash: sha512.New, committing: true}
	suiteCommittedSigned = suiteInfo{id: SuiteCommittedSigned, version: formatV2, kdfHash: sha512.New, committing: true, signed: true}
	suiteLegacy          = suiteInfo{id: SuiteLegacy, version: formatV1, kdfHash: sha256.New}
	suiteLegacySigned    = suiteInfo{id: SuiteLegacySigned, version: formatV1, kdfHash: sha512.New384, signed: true}
)

func (si *suiteInfo) messageIDLength() int {
	if si.version == formatV1 {
		return 16
	}
	return 32
}

// String returns the suite's ESDK name.
func (s Suite) String() string {
	switch s {
	case SuiteCommitted:
		return "AES_256_GCM_HKDF_SHA512_COMMIT_KEY"
	case SuiteCommittedSigned:
		return "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"
	case SuiteLegacy:
		return "AES_256_GCM_IV12_TAG16_HKDF_SHA256"
	case SuiteLegacySigned:
		return "AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384"
	}
	return fmt.Sprintf("Suite(0x%04x)", uint16(s))
}

// CommitmentPolicy says which suites may be written and read
// (framework/commitment-policy.md). The zero value is not a policy; Config
// treats it as RequireEncryptRequireDecrypt.
type CommitmentPolicy int

const (
	// RequireEncryptRequireDecrypt writes and reads only committing
	// suites. The default.
	RequireEncryptRequireDecrypt CommitmentPolicy = iota + 1
	// RequireEncryptAllowDecrypt writes committing suites and also reads
	// legacy (version 1) messages, for migrations.
	RequireEncryptAllowDecrypt
	// ForbidEncryptAllowDecrypt exists in the ESDK for writers that must
	// stay readable by old SDKs. phicrypt never writes legacy messages, so
	// with this policy it can decrypt but not encrypt.
	ForbidEncryptAllowDecrypt
)

func (p CommitmentPolicy) String() string {
	switch p {
	case RequireEncryptRequireDecrypt:
		return "require-encrypt-require-decrypt"
	case RequireEncryptAllowDecrypt:
		return "require-encrypt-allow-decrypt"
	case ForbidEncryptAllowDecrypt:
		return "forbid-encrypt-allow-decrypt"
	}
	return fmt.Sprintf("CommitmentPolicy(%d)", int(p))
}

// ParseCommitmentPolicy reads a policy by the name String returns.
func ParseCommitmentPolicy(name string) (CommitmentPolicy, error) {
	for p := RequireEncryptRequireDecrypt; p <= ForbidEncryptAllowDecrypt; p++ {
		if p.String() == name {
			return p, nil
		}
	}
	return 0, fmt.Errorf("phicrypt: unknown commitment policy %q", name)
}

func (p CommitmentPolicy) allowsDecrypt(si *suiteInfo) bool {
	return si.committing || p != RequireEncryptRequireDecrypt
}
