package keystore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Records in backups. A store that holds records (Records) is backed up as
// version 3: version 2 with "named_records", every record of every kind,
// kinds sorted, each kind's records sorted by name:
//
//	"named_records": [
//	  {"kind": "policy", "name": "...", "value": "<base64>", "revision": N,
//	   "updated_at": "<RFC 3339, UTC, µs>", "sha256": "<hex>"}, ...
//	],
//	"manifest": {"records": N, "named_records": M, "sha256": "<hex>"}
//
// A named record's sha256 is namedRecordDigest; the manifest's covers the
// versions' digests, then the count of named records and their digests
// (setDigest). A store without records is backed up as version 2, which
// a phicrypt that predates records restores.

// backupVersionRecords is the first backup version with named records.
const backupVersionRecords = 3

type backupNamedRecord struct {
	Kind      string    `json:"kind"`
	Name      string    `json:"name"`
	Value     []byte    `json:"value"`
	Revision  uint64    `json:"revision"`
	UpdatedAt time.Time `json:"updated_at"`
	SHA256    string    `json:"sha256"`
}

// exportRecords reads every record of store, if it keeps records, but
// those of the per-version kinds (exportVersionRecords reads them). A store
// with Records must list its kinds (RecordKindLister), or Export would
// silently leave its records out.
func exportRecords(ctx context.Context, store Store) ([]Record, error) {
	rs, ok := store.(Records)
	if !ok {
		return nil, nil
	}
	lister, ok := store.(RecordKindLister)
	if !ok {
		return nil, fmt.Errorf("keystore: export: the store keeps records but cannot list their kinds (RecordKindLister), so a backup could not carry them")
	}
	kinds, err := lister.RecordKinds(ctx)
	if err != nil {
		return nil, wrapStep(err, "export: listing record kinds")
	}
	var out []Record
	for _, kind := range kinds {
		if IsVersionRecordKind(kind) {
			continue
		}
		list, err := rs.ListRecords(ctx, kind)
		if err != nil {
			return nil, wrapStep(err, "export: listing records of kind %s", kind)
		}
		out = append(out, list...)
	}
	return out, nil
}

// exportVersionRecords reads the records of the per-version kinds
// (IsVersionRecordKind) of each of versions, one read per kind and
// version (there may be more than ListRecords lists), and returns named
// with them added in Export's order: kinds sorted, each kind's records
// sorted by name.
func exportVersionRecords(ctx context.Context, store Store, versions []BranchKeyVersion, named []Record) ([]Record, error) {
	rs, ok := store.(Records)
	if !ok {
		return named, nil
	}
	kinds, err := store.(RecordKindLister).RecordKinds(ctx) // exportRecords made sure
	if err != nil {
		return nil, wrapStep(err, "export: listing record kinds")
	}
	out := named
	for _, kind := range kinds {
		if !IsVersionRecordKind(kind) {
			continue
		}
		for _, v := range versions {
			r, err := rs.GetRecord(ctx, kind, VersionRecordName(v.BranchKeyID, v.Version))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, wrapStep(err, "export: reading the %s record of version %s of %s", kind, v.Version, Fingerprint(v.BranchKeyID))
			}
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Record) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// backupVersionFor is the version Export writes: 3 with records, else 2.
func backupVersionFor(records []Record) int {
	if len(records) > 0 {
		return backupVersionRecords
	}
	return backupVersion
}

// encodeRecords is records as a backup of version format holds them, with
// their digests.
func encodeRecords(format int, records []Record) ([]backupNamedRecord, [][sha256.Size]byte) {
	var out []backupNamedRecord
	var digests [][sha256.Size]byte
	for _, r := range records {
		r = r.Normalized()
		d := namedRecordDigest(format, r)
		digests = append(digests, d)
		out = append(out, backupNamedRecord{Kind: r.Kind, Name: r.Name, Value: r.Value, Revision: r.Revision,
			UpdatedAt: r.UpdatedAt, SHA256: hex.EncodeToString(d[:])})
	}
	return out, digests
}

// verifyRecords checks the named records of doc: allowed by its version,
// each valid and matching its digest, within the caps, in Export's order
// (so no record appears twice). It returns them and their digests.
func verifyRecords(doc backupDoc) ([]Record, [][sha256.Size]byte, error) {
	if len(doc.NamedRecords) > 0 && doc.Version < backupVersionRecords {
		return nil, nil, fmt.Errorf("%w: a version %d backup has no named records", ErrBackupCorrupt, doc.Version)
	}
	if len(doc.NamedRecords) > MaxBackupRecords {
		return nil, nil, fmt.Errorf("%w: more than %d named records", ErrUnsupportedBackup, MaxBackupRecords)
	}
	records := make([]Record, len(doc.NamedRecords))
	digests := make([][sha256.Size]byte, len(doc.NamedRecords))
	for i, br := range doc.NamedRecords {
		r := Record{Kind: br.Kind, Name: br.Name, Value: br.Value, Revision: br.Revision, UpdatedAt: br.UpdatedAt}
		if err := r.Validate(); err != nil {
			return nil, nil, fmt.Errorf("%w: named record %d is not a valid record: %w", ErrBackupCorrupt, i, err)
		}
		r = r.Normalized()
		digests[i] = namedRecordDigest(doc.Version, r)
		if !hexEqual(br.SHA256, digests[i][:]) {
			return nil, nil, fmt.Errorf("%w: named record %d does not match its digest", ErrBackupCorrupt, i)
		}
		if i > 0 {
			prev := records[i-1]
			if c := strings.Compare(prev.Kind, r.Kind); c > 0 || c == 0 && prev.Name >= r.Name {
				return nil, nil, fmt.Errorf("%w: named records are out of order or repeated", ErrBackupCorrupt)
			}
		}
		records[i] = r
	}
	if doc.Manifest.NamedRecords != len(records) {
		return nil, nil, fmt.Errorf("%w: the manifest lists %d named records, the backup holds %d", ErrBackupCorrupt, doc.Manifest.NamedRecords, len(records))
	}
	return records, digests, nil
}

// checkNoRecords refuses a target that cannot take the backup's records or
// already holds records of one of their kinds.
func checkNoRecords(ctx context.Context, store Store, records []Record) error {
	if len(records) == 0 {
		return nil
	}
	rs, ok := store.(Records)
	if !ok {
		return fmt.Errorf("keystore: restore: the backup holds records and the target store does not keep records (Records)")
	}
	for i, r := range records {
		if i > 0 && records[i-1].Kind == r.Kind {
			continue
		}
		list, err := rs.ListRecords(ctx, r.Kind)
		if err != nil {
			return wrapStep(err, "restore: listing the target's records of kind %s", r.Kind)
		}
		if len(list) != 0 {
			return fmt.Errorf("%w: it holds records of kind %s", ErrStoreNotEmpty, r.Kind)
		}
	}
	return nil
}

// restoreRecords puts every record as new. Each starts again at revision
// 1, updated now: a revision is the store's compare-and-swap token, which
// Records cannot set.
func restoreRecords(ctx context.Context, store Store, records []Record) error {
	if len(records) == 0 {
		return nil
	}
	rs := store.(Records) // checkNoRecords made sure
	for _, r := range records {
		if _, err := rs.PutRecord(ctx, r.Kind, r.Name, r.Value, 0); err != nil {
			return wrapStep(err, "restore of %s", RecordRef(r.Kind, r.Name))
		}
	}
	return nil
}

// namedRecordDigest is SHA-256 over a named record's canonical
// serialization in backup version format: a domain tag ("phicrypt branch
// key backup v<N> named record" and a NUL), then each field as a 4-byte
// big-endian length and its bytes: kind, name, value, revision (8 bytes,
// big endian), update time (RFC 3339 in UTC with nanoseconds, as
// normalized to microseconds).
func namedRecordDigest(format int, r Record) [sha256.Size]byte {
	h := sha256.New()
	fmt.Fprintf(h, "phicrypt branch key backup v%d named record\x00", format)
	for _, f := range [][]byte{[]byte(r.Kind), []byte(r.Name), r.Value, binary.BigEndian.AppendUint64(nil, r.Revision),
		[]byte(r.UpdatedAt.UTC().Format(time.RFC3339Nano))} {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(f))))
		h.Write(f)
	}
	return [sha256.Size]byte(h.Sum(nil))
}
