package custody

import (
	"context"
	"fmt"

	"github.com/phicrypt/phicrypt/internal/branchkey"
	"github.com/phicrypt/phicrypt/internal/steperr"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
)

// BranchKeys is a custodian's handle on the branch keys of a store: it
// creates them, rotates them on demand or by policy, retires old versions
// and moves them under another KMS key (Rewrap). It never unwraps a branch
// key: there is no path from it to key material or data. Its KMS client
// needs GenerateDataKeyWithoutPlaintext (and ReEncrypt for Rewrap), never
// Decrypt.
type BranchKeys struct {
	cfg   keyring.BranchKeysConfig
	maker branchkey.Maker
	// contextOf is the DECRYPT_ONLY encryption context of a version, as
	// the services' keyrings rebuild it to unwrap.
	contextOf func(keystore.BranchKeyVersion) map[string]string
}

// NewBranchKeys returns a custodian's handle over cfg: the same
// configuration services give keyring.NewBranchKeys (the same store, KMS
// key ARN and LogicalStoreName), with the custodian's own KMS client.
func NewBranchKeys(cfg keyring.BranchKeysConfig) (*BranchKeys, error) {
	svc, err := keyring.NewBranchKeys(cfg)
	if err != nil {
		return nil, wrapStep(err, "checking the configuration")
	}
	cfg = svc.Config()
	gen, _ := cfg.Client.(branchkey.Generator)
	return &BranchKeys{
		cfg:       cfg,
		maker:     branchkey.Maker{Generator: gen, KMSKeyARN: cfg.KMSKeyARN, GrantTokens: cfg.GrantTokens, Now: cfg.Now, Context: svc.EncryptionContext},
		contextOf: svc.EncryptionContext,
	}, nil
}

// String names the handle by its KMS key, without any key material.
func (b BranchKeys) String() string { return "custody.BranchKeys(" + b.cfg.KMSKeyARN + ")" }

// Store returns the store the versions live in.
func (b *BranchKeys) Store() keystore.Store { return b.cfg.Store }

// EncryptionContext returns the KMS encryption context that binds version
// v (what Rewrap's options need): keyring.BranchKeys.EncryptionContext.
func (b *BranchKeys) EncryptionContext(v keystore.BranchKeyVersion) map[string]string {
	return b.contextOf(v)
}

// CreateBranchKey makes version 1 of a new branch key id and stores it as
// the active version. keystore.ErrExists if id exists.
func (b *BranchKeys) CreateBranchKey(ctx context.Context, id string) (keystore.BranchKeyVersion, error) {
	if err := keystore.CheckID(id); err != nil {
		return keystore.BranchKeyVersion{}, err
	}
	v, err := b.maker.Create(ctx, b.cfg.Store, id)
	if err != nil {
		return keystore.BranchKeyVersion{}, wrapStep(err, "creating %s", keystore.Fingerprint(id))
	}
	return v, nil
}

// Rotate makes a new version of branch key id active; the version it
// replaces becomes decrypt-only. Services decrypt under it at once and
// write under it one propagation window later
// (keyring.Hierarchical.WritesFrom). If another process rotated id between
// the read and the write, Rotate returns the version that process made
// active and an error wrapping keystore.ErrConflict: the key has been
// rotated, just not by this call, so callers that only want "a fresh
// version" may accept it.
func (b *BranchKeys) Rotate(ctx context.Context, id string) (keystore.BranchKeyVersion, error) {
	if err := keystore.CheckID(id); err != nil {
		return keystore.BranchKeyVersion{}, err
	}
	cur, err := b.cfg.Store.Active(ctx, id)
	if err != nil {
		return keystore.BranchKeyVersion{}, wrapStep(err, "reading the active version to rotate")
	}
	return b.rotateFrom(ctx, id, cur.Version)
}

func (b *BranchKeys) rotateFrom(ctx context.Context, id, expected string) (keystore.BranchKeyVersion, error) {
	v, err := b.maker.RotateFrom(ctx, b.cfg.Store, id, expected)
	if err != nil {
		return v, wrapStep(err, "rotating %s", keystore.Fingerprint(id))
	}
	return v, nil
}

// wrapStep names a step of this package over err, saying "custody:" once.
func wrapStep(err error, format string, args ...any) error {
	return steperr.Wrap("custody: ", err, format, args...)
}

// refuse is a refusal by this package that wraps one of keystore's
// sentinels (test with errors.Is): "custody: " and what was refused first.
func refuse(sentinel error, format string, args ...any) error {
	return fmt.Errorf("custody: "+format+": %w", append(args, sentinel)...)
}
