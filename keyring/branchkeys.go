package keyring

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/internal/branchkey"
	"github.com/phicrypt/phicrypt/keystore"
)

// Branch key creation and unwrapping follow the AWS Encryption SDK's branch
// key store specification (awslabs/aws-encryption-sdk-specification,
// framework/branch-key-store.md), hierarchy version 1, with one deliberate
// difference: AWS keeps two wrapped copies of the active version (a
// "branch:ACTIVE" item made by ReEncrypt, and the "branch:version:<uuid>"
// item), while a phicrypt keystore.Store keeps one record per version and marks the
// active one with its keystore.State. So every version is wrapped once, under the
// DECRYPT_ONLY encryption context, and no ReEncrypt is needed to make it.

// branchKeyLength is the length of a branch key (branch-key-store.md
// "Wrapped Branch Key Creation v1": NumberOfBytes MUST be 32).
const branchKeyLength = 32

// Encryption context keys bound to every wrapped branch key version
// (branch-key-store.md "Encryption Context" and "DECRYPT_ONLY Encryption
// Context").
const (
	bkContextID               = "branch-key-id"
	bkContextType             = "type"
	bkContextCreateTime       = "create-time"
	bkContextTableName        = "tablename"
	bkContextKMSARN           = "kms-arn"
	bkContextHierarchyVersion = "hierarchy-version"

	// branch-key-store.md "DECRYPT_ONLY Encryption Context": type is
	// "branch:version:" + version.
	bkTypeVersionPrefix = "branch:version:"
	// Only hierarchy version 1 is implemented (branch-key-store.md
	// "Hierarchy Version").
	bkHierarchyVersion = "1"
	// branch-key-store.md "CreateKey": "ISO 8601 format in UTC, to
	// microsecond precision (e.g. YYYY-MM-DDTHH:mm:ss.ssssssZ)".
	bkCreateTimeLayout = "2006-01-02T15:04:05.000000Z"
)

// BranchKeysConfig configures BranchKeys.
type BranchKeysConfig struct {
	// keystore.Store keeps the wrapped versions.
	Store keystore.Store
	// Client reaches KMS. Unwrap needs Decrypt only; CreateBranchKey and
	// Rotate also need GenerateDataKeyWithoutPlaintext, which *kms.Client
	// has. A service that only decrypts may pass a client without it.
	Client KMSClient
	// KMSKeyARN is the KMS key that wraps new versions: a key ARN, not an
	// alias (branch-key-store.md "AWS KMS Configuration": "This ARN MUST NOT
	// be an Alias").
	KMSKeyARN string
	// LogicalStoreName is bound into every wrapped version's encryption
	// context (the spec's "tablename", branch-key-store.md "Logical KeyStore
	// Name"), so a version copied into another store does not unwrap there.
	// It must stay the same for the life of the store, restores included.
	LogicalStoreName string
	GrantTokens      []string
	// Now is the clock for creation times (default time.Now).
	Now func() time.Time
}

// BranchKeys is a service's handle on branch key versions: the material
// comes from KMS, a keystore.Store keeps only the wrapped form, and Unwrap
// asks KMS to decrypt it. Custodians create and rotate branch keys with
// custody.NewBranchKeys over the same configuration; a service rotates
// only when a version reaches HierarchicalConfig.MaxUsesPerVersion. It is
// safe for concurrent use. It caches nothing; the hierarchical keyring
// caches what it unwraps.
type BranchKeys struct {
	cfg BranchKeysConfig
}

// NewBranchKeys returns a BranchKeys over cfg.
func NewBranchKeys(cfg BranchKeysConfig) (*BranchKeys, error) {
	if cfg.Store == nil || cfg.Client == nil {
		return nil, errors.New("keyring: BranchKeysConfig needs a keystore.Store and a KMS Client")
	}
	if arn, ok := parseKeyARN(cfg.KMSKeyARN); !ok || arn.resourceType != "key" {
		return nil, errors.New("keyring: BranchKeysConfig.KMSKeyARN must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), not an alias or key id")
	}
	if cfg.LogicalStoreName == "" {
		return nil, errors.New("keyring: BranchKeysConfig.LogicalStoreName is required (it is bound to every branch key)")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &BranchKeys{cfg: cfg}, nil
}

// String names the manager without any key material.
func (b BranchKeys) String() string { return "BranchKeys(" + b.cfg.KMSKeyARN + ")" }

// GoString implements fmt.GoStringer, so %#v prints no internals.
func (b BranchKeys) GoString() string { return b.String() }

// keystore.Store returns the store the versions live in.
func (b *BranchKeys) Store() keystore.Store { return b.cfg.Store }

// Config returns the configuration b was made with (Now filled in), for
// example to make a custodian's handle (custody.NewBranchKeys) over the
// same store.
func (b *BranchKeys) Config() BranchKeysConfig { return b.cfg }

// maker makes new versions of branch keys (for the rotation a usage cap
// calls for).
func (b *BranchKeys) maker() branchkey.Maker {
	gen, _ := b.cfg.Client.(branchkey.Generator)
	return branchkey.Maker{Generator: gen, KMSKeyARN: b.cfg.KMSKeyARN, GrantTokens: b.cfg.GrantTokens, Now: b.cfg.Now, Context: b.EncryptionContext}
}

// rotateFrom replaces version expected of branch key id, if it is still
// the active one; otherwise it reports keystore.ErrConflict with the
// version that is. Services rotate only this way, when a version reaches
// HierarchicalConfig.MaxUsesPerVersion; custodians rotate with custody.
func (b *BranchKeys) rotateFrom(ctx context.Context, id, expected string) (keystore.BranchKeyVersion, error) {
	v, err := b.maker().RotateFrom(ctx, b.cfg.Store, id, expected)
	if err != nil {
		return v, wrapStep(err, "rotating %s", keystore.Fingerprint(id))
	}
	return v, nil
}

// EncryptionContext returns the KMS encryption context that binds version v
// (branch-key-store.md "Encryption Context" and "DECRYPT_ONLY Encryption
// Context"): branch-key-id, type "branch:version:<uuid>", create-time,
// tablename, kms-arn and hierarchy-version. Its kms-arn is v.KMSKeyARN, so
// whoever moves a version to another KMS key (ReEncrypt) must use this
// function on the moved version for the destination context.
func (b *BranchKeys) EncryptionContext(v keystore.BranchKeyVersion) map[string]string {
	return map[string]string{
		bkContextID:               v.BranchKeyID,
		bkContextType:             bkTypeVersionPrefix + v.Version,
		bkContextCreateTime:       v.CreatedAt.UTC().Truncate(time.Microsecond).Format(bkCreateTimeLayout),
		bkContextTableName:        b.cfg.LogicalStoreName,
		bkContextKMSARN:           v.KMSKeyARN,
		bkContextHierarchyVersion: bkHierarchyVersion,
	}
}

// Unwrap asks KMS to decrypt version v's material (branch-key-store.md "AWS
// KMS Branch Key Decryption"). Deciding whether a retired version may be
// used is the caller's business; a destroyed one (a tombstone, with no
// material) is ErrKeyDestroyed. The caller owns the returned Secret and
// should Wipe it when done.
func (b *BranchKeys) Unwrap(ctx context.Context, v keystore.BranchKeyVersion) (Secret, error) {
	if err := v.Validate(0); err != nil {
		return nil, err
	}
	if v.State == keystore.StateDestroyed {
		return nil, keyDestroyedError(v.BranchKeyID, v.Version) // a tombstone: nothing to unwrap
	}
	// The stored kms-arn is the key to ask (the spec's Discovery rule), so
	// versions rewrapped under another key still unwrap; it must be a key
	// ARN ("the kms-arn field ... MUST NOT be an Alias").
	if arn, ok := parseKeyARN(v.KMSKeyARN); !ok || arn.resourceType != "key" {
		return nil, fmt.Errorf("%w: version %s of %s names no KMS key ARN", ErrInvalid, v.Version, keystore.Fingerprint(v.BranchKeyID))
	}
	out, err := b.cfg.Client.Decrypt(ctx, &kms.DecryptInput{
		KeyId:             &v.KMSKeyARN,
		CiphertextBlob:    v.Ciphertext,
		EncryptionContext: b.EncryptionContext(v),
		GrantTokens:       b.cfg.GrantTokens,
	})
	if err != nil {
		return nil, wrapStep(err, "KMS Decrypt of version %s of %s", v.Version, keystore.Fingerprint(v.BranchKeyID))
	}
	// As the AWS implementation checks: the answer is for the key asked and
	// is a 32-byte key.
	if deref(out.KeyId) != v.KMSKeyARN || len(out.Plaintext) != branchKeyLength {
		Secret(out.Plaintext).Wipe()
		return nil, fmt.Errorf("keyring: KMS Decrypt of version %s of %s answered for another key or with a wrong-length key", v.Version, keystore.Fingerprint(v.BranchKeyID))
	}
	return Secret(out.Plaintext), nil
}
