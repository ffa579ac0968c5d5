package keystore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// A backup is one JSON document (version 2):
//
//	{
//	  "format": "phicrypt-branch-key-backup",
//	  "version": 2,
//	  "records": [
//	    {"branch_key_id": "...", "version": "<uuid>", "kms_key_arn": "arn:...",
//	     "ciphertext": "<base64>", "created_at": "<RFC 3339, UTC, µs>",
//	     "state": "active|decrypt_only|retired", "usage": N, "sha256": "<hex>"},
//	    ...
//	  ],
//	  "manifest": {"records": N, "sha256": "<hex>"}
//	}
//
// Records come grouped by branch key, ids sorted bytewise, each key's
// versions oldest first (the order Store.List gives). A record's sha256 is
// SHA-256 over its canonical serialization (recordDigest); the manifest's is
// SHA-256 over the count and every record digest in order (setDigest). The
// digests cover the values, not the JSON spelling, so re-indenting a backup
// does not break it.
//
// Version 1 is version 2 without "usage" (and its digests without it):
// Restore still reads it, restoring every usage counter as 0. Version 3 is
// version 2 that may hold the store's records (backup_records.go) and
// tombstones: versions in state "destroyed" with an empty ciphertext
// (Store.Destroy), and keys whose versions are all destroyed
// (Store.DestroyKey). Export writes version 3 for a store that holds
// records or a tombstone, version 2 otherwise, so that an older phicrypt
// refuses such a backup as too new rather than as corrupt.
const (
	backupFormat           = "phicrypt-branch-key-backup"
	backupVersion          = 2
	backupVersionTombstone = backupVersionRecords // version 3 also holds tombstones
)

// Caps on what Restore reads.
const (
	MaxBackupBytes   = 1 << 30 // 1 GiB: about two million versions of typical size
	MaxBackupRecords = 1 << 22
)

var (
	// ErrBackupCorrupt: the backup does not match its integrity manifest,
	// is truncated or is malformed. Restore from another copy.
	ErrBackupCorrupt = errors.New("keystore: the backup is corrupt or truncated (it does not match its integrity manifest); restore from another copy")
	// ErrUnsupportedBackup: the backup is not a phicrypt branch key backup,
	// or was written by a newer phicrypt; upgrade phicrypt.
	ErrUnsupportedBackup = errors.New("keystore: not a branch key backup this phicrypt can read (unknown format or version); upgrade phicrypt")
	// ErrStoreNotEmpty: Restore writes only into an empty store.
	ErrStoreNotEmpty = errors.New("keystore: restore needs an empty store; open a new one (restoring over existing branch keys could replace or mix them)")
)

type backupDoc struct {
	Format  string         `json:"format"`
	Version int            `json:"version"`
	Records []backupRecord `json:"records"`
	// NamedRecords (version 3) are the store's records (Records).
	NamedRecords []backupNamedRecord `json:"named_records,omitempty"`
	Manifest     backupManifest      `json:"manifest"`
}

type backupRecord struct {
	BranchKeyID string    `json:"branch_key_id"`
	Version     string    `json:"version"`
	KMSKeyARN   string    `json:"kms_key_arn"`
	Ciphertext  []byte    `json:"ciphertext"`
	CreatedAt   time.Time `json:"created_at"`
	State       State     `json:"state"`
	// Usage is in version 2 only; a pointer tells absent from 0.
	Usage  *uint64 `json:"usage,omitempty"`
	SHA256 string  `json:"sha256"`
}

type backupManifest struct {
	Records      int    `json:"records"`
	NamedRecords int    `json:"named_records,omitempty"` // version 3
	SHA256       string `json:"sha256"`
}

// Export writes a backup of every version of every branch key in store to
// w: the wrapped material as KMS returned it, never plaintext, with an
// integrity manifest. Restore reads it.
//
// The manifest's SHA-256 digests detect corruption, truncation, dropped or
// reordered records; they are not a signature: whoever can write the backup
// can recompute them. Authenticity of the key material comes from KMS: the
// ciphertext is authenticated by KMS and bound by encryption context
// (BranchKeys.EncryptionContext) to its branch key id, version, KMS key,
// creation time and logical store name, so a forged or altered record does
// not unwrap. What KMS
// does not vouch for is each version's state, its usage counter and the set
// of versions (the digests detect corruption, not tampering: anyone who can
// edit a backup can recompute them), so
// keep backups where writes are controlled (object lock, restricted
// bucket). The backup names branch key ids, which may be PHI: protect it
// as the store itself.
//
// A destroyed version (Store.Destroy, DestroyKey) is exported as the store
// keeps it, a tombstone without wrapped material, so a backup made after a
// destroy holds nothing of it; backups made before still do (see
// docs/OPERATIONS.md "Crypto-shredding").
//
// Each branch key is read in one List call, so its versions are
// consistent; the backup is not one point in time across keys. Export
// while nothing rotates, or accept that a key rotated during the export
// appears in either state.
//
// A store that keeps records (Records, as every store of this module does)
// has them backed up too, every kind (RecordKindLister), each record's
// value, revision and update time under the same manifest; such a backup
// is version 3, which only a phicrypt that knows records restores. The
// digests do not make a signed value (a policy) trustworthy: check its own
// signature after a restore as before. Record names may be branch key ids.
// The records of the per-version kinds (IsVersionRecordKind; one per
// version, so possibly more than ListRecords lists) are read version by
// version, and only those of the versions the backup holds are carried.
func Export(ctx context.Context, store Store, w io.Writer) error {
	named, err := exportRecords(ctx, store)
	if err != nil {
		return err
	}
	ids, err := store.IDs(ctx)
	if err != nil {
		return wrapStep(err, "export: listing branch keys")
	}
	var all []BranchKeyVersion
	tombstones := false
	for _, id := range ids {
		vs, err := store.List(ctx, id)
		if err != nil {
			return wrapStep(err, "export: listing %s", Fingerprint(id))
		}
		for _, v := range vs {
			if v.State == StateDestroyed {
				tombstones = true
			}
		}
		all = append(all, vs...)
	}
	if named, err = exportVersionRecords(ctx, store, all, named); err != nil {
		return err
	}
	version := backupVersionFor(named)
	if tombstones {
		version = backupVersionTombstone
	}
	doc := backupDoc{Format: backupFormat, Version: version, Records: []backupRecord{}}
	var digests [][sha256.Size]byte
	for _, v := range all {
		v = v.Normalized()
		d := recordDigest(version, v)
		digests = append(digests, d)
		doc.Records = append(doc.Records, backupRecord{BranchKeyID: v.BranchKeyID, Version: v.Version, KMSKeyARN: v.KMSKeyARN,
			Ciphertext: v.Ciphertext, CreatedAt: v.CreatedAt, State: v.State, Usage: &v.Usage, SHA256: hex.EncodeToString(d[:])})
	}
	var namedDigests [][sha256.Size]byte
	doc.NamedRecords, namedDigests = encodeRecords(version, named)
	set := setDigest(version, digests, namedDigests)
	doc.Manifest = backupManifest{Records: len(doc.Records), NamedRecords: len(named), SHA256: hex.EncodeToString(set[:])}
	b, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		return wrapStep(err, "export")
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return wrapStep(err, "export: writing the backup")
	}
	return nil
}

// Restore recreates, in the empty store, every branch key of the backup
// Export wrote to r, with its versions in their order and states. It reads
// and checks the whole backup first (format version, then every digest and
// the manifest, then that each key has exactly one active version, its
// newest) and writes nothing unless all of it holds; it refuses a store
// that holds any branch key, or any record of a kind the backup holds
// (ErrStoreNotEmpty).
//
// The Store API can only add an active version, so each key is rebuilt by
// Create with its oldest version, Rotate through the others in order (each
// demoting the one before to decrypt-only) and SetState for the retired
// ones. The end state is exactly the original: same versions, order,
// material, KMS key, creation times, states and usage counters (so a
// restore cannot reset how often a version has been used; a version 1
// backup, which has no counters, restores them as 0). During Restore, readers of
// the store can see a key partly rebuilt or a retired version still
// decrypt-only; and a Restore that fails midway leaves a partial store:
// discard it and restore into a new one. The versions unwrap only under the
// LogicalStoreName they were made with: configure the restored store's
// BranchKeys with the original name.
//
// Records come back last, each put as new: same kind, name and value, but
// revision 1 and the restore's time, since a revision is the store's
// compare-and-swap token, which Records cannot set. Whatever must survive
// a restore (a policy's own sequence number) belongs in the value.
func Restore(ctx context.Context, store Store, r io.Reader) error {
	records, named, err := readBackup(r)
	if err != nil {
		return err
	}
	ids, err := store.IDs(ctx)
	if err != nil {
		return wrapStep(err, "restore: listing the target's branch keys")
	}
	if len(ids) != 0 {
		return fmt.Errorf("%w: it holds %d branch keys", ErrStoreNotEmpty, len(ids))
	}
	if err := checkNoRecords(ctx, store, named); err != nil {
		return err
	}
	for _, key := range groupByKey(records) {
		if err := restoreKey(ctx, store, key); err != nil {
			return err
		}
	}
	return restoreRecords(ctx, store, named)
}

// readBackup parses and verifies a backup, returning its versions and its
// named records.
func readBackup(r io.Reader) ([]BranchKeyVersion, []Record, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBackupBytes+1))
	if err != nil {
		return nil, nil, wrapStep(err, "restore: reading the backup")
	}
	if len(b) > MaxBackupBytes {
		return nil, nil, fmt.Errorf("%w: larger than %d bytes", ErrUnsupportedBackup, MaxBackupBytes)
	}
	// The format and version are checked before anything else is parsed.
	var head struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, nil, fmt.Errorf("%w: not a JSON document", ErrBackupCorrupt)
	}
	if head.Format != backupFormat || head.Version < 1 || head.Version > backupVersionRecords {
		return nil, nil, fmt.Errorf("%w: want format %q version 1 to %d", ErrUnsupportedBackup, backupFormat, backupVersionRecords)
	}
	var doc backupDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		// The decoder's message can quote input: say only where it broke.
		return nil, nil, fmt.Errorf("%w: malformed near byte %d", ErrBackupCorrupt, dec.InputOffset())
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fmt.Errorf("%w: data after the backup document", ErrBackupCorrupt)
	}
	return verifyBackup(doc)
}

// verifyBackup checks every record's digest and validity, the manifest, and
// the order Export writes.
func verifyBackup(doc backupDoc) ([]BranchKeyVersion, []Record, error) {
	if len(doc.Records) > MaxBackupRecords {
		return nil, nil, fmt.Errorf("%w: more than %d records", ErrUnsupportedBackup, MaxBackupRecords)
	}
	records := make([]BranchKeyVersion, len(doc.Records))
	digests := make([][sha256.Size]byte, len(doc.Records))
	for i, rec := range doc.Records {
		v := BranchKeyVersion{BranchKeyID: rec.BranchKeyID, Version: rec.Version, KMSKeyARN: rec.KMSKeyARN,
			Ciphertext: rec.Ciphertext, CreatedAt: rec.CreatedAt, State: rec.State}
		if (rec.Usage != nil) != (doc.Version >= 2) {
			return nil, nil, fmt.Errorf("%w: record %d: a version %d backup's records carry usage only from version 2", ErrBackupCorrupt, i, doc.Version)
		}
		if rec.Usage != nil {
			v.Usage = *rec.Usage
		}
		if err := v.Validate(0); err != nil {
			return nil, nil, fmt.Errorf("%w: record %d is not a valid branch key version: %w", ErrBackupCorrupt, i, err)
		}
		if v.State == StateDestroyed && doc.Version < backupVersionTombstone {
			return nil, nil, fmt.Errorf("%w: record %d: a version %d backup holds no destroyed versions", ErrBackupCorrupt, i, doc.Version)
		}
		digests[i] = recordDigest(doc.Version, v.Normalized())
		if !hexEqual(rec.SHA256, digests[i][:]) {
			return nil, nil, fmt.Errorf("%w: record %d does not match its digest", ErrBackupCorrupt, i)
		}
		records[i] = v.Normalized()
	}
	named, namedDigests, err := verifyRecords(doc)
	if err != nil {
		return nil, nil, err
	}
	set := setDigest(doc.Version, digests, namedDigests)
	if doc.Manifest.Records != len(records) || !hexEqual(doc.Manifest.SHA256, set[:]) {
		return nil, nil, fmt.Errorf("%w: the manifest lists %d records, the backup holds %d, or they differ", ErrBackupCorrupt, doc.Manifest.Records, len(records))
	}
	if err := checkBackupOrder(records); err != nil {
		return nil, nil, err
	}
	return records, named, nil
}

// checkBackupOrder checks what a store can hold and Export writes: keys
// grouped and sorted, versions unique, exactly one active version per key
// and it the newest, or none in a destroyed key (every version destroyed).
func checkBackupOrder(records []BranchKeyVersion) error {
	groups := groupByKey(records)
	for i, key := range groups {
		if i > 0 && key[0].BranchKeyID <= groups[i-1][0].BranchKeyID {
			return fmt.Errorf("%w: branch keys are out of order or split", ErrBackupCorrupt)
		}
		seen := map[string]bool{}
		if keyDestroyed(key) {
			for _, v := range key {
				if seen[v.Version] {
					return fmt.Errorf("%w: %s has version %s twice", ErrBackupCorrupt, Fingerprint(v.BranchKeyID), v.Version)
				}
				seen[v.Version] = true
			}
			continue
		}
		for j, v := range key {
			if seen[v.Version] {
				return fmt.Errorf("%w: %s has version %s twice", ErrBackupCorrupt, Fingerprint(v.BranchKeyID), v.Version)
			}
			seen[v.Version] = true
			if newest := j == len(key)-1; (v.State == StateActive) != newest {
				return fmt.Errorf("%w: %s does not have exactly one active version, its newest", ErrBackupCorrupt, Fingerprint(v.BranchKeyID))
			}
		}
	}
	return nil
}

// groupByKey splits records into runs of one branch key id.
func groupByKey(records []BranchKeyVersion) [][]BranchKeyVersion {
	var groups [][]BranchKeyVersion
	for i := 0; i < len(records); {
		j := i + 1
		for j < len(records) && records[j].BranchKeyID == records[i].BranchKeyID {
			j++
		}
		groups = append(groups, records[i:j])
		i = j
	}
	return groups
}

// keyDestroyed reports whether every version of a key is destroyed.
func keyDestroyed(key []BranchKeyVersion) bool {
	for _, v := range key {
		if v.State != StateDestroyed {
			return false
		}
	}
	return true
}

// restoreKey rebuilds one branch key from its versions, oldest first. A
// tombstone is added with a one-byte placeholder in place of its wrapped
// key (the Store API adds only live versions) and destroyed at the end, so
// the store ends holding the tombstone and no material.
func restoreKey(ctx context.Context, store Store, key []BranchKeyVersion) error {
	id := key[0].BranchKeyID
	for i, v := range key {
		v.State = StateActive
		if len(v.Ciphertext) == 0 {
			v.Ciphertext = []byte{0}
		}
		var err error
		if i == 0 {
			err = store.Create(ctx, v)
		} else {
			err = store.Rotate(ctx, id, key[i-1].Version, v)
		}
		if err != nil {
			return wrapStep(err, "restore of %s version %s", Fingerprint(id), v.Version)
		}
	}
	if keyDestroyed(key) {
		if err := store.DestroyKey(ctx, id); err != nil {
			return wrapStep(err, "restore of %s: destroying it", Fingerprint(id))
		}
		return nil
	}
	for _, v := range key {
		var err error
		switch v.State {
		case StateRetired:
			err = store.SetState(ctx, id, v.Version, StateDecryptOnly, StateRetired)
		case StateDestroyed:
			err = store.Destroy(ctx, id, v.Version)
		}
		if err != nil {
			return wrapStep(err, "restore of %s version %s: setting its state", Fingerprint(id), v.Version)
		}
	}
	return nil
}

// recordDigest is SHA-256 over a record's canonical serialization in
// backup version format: a domain tag ("phicrypt branch key backup v<N>
// record" and a NUL), then each field as a 4-byte big-endian length and its
// bytes, in this order: branch key id, version, KMS key ARN, ciphertext,
// creation time (RFC 3339 in UTC with nanoseconds, as normalized to
// microseconds), state name, and from version 2 the usage as 8 bytes big
// endian.
func recordDigest(format int, v BranchKeyVersion) [sha256.Size]byte {
	h := sha256.New()
	fmt.Fprintf(h, "phicrypt branch key backup v%d record\x00", format)
	fields := [][]byte{[]byte(v.BranchKeyID), []byte(v.Version), []byte(v.KMSKeyARN), v.Ciphertext,
		[]byte(v.CreatedAt.UTC().Format(time.RFC3339Nano)), []byte(v.State.String())}
	if format >= 2 {
		fields = append(fields, binary.BigEndian.AppendUint64(nil, v.Usage))
	}
	for _, f := range fields {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(f))))
		h.Write(f)
	}
	return [sha256.Size]byte(h.Sum(nil))
}

// setDigest is SHA-256 over a domain tag ("phicrypt branch key backup v<N>
// set" and a NUL), the record count (8 bytes, big endian) and every record
// digest in order; from version 3, then the named record count (8 bytes,
// big endian) and every named record digest in order.
func setDigest(format int, digests, named [][sha256.Size]byte) [sha256.Size]byte {
	h := sha256.New()
	fmt.Fprintf(h, "phicrypt branch key backup v%d set\x00", format)
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(digests))))
	for _, d := range digests {
		h.Write(d[:])
	}
	if format >= backupVersionRecords {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(named))))
		for _, d := range named {
			h.Write(d[:])
		}
	}
	return [sha256.Size]byte(h.Sum(nil))
}

func hexEqual(s string, want []byte) bool {
	got, err := hex.DecodeString(s)
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}
