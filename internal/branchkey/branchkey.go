// Package branchkey makes branch key versions (AWS's branch key store
// specification, awslabs/aws-encryption-sdk-specification,
// framework/branch-key-store.md, "Wrapped Branch Key Creation v1") and
// rotates a branch key with the store's compare-and-swap. keyring (rotation
// at a usage cap) and custody (creation and rotation by custodians) share
// it; its errors name no package, so each caller names its own step.
package branchkey

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/keystore"
)

// Length is the length of a branch key ("NumberOfBytes MUST be 32").
const Length = 32

// Generator is the KMS operation that makes a branch key's material
// without ever returning it in plaintext.
type Generator interface {
	GenerateDataKeyWithoutPlaintext(ctx context.Context, in *kms.GenerateDataKeyWithoutPlaintextInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyWithoutPlaintextOutput, error)
}

// Maker says how new versions are made.
type Maker struct {
	Generator   Generator
	KMSKeyARN   string
	GrantTokens []string
	Now         func() time.Time
	// Context is the KMS encryption context of a version (the
	// DECRYPT_ONLY context, keyring.BranchKeys.EncryptionContext).
	Context func(keystore.BranchKeyVersion) map[string]string
}

// NewVersion makes a new version of branch key id, wrapped by KMS, ready
// to store as active.
func (m Maker) NewVersion(ctx context.Context, id string) (keystore.BranchKeyVersion, error) {
	if m.Generator == nil {
		return keystore.BranchKeyVersion{}, errors.New("the KMS client cannot GenerateDataKeyWithoutPlaintext; making branch keys needs a *kms.Client")
	}
	v := keystore.BranchKeyVersion{
		BranchKeyID: id,
		// "version: a new guid. This guid MUST be version 4 UUID".
		Version:   keystore.NewBranchKeyVersion(),
		KMSKeyARN: m.KMSKeyARN,
		// The store keeps microseconds in UTC, and the context is rebuilt
		// from the stored record: truncate before binding it.
		CreatedAt: m.Now().UTC().Truncate(time.Microsecond),
		State:     keystore.StateActive,
	}
	// "KeyId MUST be the kms-arn", "NumberOfBytes MUST be 32",
	// "EncryptionContext MUST be the DECRYPT_ONLY encryption context".
	n := int32(Length)
	out, err := m.Generator.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{
		KeyId:             &v.KMSKeyARN,
		NumberOfBytes:     &n,
		EncryptionContext: m.Context(v),
		GrantTokens:       m.GrantTokens,
	})
	if err != nil {
		return keystore.BranchKeyVersion{}, fmt.Errorf("KMS GenerateDataKeyWithoutPlaintext for a new version of %s: %w", keystore.Fingerprint(id), err)
	}
	// "the operation MUST use the GenerateDataKeyWithoutPlaintext result
	// CiphertextBlob as the wrapped DECRYPT_ONLY Branch Key".
	v.Ciphertext = out.CiphertextBlob
	if err := keystore.CheckWrapped(v.KMSKeyARN, v.Ciphertext); err != nil {
		return keystore.BranchKeyVersion{}, fmt.Errorf("KMS returned an unusable wrapped branch key: %w", err)
	}
	return v, nil
}

// RotateFrom replaces version expected of branch key id with a new one, if
// it is still the active one. Otherwise it returns the version another
// process made active and an error wrapping keystore.ErrConflict.
func (m Maker) RotateFrom(ctx context.Context, store keystore.Store, id, expected string) (keystore.BranchKeyVersion, error) {
	next, err := m.NewVersion(ctx, id)
	if err != nil {
		return keystore.BranchKeyVersion{}, err
	}
	// Conditional write (branch-key-store.md "VersionKey": the active item
	// must not have changed since it was read); Store.Rotate is the
	// compare-and-swap.
	err = m.rotate(ctx, store, id, expected, next)
	if errors.Is(err, keystore.ErrConflict) {
		won, rerr := store.Active(ctx, id)
		if rerr != nil {
			return keystore.BranchKeyVersion{}, fmt.Errorf("another process rotated %s at the same time, and re-reading it failed: %w", keystore.Fingerprint(id), errors.Join(err, rerr))
		}
		return won, fmt.Errorf("another process rotated %s at the same time; its version %s is active (nothing to retry): %w", keystore.Fingerprint(id), won.Version, err)
	}
	if err != nil {
		return keystore.BranchKeyVersion{}, fmt.Errorf("storing the rotated %s: %w", keystore.Fingerprint(id), err)
	}
	return next, nil
}

// awsLayout is what a store in AWS's branch key table layout
// (keystore/dynamodb) offers beyond keystore.Store: AWS's readers need the
// active version wrapped a second time, under the ACTIVE encryption context
// (the branch:ACTIVE item), and a beacon key made at creation.
type awsLayout interface {
	CreateWithCopies(ctx context.Context, v keystore.BranchKeyVersion, activeCopy, beacon []byte) error
	RotateWithCopy(ctx context.Context, id, expectedActive string, next keystore.BranchKeyVersion, activeCopy []byte) error
}

// ReEncrypter is the KMS operation that makes the ACTIVE copy of a version
// without its material leaving KMS.
type ReEncrypter interface {
	ReEncrypt(ctx context.Context, in *kms.ReEncryptInput, optFns ...func(*kms.Options)) (*kms.ReEncryptOutput, error)
}

// Create makes version 1 of branch key id and stores it as active, with
// the copies a store in AWS's layout needs.
func (m Maker) Create(ctx context.Context, store keystore.Store, id string) (keystore.BranchKeyVersion, error) {
	v, err := m.NewVersion(ctx, id)
	if err != nil {
		return keystore.BranchKeyVersion{}, err
	}
	aws, ok := store.(awsLayout)
	if !ok {
		if err := store.Create(ctx, v); err != nil {
			return keystore.BranchKeyVersion{}, fmt.Errorf("storing the new %s: %w", keystore.Fingerprint(id), err)
		}
		return v, nil
	}
	active, err := m.ActiveCopy(ctx, v)
	if err != nil {
		return keystore.BranchKeyVersion{}, err
	}
	beacon, err := m.beacon(ctx, v)
	if err != nil {
		return keystore.BranchKeyVersion{}, err
	}
	if err := aws.CreateWithCopies(ctx, v, active, beacon); err != nil {
		return keystore.BranchKeyVersion{}, fmt.Errorf("storing the new %s: %w", keystore.Fingerprint(id), err)
	}
	return v, nil
}

// rotate is store.Rotate, with the ACTIVE copy of next for a store in AWS's
// layout.
func (m Maker) rotate(ctx context.Context, store keystore.Store, id, expected string, next keystore.BranchKeyVersion) error {
	aws, ok := store.(awsLayout)
	if !ok {
		return store.Rotate(ctx, id, expected, next)
	}
	active, err := m.ActiveCopy(ctx, next)
	if err != nil {
		return err
	}
	return aws.RotateWithCopy(ctx, id, expected, next, active)
}

// ActiveContext is the ACTIVE encryption context of version v
// (branch-key-store.md "ACTIVE Encryption Context"): the DECRYPT_ONLY
// context with type "branch:ACTIVE" and version "branch:version:<uuid>".
func ActiveContext(decryptOnly map[string]string, v keystore.BranchKeyVersion) map[string]string {
	c := maps.Clone(decryptOnly)
	c["type"] = "branch:ACTIVE"
	c["version"] = "branch:version:" + v.Version
	return c
}

// ActiveCopy re-encrypts v's wrapped key from its DECRYPT_ONLY context to
// its ACTIVE context under the same KMS key (branch-key-store.md
// "VersionKey": the branch:ACTIVE item is made by ReEncrypt).
func (m Maker) ActiveCopy(ctx context.Context, v keystore.BranchKeyVersion) ([]byte, error) {
	re, ok := m.Generator.(ReEncrypter)
	if !ok {
		return nil, errors.New("the KMS client cannot ReEncrypt; a store in AWS's layout needs the active version's ACTIVE copy")
	}
	dec := m.Context(v)
	out, err := re.ReEncrypt(ctx, &kms.ReEncryptInput{
		CiphertextBlob:               v.Ciphertext,
		SourceKeyId:                  &v.KMSKeyARN,
		SourceEncryptionContext:      dec,
		DestinationKeyId:             &v.KMSKeyARN,
		DestinationEncryptionContext: ActiveContext(dec, v),
		GrantTokens:                  m.GrantTokens,
	})
	if err != nil {
		return nil, fmt.Errorf("KMS ReEncrypt of version %s of %s to its ACTIVE context: %w", v.Version, keystore.Fingerprint(v.BranchKeyID), err)
	}
	if err := keystore.CheckWrapped(v.KMSKeyARN, out.CiphertextBlob); err != nil {
		return nil, fmt.Errorf("KMS returned an unusable ACTIVE copy: %w", err)
	}
	return out.CiphertextBlob, nil
}

// beacon makes the beacon key AWS's layout creates with a branch key
// (branch-key-store.md "Beacon Key"): 32 bytes under the DECRYPT_ONLY
// context with type "beacon:ACTIVE".
func (m Maker) beacon(ctx context.Context, v keystore.BranchKeyVersion) ([]byte, error) {
	c := maps.Clone(m.Context(v))
	c["type"] = "beacon:ACTIVE"
	n := int32(Length)
	out, err := m.Generator.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{
		KeyId: &v.KMSKeyARN, NumberOfBytes: &n, EncryptionContext: c, GrantTokens: m.GrantTokens,
	})
	if err != nil {
		return nil, fmt.Errorf("KMS GenerateDataKeyWithoutPlaintext for the beacon key of %s: %w", keystore.Fingerprint(v.BranchKeyID), err)
	}
	return out.CiphertextBlob, nil
}
