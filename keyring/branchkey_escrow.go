package keyring

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"

	"github.com/phicrypt/phicrypt/internal/wire"
	"github.com/phicrypt/phicrypt/keystore"
)

// Branch-key escrow: a copy of each branch key version's material sealed to
// an HPKE escrow public key, kept in the store beside the version, so that
// custodians can move the version to a new KMS key (custody.RecoverBranchKeys)
// when the KMS key that wraps it is lost. Custodians never see branch key
// material otherwise, and KMS gives them no way to, so the copy is made where
// the material is already seen: by services, when they unwrap a version
// (HierarchicalConfig.Escrow), or by a service-side backfill
// (BranchKeys.Escrow). docs/FORMAT.md, "Branch-key escrow records", has
// every byte.

// BranchKeyEscrowRecordKind is the keystore.Records kind of branch-key
// escrow records. There is one record per version, named
// BranchKeyEscrowRecordName(id, version): a per-version kind
// (keystore.IsVersionRecordKind), which backups carry version by version.
const BranchKeyEscrowRecordKind = keystore.VersionRecordKindPrefix + "escrow"

// RecoveredVersionRecordKind is the keystore.Records kind with which
// custody.RecoverBranchKeys marks each version it recovered from its escrow
// copy (named BranchKeyEscrowRecordName(id, version), value 01): a
// per-version kind (keystore.IsVersionRecordKind). A hierarchical keyring
// never writes under a version so marked, since its material was seen
// outside KMS: during the propagation window of the rotation that followed
// the recovery it writes under the new active version at once, and while
// the active version itself is marked (no rotation yet) writing fails with
// ErrVersionRecovered. Reading is not affected. A process that cached the
// active version before the mark was written keeps writing under it for at
// most its CacheTTL. The check costs one store read each time a keyring
// reads which version is active (once per CacheTTL per branch key), two
// during a rotation's propagation window.
const RecoveredVersionRecordKind = keystore.VersionRecordKindPrefix + "recovered"

// recovered reports whether v carries the mark of a recovery
// (RecoveredVersionRecordKind). A store without records has none.
func (b *BranchKeys) recovered(ctx context.Context, v keystore.BranchKeyVersion) (bool, error) {
	recs, ok := b.cfg.Store.(keystore.Records)
	if !ok {
		return false, nil
	}
	_, err := recs.GetRecord(ctx, RecoveredVersionRecordKind, BranchKeyEscrowRecordName(v.BranchKeyID, v.Version))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, keystore.ErrNotFound):
		return false, nil
	}
	return false, wrapStep(err, "reading whether version %s of %s was recovered from escrow", v.Version, keystore.Fingerprint(v.BranchKeyID))
}

// ErrVersionRecovered means new data was to be written under a branch key
// version that came back from escrow in a break-glass recovery (marked
// with RecoveredVersionRecordKind): its material was seen outside KMS, and
// whoever could write to the store could have chosen it, so nothing new is
// written under it. What was written under it still reads. Rotate the
// branch key (custody.RecoverBranchKeys does unless told not to; keyctl
// propose rotate).
var ErrVersionRecovered = errors.New("keyring: the active branch key version came back from escrow; nothing new is written under it until the branch key is rotated")

// notRecovered returns ErrVersionRecovered if v carries the mark of a
// recovery.
func (b *BranchKeys) notRecovered(ctx context.Context, v keystore.BranchKeyVersion) error {
	recovered, err := b.recovered(ctx, v)
	if err != nil {
		return err
	}
	if recovered {
		return fmt.Errorf("%w: version %s of %s", ErrVersionRecovered, v.Version, keystore.Fingerprint(v.BranchKeyID))
	}
	return nil
}

// MaxBranchKeyEscrowCopies is the most escrow keys one version's record
// holds copies for: enough for an escrow key and its successors while
// services move from one to the next.
const MaxBranchKeyEscrowCopies = 4

// Escrow record values.
const (
	bkEscrowVersion   = 0x01
	bkEscrowShredded  = 0x00 // the whole value of the record of a destroyed version
	bkEscrowContextOf = "phicrypt-escrow-of"
	bkEscrowPurpose   = "branch-key-version"
	bkEscrowAttempts  = 4 // compare-and-swap rounds before giving up
)

// Errors of branch-key escrow, matched with errors.Is.
var (
	// ErrNoEscrowCopy: the store holds no escrow copy of a branch key
	// version for the escrow key asked (it was never unwrapped by a
	// service with HierarchicalConfig.Escrow set, nor backfilled with
	// BranchKeys.Escrow).
	ErrNoEscrowCopy = errors.New("keyring: the store holds no escrow copy of this branch key version for this escrow key")
	// ErrEscrowRecord: a branch-key escrow record is malformed, holds more
	// copies than MaxBranchKeyEscrowCopies, or a copy does not open.
	ErrEscrowRecord = errors.New("keyring: a branch-key escrow record is malformed or does not open")
)

// BranchKeyEscrowRecordName is the name of the escrow record of version
// version of branch key id: the version (a 36-character UUID), "/" and the
// id.
func BranchKeyEscrowRecordName(id, version string) string {
	return keystore.VersionRecordName(id, version)
}

// Digest returns SHA-256 of the key's encoding (Bytes): the name escrow
// shares, recover requests and branch-key escrow records give the key.
func (k *HPKEEscrowPublicKey) Digest() [32]byte { return sha256.Sum256(k.Bytes()) }

// KeyDigest returns the Digest of the keyring's escrow public key.
func (e *HPKEEscrow) KeyDigest() [32]byte { return sha256.Sum256(e.pub.Bytes()) }

// escrowCopy is one copy in a record: the escrow key it is sealed to (by
// digest), the key check of the material it holds, and the HPKE encrypted
// data key.
type escrowCopy struct {
	key   [32]byte
	check [32]byte
	edk   EncryptedDataKey
}

// bkEscrowCheckLabel begins the key check's input.
const bkEscrowCheckLabel = "phicrypt branch-key escrow check v1\x00"

// escrowCheck is a copy's key check: HMAC-SHA-256 keyed by the version's
// material over bkEscrowCheckLabel, the escrow key's digest, the copy's
// encrypted data key (provider id, provider info and ciphertext, each
// uint16-length-prefixed) and the serialized escrow context. It reveals
// nothing of the material, and lets a service that unwraps the version
// through KMS tell a copy it made of its material from anything else
// (a copy of other material planted by a writer of the store, an altered
// ciphertext, damage), and recovery check what it opened.
func escrowCheck(material Secret, digest [32]byte, edk EncryptedDataKey, ec map[string]string) ([32]byte, error) {
	ser, err := wire.AppendContext(nil, ec)
	if err != nil {
		return [32]byte{}, err
	}
	mac := hmac.New(sha256.New, material)
	mac.Write([]byte(bkEscrowCheckLabel))
	mac.Write(digest[:])
	var n [2]byte
	for _, field := range [][]byte{[]byte(edk.ProviderID), edk.ProviderInfo, edk.Ciphertext} {
		binary.BigEndian.PutUint16(n[:], uint16(len(field)))
		mac.Write(n[:])
		mac.Write(field)
	}
	mac.Write(ser)
	var out [32]byte
	mac.Sum(out[:0])
	return out, nil
}

// marshalEscrowRecord lays out a record's value:
//
//	version (01) || count (1 byte) || count × (key digest (32) ||
//	    key check (32) || uint16-prefixed provider id ||
//	    uint16-prefixed provider info || uint16-prefixed ciphertext)
func marshalEscrowRecord(copies []escrowCopy) ([]byte, error) {
	if len(copies) == 0 || len(copies) > MaxBranchKeyEscrowCopies {
		return nil, fmt.Errorf("%w: a record holds 1 to %d copies, not %d", ErrEscrowRecord, MaxBranchKeyEscrowCopies, len(copies))
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(bkEscrowVersion)
	b.AddUint8(uint8(len(copies)))
	for _, c := range copies {
		b.AddBytes(c.key[:])
		b.AddBytes(c.check[:])
		for _, field := range [][]byte{[]byte(c.edk.ProviderID), c.edk.ProviderInfo, c.edk.Ciphertext} {
			if len(field) > 0xffff {
				return nil, fmt.Errorf("%w: a field over 65535 bytes", ErrEscrowRecord)
			}
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(field) })
		}
	}
	return b.Bytes()
}

// parseEscrowRecord reads a record's value; shredded reports the value of
// a destroyed version's record.
func parseEscrowRecord(v []byte) (copies []escrowCopy, shredded bool, err error) {
	if len(v) == 1 && v[0] == bkEscrowShredded {
		return nil, true, nil
	}
	in := cryptobyte.String(v)
	var version, count uint8
	if !in.ReadUint8(&version) || version != bkEscrowVersion {
		return nil, false, fmt.Errorf("%w: unknown record version", ErrEscrowRecord)
	}
	if !in.ReadUint8(&count) || count == 0 || count > MaxBranchKeyEscrowCopies {
		return nil, false, fmt.Errorf("%w: a record holds 1 to %d copies", ErrEscrowRecord, MaxBranchKeyEscrowCopies)
	}
	for range count {
		var c escrowCopy
		var key, check []byte
		var id, info, ct cryptobyte.String
		if !in.ReadBytes(&key, 32) || !in.ReadBytes(&check, 32) || !in.ReadUint16LengthPrefixed(&id) || !in.ReadUint16LengthPrefixed(&info) || !in.ReadUint16LengthPrefixed(&ct) {
			return nil, false, fmt.Errorf("%w: the record is cut short", ErrEscrowRecord)
		}
		if len(id) == 0 || !utf8.Valid(id) {
			return nil, false, fmt.Errorf("%w: a copy has an empty or non-UTF-8 provider id", ErrEscrowRecord)
		}
		copy(c.key[:], key)
		copy(c.check[:], check)
		for _, prev := range copies {
			if prev.key == c.key {
				return nil, false, fmt.Errorf("%w: two copies for one escrow key", ErrEscrowRecord)
			}
		}
		c.edk = EncryptedDataKey{ProviderID: string(id), ProviderInfo: info, Ciphertext: ct}
		copies = append(copies, c)
	}
	if !in.Empty() {
		return nil, false, fmt.Errorf("%w: trailing bytes after the copies", ErrEscrowRecord)
	}
	return copies, false, nil
}

// escrowContext is the encryption context an escrow copy of v is sealed
// under: v's KMS encryption context without kms-arn (which changes when
// the version moves to another KMS key), plus phicrypt-escrow-of, so the
// copy opens only as the copy of this version of this key in this store.
func (b *BranchKeys) escrowContext(v keystore.BranchKeyVersion) map[string]string {
	ec := b.EncryptionContext(v)
	delete(ec, bkContextKMSARN)
	ec[bkEscrowContextOf] = bkEscrowPurpose
	return ec
}

// records returns the store's keystore.Records, or an error saying the
// store cannot keep escrow copies.
func (b *BranchKeys) records() (keystore.Records, error) {
	r, ok := b.cfg.Store.(keystore.Records)
	if !ok {
		return nil, errors.New("keyring: branch-key escrow needs a store that keeps records (keystore.Records); every store of this module does")
	}
	return r, nil
}

// escrowOutcome is what escrowTo did.
type escrowOutcome int

const (
	escrowFailed   escrowOutcome = iota
	escrowVerified               // a copy of this material was there
	escrowAdded                  // a copy was added
	escrowReplaced               // a copy of other material was replaced
)

// escrowTo makes sure the store holds a copy of v's material key sealed to
// e: it reads the version's escrow record and adds a copy if e has none,
// or replaces e's copy if its key check does not match key (a copy of
// other material). After writing one it reads the version again: if it was destroyed
// meanwhile, the record is shredded and ErrKeyDestroyed returned, so a
// copy never outlives its version.
func (b *BranchKeys) escrowTo(ctx context.Context, e *HPKEEscrow, v keystore.BranchKeyVersion, key Secret) (escrowOutcome, error) {
	recs, err := b.records()
	if err != nil {
		return escrowFailed, err
	}
	name := BranchKeyEscrowRecordName(v.BranchKeyID, v.Version)
	digest := e.KeyDigest()
	ec := b.escrowContext(v)
	for range bkEscrowAttempts {
		var copies []escrowCopy
		var rev uint64
		replace := -1
		rec, err := recs.GetRecord(ctx, BranchKeyEscrowRecordKind, name)
		switch {
		case errors.Is(err, keystore.ErrNotFound):
		case err != nil:
			return escrowFailed, wrapStep(err, "reading the escrow record of version %s of %s", v.Version, keystore.Fingerprint(v.BranchKeyID))
		default:
			rev = rec.Revision
			var shredded bool
			copies, shredded, err = parseEscrowRecord(rec.Value)
			switch {
			case err != nil:
				// Unreadable, so no copy in it opens: written anew.
				copies = nil
			case shredded:
				// A tombstone stands only over a destroyed version
				// (destroying writes the state first); over a live one
				// it was put by a writer of the store and is replaced.
				cur, err := b.cfg.Store.Get(ctx, v.BranchKeyID, v.Version)
				if err != nil {
					return escrowFailed, wrapStep(err, "reading version %s of %s", v.Version, keystore.Fingerprint(v.BranchKeyID))
				}
				if cur.State == keystore.StateDestroyed {
					return escrowFailed, keyDestroyedError(v.BranchKeyID, v.Version)
				}
			}
			for i, c := range copies {
				if c.key != digest {
					continue
				}
				want, err := escrowCheck(key, digest, c.edk, ec)
				if err != nil {
					return escrowFailed, err
				}
				if hmac.Equal(c.check[:], want[:]) {
					return escrowVerified, nil
				}
				// A copy for this escrow key of other material (planted
				// by a writer of the store, or damaged): replace it.
				replace = i
			}
			if replace < 0 && len(copies) == MaxBranchKeyEscrowCopies {
				return escrowFailed, fmt.Errorf("%w: the escrow record of version %s of %s already holds copies for %d other escrow keys", ErrEscrowRecord, v.Version, keystore.Fingerprint(v.BranchKeyID), MaxBranchKeyEscrowCopies)
			}
		}
		m := EncryptionMaterials{DataKeyLength: len(key), EncryptionContext: ec, DataKey: key}
		if err := e.OnEncrypt(ctx, &m); err != nil {
			return escrowFailed, err
		}
		c := escrowCopy{key: digest, edk: m.EncryptedDataKeys[len(m.EncryptedDataKeys)-1]}
		if c.check, err = escrowCheck(key, digest, c.edk, ec); err != nil {
			return escrowFailed, err
		}
		if replace >= 0 {
			copies[replace] = c
		} else {
			copies = append(copies, c)
		}
		value, err := marshalEscrowRecord(copies)
		if err != nil {
			return escrowFailed, err
		}
		_, err = recs.PutRecord(ctx, BranchKeyEscrowRecordKind, name, value, rev)
		if errors.Is(err, keystore.ErrExists) || errors.Is(err, keystore.ErrConflict) {
			continue // another process wrote it first: read again
		}
		if err != nil {
			return escrowFailed, wrapStep(err, "storing the escrow copy of version %s of %s", v.Version, keystore.Fingerprint(v.BranchKeyID))
		}
		cur, err := b.cfg.Store.Get(ctx, v.BranchKeyID, v.Version)
		if err != nil {
			return escrowFailed, wrapStep(err, "reading version %s of %s after escrowing it", v.Version, keystore.Fingerprint(v.BranchKeyID))
		}
		if cur.State == keystore.StateDestroyed {
			if err := ShredBranchKeyEscrow(ctx, b.cfg.Store, v.BranchKeyID, v.Version); err != nil {
				return escrowFailed, err
			}
			return escrowFailed, keyDestroyedError(v.BranchKeyID, v.Version)
		}
		if replace >= 0 {
			return escrowReplaced, nil
		}
		return escrowAdded, nil
	}
	return escrowFailed, fmt.Errorf("keyring: storing the escrow copy of version %s of %s kept losing to concurrent writers: %w", v.Version, keystore.Fingerprint(v.BranchKeyID), keystore.ErrConflict)
}

// ShredBranchKeyEscrow overwrites the escrow record of version version of
// branch key id with a tombstone (every escrow key's copy in it), or writes
// the tombstone when there is no record yet, so that no escrow copy is made
// of the version afterwards. Call it after the version is destroyed (a
// tombstone stands only over a destroyed version: services and the backfill
// write a copy over one on a live version): a copy left behind would let
// whoever holds the escrow private key undo the crypto-shredding.
// custody.BranchKeys.DestroyVersion and DestroyKey call it. It always
// writes, over a tombstone too, so that any write of a copy prepared
// before it fails its compare-and-swap. What "overwritten" means differs
// by store back end as for keystore.Store.Destroy (old row versions, freed
// file blocks and backups are out of reach). Shredding a shredded record
// succeeds again.
func ShredBranchKeyEscrow(ctx context.Context, store keystore.Store, id, version string) error {
	if err := keystore.CheckKeyVersion(id, version); err != nil {
		return err
	}
	recs, ok := store.(keystore.Records)
	if !ok {
		return nil // a store without records holds no escrow copies
	}
	name := BranchKeyEscrowRecordName(id, version)
	for range bkEscrowAttempts {
		var rev uint64
		rec, err := recs.GetRecord(ctx, BranchKeyEscrowRecordKind, name)
		switch {
		case errors.Is(err, keystore.ErrNotFound):
		case err != nil:
			return wrapStep(err, "reading the escrow record of version %s of %s to shred it", version, keystore.Fingerprint(id))
		default:
			// Written even over a tombstone: the revision moves on, so a
			// service that read the record before the destroy (and may
			// write a copy over a tombstone it took for a live version's)
			// loses its compare-and-swap.
			rev = rec.Revision
		}
		_, err = recs.PutRecord(ctx, BranchKeyEscrowRecordKind, name, []byte{bkEscrowShredded}, rev)
		if errors.Is(err, keystore.ErrExists) || errors.Is(err, keystore.ErrConflict) {
			continue
		}
		if err != nil {
			return wrapStep(err, "shredding the escrow record of version %s of %s", version, keystore.Fingerprint(id))
		}
		return nil
	}
	return fmt.Errorf("keyring: shredding the escrow record of version %s of %s kept losing to concurrent writers: %w", version, keystore.Fingerprint(id), keystore.ErrConflict)
}

// EscrowReport counts what BranchKeys.Escrow did; the counts add up to
// Versions.
type EscrowReport struct {
	// Versions is the number of versions looked at.
	Versions int
	// Escrowed versions got a copy for the escrow key from this call.
	Escrowed int
	// Replaced versions had a copy for the escrow key that was not one of
	// their material (its key check did not match: planted by a writer of
	// the store, altered, or damaged), which this call replaced.
	Replaced int
	// Already versions had a copy of their material for the escrow key.
	Already int
	// Destroyed versions hold no material (destroyed before or while this
	// call ran): nothing to escrow.
	Destroyed int
}

// Escrow makes sure every version of branch key id (of every branch key
// when id is empty) has a copy sealed to e in the store: the backfill for
// versions made before the services' keyrings were given
// HierarchicalConfig.Escrow, or for a new escrow key, and the check of
// the copies there: it unwraps each live version through KMS and checks
// the copy's key check against the material, replacing anything but a
// copy it would make itself: a copy of other material or an altered one
// (planted by a writer of the store, or damaged), an unreadable record, or
// a tombstone over a live version. So it runs as a service (it needs
// kms:Decrypt, which custodians do not have), makes one KMS call per live
// version, and wipes the material at once. Retired versions are escrowed
// too (they can be made decrypt-only again); destroyed ones are skipped
// without being unwrapped. It is idempotent: run it again after an error
// to finish.
func (b *BranchKeys) Escrow(ctx context.Context, e *HPKEEscrow, id string) (EscrowReport, error) {
	var rep EscrowReport
	if e == nil {
		return rep, errors.New("keyring: BranchKeys.Escrow needs an escrow keyring (NewHPKEEscrow)")
	}
	if _, err := b.records(); err != nil {
		return rep, err
	}
	ids := []string{id}
	if id == "" {
		var err error
		if ids, err = b.cfg.Store.IDs(ctx); err != nil {
			return rep, wrapStep(err, "listing branch keys to escrow")
		}
	}
	for _, id := range ids {
		vs, err := b.cfg.Store.List(ctx, id)
		if err != nil {
			return rep, wrapStep(err, "listing the versions of %s to escrow", keystore.Fingerprint(id))
		}
		for _, v := range vs {
			rep.Versions++
			if v.State == keystore.StateDestroyed {
				rep.Destroyed++
				continue
			}
			key, err := b.Unwrap(ctx, v)
			if errors.Is(err, ErrKeyDestroyed) {
				rep.Destroyed++
				continue
			}
			if err != nil {
				return rep, err
			}
			outcome, err := b.escrowTo(ctx, e, v, key)
			key.Wipe()
			switch {
			case errors.Is(err, ErrKeyDestroyed):
				rep.Destroyed++
			case err != nil:
				return rep, err
			case outcome == escrowAdded:
				rep.Escrowed++
			case outcome == escrowReplaced:
				rep.Replaced++
			default:
				rep.Already++
			}
		}
	}
	return rep, nil
}

// hasEscrowCopy reports whether v's escrow record holds a copy for the
// escrow key with the given digest, and whether the record is shredded.
func hasEscrowCopy(ctx context.Context, recs keystore.Records, v keystore.BranchKeyVersion, digest [32]byte) (has, shredded bool, err error) {
	rec, err := recs.GetRecord(ctx, BranchKeyEscrowRecordKind, BranchKeyEscrowRecordName(v.BranchKeyID, v.Version))
	if errors.Is(err, keystore.ErrNotFound) {
		return false, false, nil
	}
	if err != nil {
		return false, false, wrapStep(err, "reading the escrow record of version %s of %s", v.Version, keystore.Fingerprint(v.BranchKeyID))
	}
	copies, shredded, err := parseEscrowRecord(rec.Value)
	if err != nil {
		return false, false, fmt.Errorf("%w (version %s of %s)", err, v.Version, keystore.Fingerprint(v.BranchKeyID))
	}
	for _, c := range copies {
		if c.key == digest {
			return true, false, nil
		}
	}
	return false, shredded, nil
}

// EscrowStatus reports, without unwrapping anything, whether version v has
// a copy sealed to the escrow key with the given digest
// (HPKEEscrowPublicKey.Digest): what custodians check before they need a
// recovery. It says a copy is there, not that it opens to the version's
// material: services check that (the key check) each time they unwrap the
// version, BranchKeys.Escrow for every version, and only the escrow
// private key proves it (a drill). A destroyed version's shredded record
// reports false.
func (b *BranchKeys) EscrowStatus(ctx context.Context, v keystore.BranchKeyVersion, escrowKey [32]byte) (bool, error) {
	recs, err := b.records()
	if err != nil {
		return false, err
	}
	has, _, err := hasEscrowCopy(ctx, recs, v, escrowKey)
	return has, err
}

// OpenEscrow returns the material of version v from its escrow copy for
// recovery's key (NewHPKEEscrowRecovery): the break-glass path, for
// custody.RecoverBranchKeys, which wraps it under a new KMS key at once.
// ErrNoEscrowCopy when the store holds no copy for that key,
// ErrKeyDestroyed when the version was destroyed, ErrEscrowRecord when the
// record is malformed or the copy does not open (sealed for another
// version, store or key). The caller owns the Secret and must Wipe it.
func (b *BranchKeys) OpenEscrow(ctx context.Context, recovery *HPKEEscrow, v keystore.BranchKeyVersion) (Secret, error) {
	if recovery == nil || recovery.priv == nil {
		return nil, errors.New("keyring: OpenEscrow needs the escrow keyring with the private key (NewHPKEEscrowRecovery)")
	}
	if v.State == keystore.StateDestroyed {
		return nil, keyDestroyedError(v.BranchKeyID, v.Version)
	}
	recs, err := b.records()
	if err != nil {
		return nil, err
	}
	rec, err := recs.GetRecord(ctx, BranchKeyEscrowRecordKind, BranchKeyEscrowRecordName(v.BranchKeyID, v.Version))
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, fmt.Errorf("%w: version %s of %s", ErrNoEscrowCopy, v.Version, keystore.Fingerprint(v.BranchKeyID))
	}
	if err != nil {
		return nil, wrapStep(err, "reading the escrow record of version %s of %s", v.Version, keystore.Fingerprint(v.BranchKeyID))
	}
	copies, shredded, err := parseEscrowRecord(rec.Value)
	if err != nil {
		return nil, fmt.Errorf("%w (version %s of %s)", err, v.Version, keystore.Fingerprint(v.BranchKeyID))
	}
	if shredded {
		// A tombstone stands only over a destroyed version.
		cur, err := b.cfg.Store.Get(ctx, v.BranchKeyID, v.Version)
		if err != nil {
			return nil, wrapStep(err, "reading version %s of %s", v.Version, keystore.Fingerprint(v.BranchKeyID))
		}
		if cur.State == keystore.StateDestroyed {
			return nil, keyDestroyedError(v.BranchKeyID, v.Version)
		}
		return nil, fmt.Errorf("%w: the escrow record of version %s of %s is a tombstone, but the version is not destroyed", ErrEscrowRecord, v.Version, keystore.Fingerprint(v.BranchKeyID))
	}
	digest := recovery.KeyDigest()
	for _, c := range copies {
		if c.key != digest {
			continue
		}
		ec := b.escrowContext(v)
		m := DecryptionMaterials{DataKeyLength: branchKeyLength, EncryptionContext: ec}
		if err := recovery.OnDecrypt(ctx, &m, []EncryptedDataKey{c.edk}); err != nil {
			return nil, fmt.Errorf("%w: the copy of version %s of %s does not open with this escrow key (sealed for another version, store or key name)", ErrEscrowRecord, v.Version, keystore.Fingerprint(v.BranchKeyID))
		}
		check, err := escrowCheck(m.DataKey, digest, c.edk, ec)
		if err != nil || !hmac.Equal(check[:], c.check[:]) {
			m.DataKey.Wipe()
			return nil, fmt.Errorf("%w: the copy of version %s of %s opens to material its key check does not match", ErrEscrowRecord, v.Version, keystore.Fingerprint(v.BranchKeyID))
		}
		return m.DataKey, nil
	}
	return nil, fmt.Errorf("%w: version %s of %s", ErrNoEscrowCopy, v.Version, keystore.Fingerprint(v.BranchKeyID))
}

// DropReport counts what DropEscrowCopies did.
type DropReport struct {
	// Dropped copies were removed.
	Dropped int
	// Kept copies were their record's last one, which is never dropped.
	Kept int
	// Damaged records could not be read, so nothing was dropped from
	// them (a service or BranchKeys.Escrow writes them anew).
	Damaged int
}

// DropEscrowCopies removes, from the escrow record of every version of
// branch key id (of every branch key when id is empty), the copy sealed to
// the escrow key with the given digest (HPKEEscrowPublicKey.Digest): for
// an escrow key that is retired, once every service escrows to its
// successor and a backfill (BranchKeys.Escrow) has copied every version to
// it, so that its slot (one of MaxBranchKeyEscrowCopies) is free for the
// next key. The record keeps its other copies, whatever keys they are for
// (DropEscrowCopies does not know the successor: check with EscrowStatus
// first); a record's last copy is never dropped (counted as kept). An
// unreadable record is counted as damaged and left alone. It unwraps
// nothing and needs no KMS key: custodians may run it.
func DropEscrowCopies(ctx context.Context, store keystore.Store, escrowKey [32]byte, id string) (DropReport, error) {
	var rep DropReport
	recs, ok := store.(keystore.Records)
	if !ok {
		return rep, nil // no records, no copies
	}
	ids := []string{id}
	if id == "" {
		var err error
		if ids, err = store.IDs(ctx); err != nil {
			return rep, wrapStep(err, "listing branch keys")
		}
	}
	for _, id := range ids {
		vs, err := store.List(ctx, id)
		if err != nil {
			return rep, wrapStep(err, "listing the versions of %s", keystore.Fingerprint(id))
		}
		for _, v := range vs {
			if err := dropEscrowCopy(ctx, recs, v, escrowKey, &rep); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

// dropEscrowCopy removes v's copy for escrowKey by compare-and-swap,
// unless it is the record's only one.
func dropEscrowCopy(ctx context.Context, recs keystore.Records, v keystore.BranchKeyVersion, escrowKey [32]byte, rep *DropReport) error {
	name := BranchKeyEscrowRecordName(v.BranchKeyID, v.Version)
	for range bkEscrowAttempts {
		rec, err := recs.GetRecord(ctx, BranchKeyEscrowRecordKind, name)
		if errors.Is(err, keystore.ErrNotFound) {
			return nil
		}
		if err != nil {
			return wrapStep(err, "reading the escrow record of version %s of %s", v.Version, keystore.Fingerprint(v.BranchKeyID))
		}
		copies, shredded, err := parseEscrowRecord(rec.Value)
		if err != nil {
			rep.Damaged++
			return nil
		}
		i := slices.IndexFunc(copies, func(c escrowCopy) bool { return c.key == escrowKey })
		if shredded || i < 0 {
			return nil
		}
		if len(copies) == 1 {
			rep.Kept++
			return nil
		}
		value, err := marshalEscrowRecord(slices.Delete(copies, i, i+1))
		if err != nil {
			return err
		}
		_, err = recs.PutRecord(ctx, BranchKeyEscrowRecordKind, name, value, rec.Revision)
		if errors.Is(err, keystore.ErrConflict) || errors.Is(err, keystore.ErrNotFound) {
			continue
		}
		if err != nil {
			return wrapStep(err, "dropping a copy from the escrow record of version %s of %s", v.Version, keystore.Fingerprint(v.BranchKeyID))
		}
		rep.Dropped++
		return nil
	}
	return fmt.Errorf("keyring: dropping a copy from the escrow record of version %s of %s kept losing to concurrent writers: %w", v.Version, keystore.Fingerprint(v.BranchKeyID), keystore.ErrConflict)
}
