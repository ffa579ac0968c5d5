package custody

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	"github.com/phicrypt/phicrypt/internal/branchkey"
	"github.com/phicrypt/phicrypt/keystore"
)

// KMSReEncrypter is the part of the aws-sdk-go-v2 KMS client that Rewrap
// uses; *kms.Client satisfies it.
type KMSReEncrypter interface {
	ReEncrypt(ctx context.Context, in *kms.ReEncryptInput, optFns ...func(*kms.Options)) (*kms.ReEncryptOutput, error)
}

// RewrapOptions configures Rewrap. EncryptionContext is required.
type RewrapOptions struct {
	// BranchKeyID, when set, limits Rewrap to the versions of that one
	// branch key; empty moves every branch key of the store.
	BranchKeyID string
	// EncryptionContext returns the KMS encryption context bound to a
	// version's material: pass the EncryptionContext method of the
	// BranchKeys that made the versions (same LogicalStoreName). Rewrap
	// unwraps under the context of the stored version and wraps under the
	// context of the moved one (its KMSKeyARN the new key), so the context
	// can still be rebuilt from the stored record afterwards.
	EncryptionContext func(keystore.BranchKeyVersion) map[string]string
	// Checkpoint, when set, is called after each version is settled
	// (rewrapped, or found already under the new key). Record the position
	// there to resume from it after a crash; an error stops Rewrap, which
	// returns it wrapped.
	Checkpoint func(id, version string) error
	// Resume, when set, skips every version up to and including this one in
	// Rewrap's order (branch key ids sorted bytewise, each key's versions
	// oldest first): pass the last position Checkpoint saw. Resuming is only
	// a saving: a plain re-run also finishes without re-encrypting anything,
	// because versions already under the new key are skipped.
	Resume *RewrapPosition
	// Progress, when set, is called after each version with the number of
	// versions settled or skipped so far and the total.
	Progress func(done, total int)
	// GrantTokens are passed to every ReEncrypt call.
	GrantTokens []string
}

// RewrapPosition names one branch key version in Rewrap's order.
type RewrapPosition struct {
	BranchKeyID, Version string
}

// RewrapReport counts what Rewrap did; the counts add up to Total.
type RewrapReport struct {
	// Total is the number of versions the store held when Rewrap began.
	Total int
	// Rewrapped versions were moved under the new key by this call.
	Rewrapped int
	// AlreadyMoved versions were under the new key already (an earlier run).
	AlreadyMoved int
	// MovedByOther versions were moved by another process while this call
	// ran (found moved when re-read, or its compare-and-swap lost).
	MovedByOther int
	// Resumed versions came before RewrapOptions.Resume and were not read.
	Resumed int
	// Destroyed versions hold no material (crypto-shredded): nothing to
	// move.
	Destroyed int
}

// rewrapAttempts bounds how often one version is re-read and re-encrypted
// after losing a compare-and-swap to a writer that did not move it under
// the new key (another rewrap to yet another key, say).
const rewrapAttempts = 3

// Rewrap moves every version of every branch key in store under the KMS
// key newKeyARN with KMS ReEncrypt, so the plaintext branch keys never leave
// KMS, and writes each with keystore.Store.Rewrap's compare-and-swap. Versions of
// every state move, retired ones included: a retired version can be made
// decrypt-only again, and one left under the old key would be destroyed,
// unannounced, when that key is deleted. Destroying material should be a
// decision of its own, not a side effect of a rewrap.
//
// Rewrap is idempotent and resumable: a version already under newKeyARN is
// skipped, so re-running after a crash or an error continues where it
// stopped, and a compare-and-swap lost to another process rewrapping the
// same store is re-read and counted, not redone. It handles the versions
// present when it starts: set BranchKeysConfig.KMSKeyARN to newKeyARN first,
// so new versions are made under it, or run Rewrap again after a rotation
// that raced it.
//
// newKeyARN must be a key ARN (not an alias or bare key id): it is stored
// in each record and compared for idempotence. The caller needs
// kms:ReEncryptFrom on the old keys and kms:ReEncryptTo on the new one.
// Once Rewrap returns with no error, the old keys can be disabled.
func Rewrap(ctx context.Context, store keystore.Store, client KMSReEncrypter, newKeyARN string, opts RewrapOptions) (RewrapReport, error) {
	if !isKeyARN(newKeyARN) || len(newKeyARN) > keystore.MaxKMSKeyARNLen {
		return RewrapReport{}, refuse(keystore.ErrInvalid, "Rewrap needs the new KMS key's ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), not an alias or key id")
	}
	if opts.EncryptionContext == nil {
		return RewrapReport{}, refuse(keystore.ErrInvalid, "RewrapOptions.EncryptionContext is required (the EncryptionContext method of the BranchKeys that made the versions)")
	}
	plan, err := rewrapPlan(ctx, store, opts.BranchKeyID)
	if err != nil {
		return RewrapReport{}, err
	}
	rep := RewrapReport{Total: len(plan)}
	start, err := resumeIndex(plan, opts.Resume)
	if err != nil {
		return rep, err
	}
	rep.Resumed = start
	rw := rewrapper{store: store, arn: newKeyARN, step: "rewrap"}
	rw.wrap = reEncryptWrap(client, newKeyARN, opts.EncryptionContext, opts.GrantTokens)
	err = rw.walk(ctx, plan, start, opts.Checkpoint, opts.Progress, func(_ keystore.BranchKeyVersion, o outcome, err error) error {
		if err != nil {
			return err
		}
		switch o {
		case outMoved:
			rep.Rewrapped++
		case outAlreadyMoved:
			rep.AlreadyMoved++
		case outMovedByOther:
			rep.MovedByOther++
		case outDestroyed:
			rep.Destroyed++
		}
		return nil
	})
	return rep, err
}

// rewrapPlan lists every version of every branch key in Rewrap's order,
// or of branch key only when it is not empty.
func rewrapPlan(ctx context.Context, store keystore.Store, only string) ([]keystore.BranchKeyVersion, error) {
	ids := []string{only}
	if only == "" {
		var err error
		if ids, err = store.IDs(ctx); err != nil {
			return nil, wrapStep(err, "rewrap: listing branch keys")
		}
	}
	var plan []keystore.BranchKeyVersion
	for _, id := range ids {
		vs, err := store.List(ctx, id)
		if err != nil {
			return nil, wrapStep(err, "rewrap: listing %s", keystore.Fingerprint(id))
		}
		plan = append(plan, vs...)
	}
	return plan, nil
}

// resumeIndex returns the index in plan just after pos (0 when pos is nil).
func resumeIndex(plan []keystore.BranchKeyVersion, pos *RewrapPosition) (int, error) {
	if pos == nil {
		return 0, nil
	}
	for i, v := range plan {
		if v.BranchKeyID == pos.BranchKeyID && v.Version == pos.Version {
			return i + 1, nil
		}
	}
	return 0, refuse(keystore.ErrNotFound, "the rewrap resume position (%s version %s) is not in this store; resume against the store the checkpoint came from, or re-run without Resume", keystore.Fingerprint(pos.BranchKeyID), pos.Version)
}

// outcome is what settling one version came to.
type outcome int

const (
	outMoved        outcome = iota + 1 // moved under the new key by this call
	outAlreadyMoved                    // under the new key when the plan was made
	outMovedByOther                    // moved by another process meanwhile
	outDestroyed                       // crypto-shredded: nothing to move
)

// wrapFunc wraps version v's material under the new key, under the
// context of moved (v with the new key's ARN), and, when activeCopy is
// set, under moved's ACTIVE context too (for a store in AWS's layout). It
// returns checked ciphertexts, ready to store. Rewrap's re-encrypts the
// stored ciphertext in KMS; RecoverBranchKeys's opens the escrow copy and
// encrypts the material.
type wrapFunc func(ctx context.Context, v, moved keystore.BranchKeyVersion, activeCopy bool) (ct, active []byte, err error)

// rewrapper settles versions under a new KMS key: the loop, the re-reads
// and the compare-and-swap that Rewrap and RecoverBranchKeys share; wrap
// is what differs.
type rewrapper struct {
	store keystore.Store
	arn   string
	wrap  wrapFunc
	step  string // "rewrap" or "recovery", for errors
}

// walk settles plan[start:] in order, passing each outcome (or error) to
// count, which returns nil to go on; then the checkpoint and progress.
func (rw *rewrapper) walk(ctx context.Context, plan []keystore.BranchKeyVersion, start int,
	checkpoint func(id, version string) error, progress func(done, total int),
	count func(keystore.BranchKeyVersion, outcome, error) error) error {
	for i, v := range plan[start:] {
		o, err := rw.settle(ctx, v)
		if err := count(v, o, err); err != nil {
			return err
		}
		if checkpoint != nil {
			if err := checkpoint(v.BranchKeyID, v.Version); err != nil {
				return wrapStep(err, "%s stopped by its checkpoint after %s version %s", rw.step, keystore.Fingerprint(v.BranchKeyID), v.Version)
			}
		}
		if progress != nil {
			progress(start+i+1, len(plan))
		}
	}
	return nil
}

// settle moves v under the new key unless it is there already. It reads
// the version afresh first, and again after a lost compare-and-swap, so a
// version another process moved since the plan was made costs no KMS call.
func (rw *rewrapper) settle(ctx context.Context, v keystore.BranchKeyVersion) (outcome, error) {
	if v.State == keystore.StateDestroyed {
		return outDestroyed, nil
	}
	if v.KMSKeyARN == rw.arn {
		return outAlreadyMoved, nil
	}
	for range rewrapAttempts {
		cur, err := rw.store.Get(ctx, v.BranchKeyID, v.Version)
		if err != nil {
			return 0, wrapStep(err, "%s: reading %s version %s", rw.step, keystore.Fingerprint(v.BranchKeyID), v.Version)
		}
		if cur.State == keystore.StateDestroyed {
			return outDestroyed, nil // destroyed since the plan was made
		}
		if cur.KMSKeyARN == rw.arn {
			return outMovedByOther, nil
		}
		err = rw.move(ctx, cur)
		if err == nil {
			return outMoved, nil
		}
		if !errors.Is(err, keystore.ErrConflict) {
			return 0, err
		}
	}
	return 0, refuse(keystore.ErrConflict, "%s of %s version %s kept losing to concurrent writers that moved it elsewhere; stop the other rewrap and run again", rw.step, keystore.Fingerprint(v.BranchKeyID), v.Version)
}

func accessDenied(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "AccessDeniedException"
}

// activeRewrapper is what a store in AWS's layout (keystore/dynamodb)
// offers for the active version, whose branch:ACTIVE copy moves with it.
type activeRewrapper interface {
	RewrapWithCopy(ctx context.Context, id, version string, oldCiphertext []byte, newARN string, newCiphertext, activeCopy []byte) error
}

// move wraps v's material under the new key, from its context under the
// old key to its context under the new one, and stores it on condition
// that nobody changed it meanwhile; for the active version of a store in
// AWS's layout, with its ACTIVE copy under the new key too.
func (rw *rewrapper) move(ctx context.Context, v keystore.BranchKeyVersion) error {
	moved := v
	moved.KMSKeyARN = rw.arn
	ar, layout := rw.store.(activeRewrapper)
	withCopy := layout && v.State == keystore.StateActive
	ct, active, err := rw.wrap(ctx, v, moved, withCopy)
	if err != nil {
		return err
	}
	if withCopy {
		err = ar.RewrapWithCopy(ctx, v.BranchKeyID, v.Version, v.Ciphertext, rw.arn, ct, active)
	} else {
		err = rw.store.Rewrap(ctx, v.BranchKeyID, v.Version, v.Ciphertext, rw.arn, ct)
	}
	if err != nil {
		return wrapStep(err, "%s of %s version %s: storing", rw.step, keystore.Fingerprint(v.BranchKeyID), v.Version)
	}
	return nil
}

// reEncryptWrap is Rewrap's wrapFunc: KMS ReEncrypt from the old key to
// the new one, so the material never leaves KMS.
func reEncryptWrap(client KMSReEncrypter, arn string, ecOf func(keystore.BranchKeyVersion) map[string]string, grants []string) wrapFunc {
	return func(ctx context.Context, v, moved keystore.BranchKeyVersion, withCopy bool) ([]byte, []byte, error) {
		out, err := client.ReEncrypt(ctx, &kms.ReEncryptInput{
			CiphertextBlob:               v.Ciphertext,
			SourceKeyId:                  &v.KMSKeyARN,
			SourceEncryptionContext:      ecOf(v),
			DestinationKeyId:             &arn,
			DestinationEncryptionContext: ecOf(moved),
			GrantTokens:                  grants,
		})
		if err != nil {
			hint := ""
			if accessDenied(err) {
				hint = " (the caller needs kms:ReEncryptFrom on the old key and kms:ReEncryptTo on the new one)"
			}
			return nil, nil, fmt.Errorf("custody: rewrap of %s version %s: KMS ReEncrypt from %s to %s%s: %w",
				keystore.Fingerprint(v.BranchKeyID), v.Version, v.KMSKeyARN, arn, hint, err)
		}
		if aws.ToString(out.KeyId) != arn || aws.ToString(out.SourceKeyId) != v.KMSKeyARN {
			return nil, nil, fmt.Errorf("custody: rewrap of %s version %s: KMS ReEncrypt answered for other keys than asked; nothing was stored",
				keystore.Fingerprint(v.BranchKeyID), v.Version)
		}
		if n := len(out.CiphertextBlob); n == 0 || n > keystore.MaxWrappedBranchKeyLen {
			return nil, nil, fmt.Errorf("custody: rewrap of %s version %s: KMS ReEncrypt returned a %d-byte ciphertext; nothing was stored",
				keystore.Fingerprint(v.BranchKeyID), v.Version, n)
		}
		if !withCopy {
			return out.CiphertextBlob, nil, nil
		}
		moved.Ciphertext = out.CiphertextBlob
		dec := ecOf(moved)
		act, err := client.ReEncrypt(ctx, &kms.ReEncryptInput{
			CiphertextBlob:               out.CiphertextBlob,
			SourceKeyId:                  &arn,
			SourceEncryptionContext:      dec,
			DestinationKeyId:             &arn,
			DestinationEncryptionContext: branchkey.ActiveContext(dec, moved),
			GrantTokens:                  grants,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("custody: rewrap of %s version %s: storing: KMS ReEncrypt of the ACTIVE copy: %w",
				keystore.Fingerprint(v.BranchKeyID), v.Version, err)
		}
		return out.CiphertextBlob, act.CiphertextBlob, nil
	}
}

// isKeyARN reports whether s is a KMS key ARN (arn:PARTITION:kms:REGION:
// ACCOUNT:key/ID), not an alias ARN or a bare key id.
func isKeyARN(s string) bool {
	a, err := arn.Parse(s)
	return err == nil && a.Service == "kms" && a.Region != "" && a.AccountID != "" &&
		strings.HasPrefix(a.Resource, "key/") && len(a.Resource) > len("key/")
}
