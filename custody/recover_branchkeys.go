package custody

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/phicrypt/phicrypt/internal/branchkey"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
)

// KMSEncrypter is the part of the aws-sdk-go-v2 KMS client that
// RecoverBranchKeys uses; *kms.Client satisfies it. To rotate after the
// recovery (RecoverBranchKeysOptions.Rotate) it must also have
// GenerateDataKeyWithoutPlaintext, as *kms.Client does.
type KMSEncrypter interface {
	Encrypt(ctx context.Context, in *kms.EncryptInput, optFns ...func(*kms.Options)) (*kms.EncryptOutput, error)
}

// RecordRecoveredBranchKey is the keystore.Records kind with which
// RecoverBranchKeys marks each version it recovered from its escrow copy
// (named keyring.BranchKeyEscrowRecordName(id, version), value 1), before
// storing it: what lets a re-run rotate a key whose active version an
// interrupted run recovered, and shows afterwards which versions came
// from escrow.
const RecordRecoveredBranchKey = keyring.RecoveredVersionRecordKind

// MaxReportedMissing caps RecoverBranchKeysReport.MissingVersions (the
// count, Missing, goes on).
const MaxReportedMissing = 1000

// RecoverBranchKeysOptions configures RecoverBranchKeys.
type RecoverBranchKeysOptions struct {
	// BranchKeyID, when set, limits the recovery to the versions of that
	// one branch key; empty recovers every branch key of the store.
	BranchKeyID string
	// Checkpoint, Resume and Progress work as RewrapOptions's, in the same
	// order (branch key ids sorted bytewise, each key's versions oldest
	// first). A plain re-run also finishes: versions already under the new
	// key are skipped.
	Checkpoint func(id, version string) error
	Resume     *RewrapPosition
	Progress   func(done, total int)
	// Rotate, when set, rotates every branch key whose active version was
	// recovered from its escrow copy (by this call or an earlier one that
	// stopped before rotating), once every version is settled: see
	// RecoverBranchKeys for why.
	Rotate bool
	// GrantTokens are passed to every KMS call.
	GrantTokens []string
}

// VersionFingerprint names a branch key version without its branch key id:
// keystore.Fingerprint of the id and the version.
type VersionFingerprint struct {
	Fingerprint, Version string
}

// String is "FINGERPRINT version VERSION".
func (v VersionFingerprint) String() string { return v.Fingerprint + " version " + v.Version }

// RecoverBranchKeysReport counts what RecoverBranchKeys did; the counts
// except Rotated add up to Total.
type RecoverBranchKeysReport struct {
	// Total is the number of versions the store held when the recovery
	// began (of BranchKeyID's key only, when set).
	Total int
	// Recovered versions were opened from their escrow copy and stored
	// under the new key by this call.
	Recovered int
	// AlreadyMoved versions were under the new key already (an earlier
	// run, a rewrap, or versions made under it).
	AlreadyMoved int
	// MovedByOther versions were moved by another process while this call
	// ran.
	MovedByOther int
	// Resumed versions came before RecoverBranchKeysOptions.Resume and were
	// not read.
	Resumed int
	// Destroyed versions hold no material (crypto-shredded): nothing to
	// recover.
	Destroyed int
	// Missing versions have no escrow copy for the escrow key: they stay
	// under their old key, and are lost with it.
	Missing int
	// Damaged versions have a copy for the escrow key that does not open
	// to this version's material (malformed, sealed for another version,
	// or failing its key check): they stay under their old key too.
	Damaged int
	// MissingVersions names the first MaxReportedMissing of the Missing
	// and Damaged versions.
	MissingVersions []VersionFingerprint
	// Rotated branch keys got a fresh active version under the new key
	// after their active version was recovered (Rotate).
	Rotated int
}

// RecoverBranchKeys is the break-glass path for branch keys: it moves
// every version of every branch key of keys's store (or of
// opts.BranchKeyID's key) under the KMS key newKeyARN when the KMS key
// that wraps them is lost, from the escrow copies services stored
// (keyring.HierarchicalConfig.Escrow, keyring.BranchKeys.Escrow). recovery
// is the escrow keyring with the private key
// (keyring.NewHPKEEscrowRecovery over the key Authority.AuthorizeRecovery
// reassembled).
//
// For each version not destroyed and not under newKeyARN already, it opens
// the escrow copy (keyring.BranchKeys.OpenEscrow), has KMS Encrypt the
// material under newKeyARN with the version's encryption context for the
// new key (keys.EncryptionContext), checks the answer (the new key, a
// ciphertext of at most keystore.MaxWrappedBranchKeyLen bytes), stores it
// with keystore.Store.Rewrap's compare-and-swap (for the active version of
// a store in AWS's layout, with its ACTIVE copy, encrypted under
// branch:ACTIVE's context), and wipes the material at once. The caller
// needs kms:Encrypt on newKeyARN and nothing else of it: no KMS call
// touches the old key.
//
// A version without an escrow copy (Missing), or whose copy does not open
// to its material (Damaged: malformed, replayed from another version, or
// failing its key check), is counted and named by fingerprint in the
// report, and the recovery goes on with the rest; at the end the error
// wraps keyring.ErrNoEscrowCopy or keyring.ErrEscrowRecord and names them.
// Any other error stops it. It is idempotent and resumable as Rewrap is.
//
// A recovered version's material is only as trustworthy as the store's
// write access: the escrow public key is public, so whoever could write to
// the store could have planted an escrow copy of material of their own
// choosing, which the recovery would then put under the new key. Such a
// version still decrypts only what was written under it, and the
// recovered versions stay decrypt-only. But the active version is what
// services write new data under: with opts.Rotate, every branch key whose
// active version was recovered is rotated, its new active version made by
// KMS under newKeyARN (GenerateDataKeyWithoutPlaintext, so no one sees
// it), and the recovered one becomes decrypt-only. Each version recovered
// is marked in the store (RecordRecoveredBranchKey) before it is stored, so
// a re-run after an interruption still rotates. For a store in AWS's
// layout the rotation makes the ACTIVE copy with ReEncrypt on newKeyARN
// (kms:ReEncryptFrom and kms:ReEncryptTo on it).
func RecoverBranchKeys(ctx context.Context, keys *BranchKeys, recovery *keyring.HPKEEscrow, client KMSEncrypter, newKeyARN string, opts RecoverBranchKeysOptions) (RecoverBranchKeysReport, error) {
	var rep RecoverBranchKeysReport
	if keys == nil || recovery == nil || client == nil {
		return rep, refuse(keystore.ErrInvalid, "RecoverBranchKeys needs the custodian's BranchKeys, the escrow keyring with the private key and a KMS client")
	}
	if !isKeyARN(newKeyARN) || len(newKeyARN) > keystore.MaxKMSKeyARNLen {
		return rep, refuse(keystore.ErrInvalid, "RecoverBranchKeys needs the new KMS key's ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), not an alias or key id")
	}
	if opts.BranchKeyID != "" {
		if err := keystore.CheckID(opts.BranchKeyID); err != nil {
			return rep, err
		}
	}
	svc, err := keyring.NewBranchKeys(keys.cfg)
	if err != nil {
		return rep, wrapStep(err, "checking the configuration")
	}
	recs, ok := keys.cfg.Store.(keystore.Records)
	if !ok {
		return rep, refuse(keystore.ErrInvalid, "branch-key recovery needs a store that keeps records")
	}
	plan, err := rewrapPlan(ctx, keys.cfg.Store, opts.BranchKeyID)
	if err != nil {
		return rep, err
	}
	rep.Total = len(plan)
	start, err := resumeIndex(plan, opts.Resume)
	if err != nil {
		return rep, err
	}
	rep.Resumed = start
	ew := escrowWrapper{svc: svc, recs: recs, recovery: recovery, client: client, arn: newKeyARN, ecOf: keys.contextOf, grants: opts.GrantTokens}
	rw := rewrapper{store: keys.cfg.Store, arn: newKeyARN, wrap: ew.wrap, step: "recovery"}
	err = rw.walk(ctx, plan, start, opts.Checkpoint, opts.Progress, func(v keystore.BranchKeyVersion, o outcome, err error) error {
		name := func() {
			if len(rep.MissingVersions) < MaxReportedMissing {
				rep.MissingVersions = append(rep.MissingVersions, VersionFingerprint{keystore.Fingerprint(v.BranchKeyID), v.Version})
			}
		}
		switch {
		case errors.Is(err, keyring.ErrNoEscrowCopy):
			rep.Missing++
			name()
		case errors.Is(err, keyring.ErrEscrowRecord):
			rep.Damaged++
			name()
		case errors.Is(err, keyring.ErrKeyDestroyed), errors.Is(err, keystore.ErrDestroyed):
			rep.Destroyed++ // destroyed (and its copy shredded) meanwhile
		case err != nil:
			return err
		case o == outMoved:
			rep.Recovered++
		case o == outAlreadyMoved:
			rep.AlreadyMoved++
		case o == outMovedByOther:
			rep.MovedByOther++
		case o == outDestroyed:
			rep.Destroyed++
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	if opts.Rotate {
		if err := rotateRecovered(ctx, keys, recs, client, newKeyARN, opts, plan, &rep); err != nil {
			return rep, err
		}
	}
	if n := rep.Missing + rep.Damaged; n > 0 {
		names := make([]string, len(rep.MissingVersions))
		for i, m := range rep.MissingVersions {
			names[i] = m.String()
		}
		more := ""
		if n > len(names) {
			more = fmt.Sprintf(" and %d more", n-len(names))
		}
		var cause []error
		if rep.Missing > 0 {
			cause = append(cause, keyring.ErrNoEscrowCopy)
		}
		if rep.Damaged > 0 {
			cause = append(cause, keyring.ErrEscrowRecord)
		}
		return rep, fmt.Errorf("custody: %d branch key version(s) have no escrow copy and %d a copy that does not open; they stay under their old KMS key: %s%s: %w",
			rep.Missing, rep.Damaged, strings.Join(names, ", "), more, errors.Join(cause...))
	}
	return rep, nil
}

// escrowWrapper is RecoverBranchKeys's wrapFunc: the material from the
// escrow copy, encrypted by KMS under the new key.
type escrowWrapper struct {
	svc      *keyring.BranchKeys
	recs     keystore.Records
	recovery *keyring.HPKEEscrow
	client   KMSEncrypter
	arn      string
	ecOf     func(keystore.BranchKeyVersion) map[string]string
	grants   []string
}

func (ew escrowWrapper) wrap(ctx context.Context, v, moved keystore.BranchKeyVersion, withCopy bool) ([]byte, []byte, error) {
	key, err := ew.svc.OpenEscrow(ctx, ew.recovery, v)
	if err != nil {
		return nil, nil, err
	}
	defer key.Wipe()
	dec := ew.ecOf(moved)
	ct, err := ew.encrypt(ctx, v, key, dec)
	if err != nil {
		return nil, nil, err
	}
	var active []byte
	if withCopy {
		moved.Ciphertext = ct
		if active, err = ew.encrypt(ctx, v, key, branchkey.ActiveContext(dec, moved)); err != nil {
			return nil, nil, err
		}
	}
	// The mark goes first: a run stopped after storing still knows, when
	// re-run, that the version came from escrow.
	name := keyring.BranchKeyEscrowRecordName(v.BranchKeyID, v.Version)
	if _, err := ew.recs.PutRecord(ctx, RecordRecoveredBranchKey, name, []byte{1}, 0); err != nil && !errors.Is(err, keystore.ErrExists) {
		return nil, nil, wrapStep(err, "recovery of %s version %s: marking it recovered", keystore.Fingerprint(v.BranchKeyID), v.Version)
	}
	return ct, active, nil
}

// encrypt has KMS Encrypt key under the new key with context ec, and
// checks the answer.
func (ew escrowWrapper) encrypt(ctx context.Context, v keystore.BranchKeyVersion, key keyring.Secret, ec map[string]string) ([]byte, error) {
	out, err := ew.client.Encrypt(ctx, &kms.EncryptInput{KeyId: &ew.arn, Plaintext: key, EncryptionContext: ec, GrantTokens: ew.grants})
	if err != nil {
		hint := ""
		if accessDenied(err) {
			hint = " (the caller needs kms:Encrypt on the new key)"
		}
		return nil, fmt.Errorf("custody: recovery of %s version %s: KMS Encrypt under %s%s: %w", keystore.Fingerprint(v.BranchKeyID), v.Version, ew.arn, hint, err)
	}
	if aws.ToString(out.KeyId) != ew.arn {
		return nil, fmt.Errorf("custody: recovery of %s version %s: KMS Encrypt answered for another key than asked; nothing was stored", keystore.Fingerprint(v.BranchKeyID), v.Version)
	}
	if n := len(out.CiphertextBlob); n == 0 || n > keystore.MaxWrappedBranchKeyLen {
		return nil, fmt.Errorf("custody: recovery of %s version %s: KMS Encrypt returned a %d-byte ciphertext; nothing was stored", keystore.Fingerprint(v.BranchKeyID), v.Version, n)
	}
	return out.CiphertextBlob, nil
}

// rotateRecovered rotates every branch key of the plan whose active
// version is marked recovered, making the new version under newKeyARN.
func rotateRecovered(ctx context.Context, keys *BranchKeys, recs keystore.Records, client KMSEncrypter, newKeyARN string,
	opts RecoverBranchKeysOptions, plan []keystore.BranchKeyVersion, rep *RecoverBranchKeysReport) error {
	maker := keys.maker
	maker.KMSKeyARN = newKeyARN
	if opts.GrantTokens != nil {
		maker.GrantTokens = opts.GrantTokens
	}
	if gen, ok := client.(branchkey.Generator); ok {
		maker.Generator = gen
	}
	var last string
	for _, v := range plan {
		if v.BranchKeyID == last {
			continue
		}
		last = v.BranchKeyID
		cur, err := keys.cfg.Store.Active(ctx, v.BranchKeyID)
		if errors.Is(err, keystore.ErrDestroyed) || errors.Is(err, keystore.ErrNotFound) {
			continue
		}
		if err != nil {
			return wrapStep(err, "recovery: reading the active version of %s to rotate it", keystore.Fingerprint(v.BranchKeyID))
		}
		_, err = recs.GetRecord(ctx, RecordRecoveredBranchKey, keyring.BranchKeyEscrowRecordName(cur.BranchKeyID, cur.Version))
		if errors.Is(err, keystore.ErrNotFound) {
			continue // made under a KMS key, not recovered: nothing to replace
		}
		if err != nil {
			return wrapStep(err, "recovery: reading the recovery mark of %s version %s", keystore.Fingerprint(v.BranchKeyID), cur.Version)
		}
		_, err = maker.RotateFrom(ctx, keys.cfg.Store, cur.BranchKeyID, cur.Version)
		if err != nil && !errors.Is(err, keystore.ErrConflict) {
			return wrapStep(err, "recovery: rotating %s after recovering its active version (the versions are recovered; rotate it with keyctl rotate, or re-run)", keystore.Fingerprint(v.BranchKeyID))
		}
		if err == nil {
			rep.Rotated++
		}
	}
	return nil
}

// Format implements fmt.Formatter: the branch key and resume position by
// fingerprint, whether each callback is set.
func (o RecoverBranchKeysOptions) Format(f fmt.State, _ rune) { formatRedacted(f, o.describe()) }

// LogValue implements slog.LogValuer.
func (o RecoverBranchKeysOptions) LogValue() slog.Value { return slog.StringValue(o.describe()) }

func (o RecoverBranchKeysOptions) describe() string {
	only, resume := "every branch key", "none"
	if o.BranchKeyID != "" {
		only = keystore.Fingerprint(o.BranchKeyID)
	}
	if o.Resume != nil {
		resume = o.Resume.String()
	}
	return fmt.Sprintf("RecoverBranchKeysOptions{%s, resume %s, rotate %t, checkpoint %t, progress %t, %d grant tokens}",
		only, resume, o.Rotate, o.Checkpoint != nil, o.Progress != nil, len(o.GrantTokens))
}
