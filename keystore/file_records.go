//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly || windows

package keystore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The file store keeps records (Records) beside its branch keys:
//
//	records/<kind>/<sha256(name) hex>.json  one record (fileRecord)
//
// A record is replaced as a branch key's document is (a temporary file in
// the store's directory, fsync, rename into place, fsync of the directory),
// under the same lock, so PutRecord's compare-and-swap holds across
// processes and a crash leaves the old or the new revision. The records
// directory is invisible to a phicrypt that predates it: it lists only
// branch key documents.

// fileRecordSchema is the version of fileRecord this phicrypt writes and
// the only one it reads.
const fileRecordSchema = 1

const fileRecordsDir = "records"

// fileRecord is a record as the file store writes it.
type fileRecord struct {
	// Schema comes first so a reader can refuse a version it does not know
	// before trusting anything else.
	Schema    int       `json:"schema"`
	Kind      string    `json:"kind"`
	Name      string    `json:"name"`
	Value     []byte    `json:"value"` // base64
	Revision  uint64    `json:"revision"`
	UpdatedAt time.Time `json:"updated_at"`
}

var (
	_ Records          = (*FileStore)(nil)
	_ RecordKindLister = (*FileStore)(nil)
)

// GetRecord implements Records.
func (s *FileStore) GetRecord(ctx context.Context, kind, name string) (Record, error) {
	if err := CheckRecordKey(kind, name); err != nil {
		return Record{}, err
	}
	if err := s.usable(ctx); err != nil {
		return Record{}, err
	}
	r, err := s.readRecord(kind, s.recordPath(kind, name), name)
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, RecordNotFoundError(kind, name)
	}
	return r, err
}

// PutRecord implements Records: a read-modify-write of the record's file
// under the store's lock.
func (s *FileStore) PutRecord(ctx context.Context, kind, name string, value []byte, expected uint64) (uint64, error) {
	if err := CheckPutRecord(kind, name, value, expected); err != nil {
		return 0, err
	}
	var revision uint64
	err := s.locked(ctx, func() error {
		path := s.recordPath(kind, name)
		cur, err := s.readRecord(kind, path, name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if expected != 0 {
				return RecordNotFoundError(kind, name)
			}
		case err != nil:
			return err
		case expected == 0:
			return RecordExistsError(kind, name)
		case cur.Revision != expected:
			return RecordConflictError(kind, name, expected)
		}
		revision = expected + 1
		return s.writeRecord(kind, path, fileRecord{Schema: fileRecordSchema, Kind: kind, Name: name,
			Value: value, Revision: revision, UpdatedAt: RecordNow()})
	})
	if err != nil {
		return 0, err
	}
	return revision, nil
}

// ListRecords implements Records. It counts the kind's files before
// reading any, so a kind over the cap costs one directory read.
func (s *FileStore) ListRecords(ctx context.Context, kind string) ([]Record, error) {
	if err := CheckRecordKind(kind); err != nil {
		return nil, err
	}
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.dir, fileRecordsDir, kind)
	names, err := readDirNames(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return []Record{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: file store: listing records: %w", err)
	}
	names = slices.DeleteFunc(names, func(n string) bool { return !isDocName(n) })
	if len(names) > MaxListedRecords {
		return nil, TooManyRecordsError(kind, MaxListedRecords)
	}
	out := make([]Record, 0, len(names))
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r, err := s.readRecord(kind, filepath.Join(dir, n), "")
		if errors.Is(err, fs.ErrNotExist) {
			continue // cannot happen (records are never removed), but is no error
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// RecordKinds implements RecordKindLister: every directory of records/
// named as a kind and holding a record file.
func (s *FileStore) RecordKinds(ctx context.Context) ([]string, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.dir, fileRecordsDir)
	names, err := readDirNames(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: file store: listing record kinds: %w", err)
	}
	kinds := []string{}
	for _, n := range names {
		if CheckRecordKind(n) != nil {
			continue
		}
		files, err := readDirNames(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("keystore: file store: listing record kinds: %w", err)
		}
		if slices.ContainsFunc(files, isDocName) {
			kinds = append(kinds, n)
		}
		if len(kinds) > MaxRecordKinds {
			return nil, TooManyRecordKindsError()
		}
	}
	slices.Sort(kinds)
	return kinds, nil
}

func (s *FileStore) recordPath(kind, name string) string {
	return filepath.Join(s.dir, fileRecordsDir, kind, docName(name))
}

// readRecord reads and validates one record's file. Readers take no lock:
// a file is replaced by rename, so they see the old revision or the new.
// want, when not empty, is the name the record must have; either way its
// name must hash to its file name. It returns fs.ErrNotExist unwrapped.
func (s *FileStore) readRecord(kind, path, want string) (Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Record{}, err
		}
		return Record{}, fmt.Errorf("keystore: file store: reading a record: %w", err)
	}
	// The file name is the SHA-256 of the name: its first 8 hex digits are
	// the ones RecordRef shows.
	base := filepath.Base(path)
	ref := "record of kind " + kind + " #" + base[:min(8, len(base))]
	var head struct {
		Schema int `json:"schema"`
	}
	if err := json.Unmarshal(b, &head); err != nil || head.Schema == 0 {
		return Record{}, fmt.Errorf("keystore: file store: %s is not a phicrypt record", ref)
	}
	if head.Schema != fileRecordSchema {
		return Record{}, fmt.Errorf("%w: file store: %s has schema %d; this phicrypt reads schema %d",
			ErrUnsupportedSchema, ref, head.Schema, fileRecordSchema)
	}
	var fr fileRecord
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fr); err != nil {
		return Record{}, fmt.Errorf("keystore: file store: %s is damaged (%s); restore it from a backup", ref, jsonErrorKind(err))
	}
	r := Record{Kind: fr.Kind, Name: fr.Name, Value: fr.Value, Revision: fr.Revision, UpdatedAt: fr.UpdatedAt}
	if err := r.Validate(); err != nil {
		return Record{}, fmt.Errorf("keystore: file store: %s is damaged: %v; restore it from a backup", ref, err)
	}
	if fr.Kind != kind || filepath.Base(path) != docName(fr.Name) || (want != "" && fr.Name != want) {
		return Record{}, fmt.Errorf("keystore: file store: %s is damaged: its kind or name does not match its path; restore it from a backup", ref)
	}
	return r.Normalized(), nil
}

// writeRecord replaces path with r atomically and durably: a temporary
// file in the store's directory (where OpenFileStore removes one a crash
// left), fsync, rename into the kind's directory, fsync of that directory
// (and of the directories above it when they were just made).
func (s *FileStore) writeRecord(kind, path string, r fileRecord) error {
	b, err := json.MarshalIndent(r, "", "\t")
	if err != nil {
		return fmt.Errorf("keystore: file store: encoding a record: %w", err)
	}
	if err := s.makeRecordDirs(kind); err != nil {
		return err
	}
	if err := s.replaceAtomically(path, b, "a record"); err != nil {
		return err
	}
	// Only the new entry must be durable: if a crash brings back the
	// temporary file's old entry, OpenFileStore removes it.
	if err := syncDirectory(filepath.Dir(path)); err != nil {
		return fmt.Errorf("keystore: file store: syncing a record's directory: %w", err)
	}
	return nil
}

// makeRecordDirs makes records/<kind> (mode 0700) if it is missing, and
// makes each new directory's entry durable in its parent.
func (s *FileStore) makeRecordDirs(kind string) error {
	parent := s.dir
	for _, d := range []string{fileRecordsDir, kind} {
		dir := filepath.Join(parent, d)
		err := os.Mkdir(dir, 0o700)
		if err == nil {
			err = syncDirectory(parent)
		} else if errors.Is(err, fs.ErrExist) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("keystore: file store: making the records directory: %w", err)
		}
		parent = dir
	}
	return nil
}

// readDirNames lists the names in dir.
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}
