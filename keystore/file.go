//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly || windows

package keystore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// FileStore is a Store in one directory on a local file system: one JSON
// document per branch key, each replaced atomically (a temporary file,
// fsync, rename, fsync of the directory), so a crash leaves the old or the
// new document, never a torn one. Several processes on one host may share
// the directory: every read-modify-write holds an exclusive lock on the
// directory's lock file (flock on Unix, LockFileEx on Windows), so two
// rotations cannot both win. Network file systems, whose locks may be
// no-ops, are not supported. On Windows, which cannot fsync a directory,
// a rename is as durable as NTFS's metadata journal makes it.
//
// The directory holds:
//
//	.lock                 the lock file (empty)
//	<sha256(id) hex>.json a branch key's document (fileDocument)
//	.tmp-*                a document being written (removed if left by a crash)
type FileStore struct {
	dir  string
	lock *os.File
	// sem serializes this process's writers before the flock (which would
	// not exclude two goroutines sharing one open file description).
	sem chan struct{}

	closeOnce sync.Once
	closed    chan struct{}
}

// fileSchema is the version of fileDocument this phicrypt writes. Schema 2
// added each version's usage counter; schema 3, written only for a document
// holding a destroyed version, adds that state (so an older phicrypt
// refuses it as too new instead of calling it damaged, which could lead an
// operator to restore the destroyed material from a backup). A reader takes
// schemas 1 (usage 0) to 3 and refuses any other, and every write upgrades
// a document to 2, or 3.
const (
	fileSchema          = 2
	fileSchemaTombstone = 3
)

// fileDocument is a branch key as the file store writes it.
type fileDocument struct {
	// Schema comes first so a reader can refuse a version it does not know
	// before trusting anything else.
	Schema      int           `json:"schema"`
	BranchKeyID string        `json:"branch_key_id"`
	Versions    []fileVersion `json:"versions"` // oldest first
}

type fileVersion struct {
	Version    string    `json:"version"`
	KMSKeyARN  string    `json:"kms_key_arn"`
	Ciphertext []byte    `json:"ciphertext"` // base64; null for a destroyed version
	CreatedAt  time.Time `json:"created_at"`
	State      State     `json:"state"`
	Usage      uint64    `json:"usage,omitempty"` // absent: 0 (and in schema 1)
}

const (
	fileLockName  = ".lock"
	fileTmpPrefix = ".tmp-"
	fileDocSuffix = ".json"
)

// OpenFileStore opens the file store in dir, creating dir (mode 0700) if it
// does not exist.
func OpenFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keystore: file store: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, fileLockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("keystore: file store: %w", err)
	}
	s := &FileStore{dir: dir, lock: lock, sem: make(chan struct{}, 1), closed: make(chan struct{})}
	if err := s.removeStaleTemps(); err != nil {
		lock.Close()
		return nil, err
	}
	return s, nil
}

// removeStaleTemps deletes temporary files a crashed writer left. Writers
// hold the lock while their temporary file exists, so under the lock every
// one found is stale.
func (s *FileStore) removeStaleTemps() error {
	return s.locked(context.Background(), func() error {
		names, err := s.names()
		if err != nil {
			return err
		}
		for _, n := range names {
			if strings.HasPrefix(n, fileTmpPrefix) {
				if err := os.Remove(filepath.Join(s.dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("keystore: file store: removing a stale temporary file: %w", err)
				}
			}
		}
		return nil
	})
}

// Create implements Store.
func (s *FileStore) Create(ctx context.Context, v BranchKeyVersion) error {
	if err := v.Validate(StateActive); err != nil {
		return err
	}
	return s.update(ctx, v.BranchKeyID, func(d *fileDocument) error {
		if d != nil {
			return fmt.Errorf("%w: %s", ErrExists, Fingerprint(v.BranchKeyID))
		}
		return nil
	}, func() *fileDocument {
		return &fileDocument{Schema: fileSchema, BranchKeyID: v.BranchKeyID, Versions: []fileVersion{toFileVersion(v)}}
	})
}

// Rotate implements Store.
func (s *FileStore) Rotate(ctx context.Context, id, expectedActive string, next BranchKeyVersion) error {
	if err := CheckRotate(id, expectedActive, next); err != nil {
		return err
	}
	return s.modify(ctx, id, func(d *fileDocument) error {
		active := d.active()
		if active < 0 {
			return KeyDestroyedError(id)
		}
		if d.Versions[active].Version != expectedActive {
			return fmt.Errorf("%w: %s: the active version is no longer %s", ErrConflict, Fingerprint(id), expectedActive)
		}
		if d.find(next.Version) >= 0 {
			return fmt.Errorf("%w: %s already has version %s", ErrExists, Fingerprint(id), next.Version)
		}
		d.Versions[active].State = StateDecryptOnly
		d.Versions = append(d.Versions, toFileVersion(next))
		return nil
	})
}

// Active implements Store.
func (s *FileStore) Active(ctx context.Context, id string) (BranchKeyVersion, error) {
	d, err := s.readExisting(ctx, id)
	if err != nil {
		return BranchKeyVersion{}, err
	}
	if d.active() < 0 {
		return BranchKeyVersion{}, KeyDestroyedError(id)
	}
	return d.record(d.active()), nil
}

// Get implements Store.
func (s *FileStore) Get(ctx context.Context, id, version string) (BranchKeyVersion, error) {
	if err := CheckKeyVersion(id, version); err != nil {
		return BranchKeyVersion{}, err
	}
	d, err := s.readExisting(ctx, id)
	if err != nil {
		return BranchKeyVersion{}, err
	}
	i := d.find(version)
	if i < 0 {
		return BranchKeyVersion{}, VersionNotFoundError(id, version)
	}
	return d.record(i), nil
}

// List implements Store.
func (s *FileStore) List(ctx context.Context, id string) ([]BranchKeyVersion, error) {
	d, err := s.readExisting(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]BranchKeyVersion, len(d.Versions))
	for i := range d.Versions {
		out[i] = d.record(i)
	}
	return out, nil
}

// IDs implements Store. It reads every document, so it costs one file read
// per branch key.
func (s *FileStore) IDs(ctx context.Context) ([]string, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	names, err := s.names()
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, n := range names {
		if !isDocName(n) {
			continue
		}
		d, err := s.readFile(filepath.Join(s.dir, n), "")
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		ids = append(ids, d.BranchKeyID)
	}
	slices.Sort(ids)
	return ids, nil
}

// SetState implements Store.
func (s *FileStore) SetState(ctx context.Context, id, version string, from, to State) error {
	if err := CheckKeyVersion(id, version); err != nil {
		return err
	}
	if err := CheckTransition(from, to); err != nil {
		return err
	}
	return s.modify(ctx, id, func(d *fileDocument) error {
		i := d.find(version)
		if i < 0 {
			return VersionNotFoundError(id, version)
		}
		if d.Versions[i].State != from {
			return fmt.Errorf("%w: %s version %s is %v, not %v", ErrConflict, Fingerprint(id), version, d.Versions[i].State, from)
		}
		d.Versions[i].State = to
		return nil
	})
}

// Rewrap implements Store.
func (s *FileStore) Rewrap(ctx context.Context, id, version string, oldCiphertext []byte, newARN string, newCiphertext []byte) error {
	if err := CheckRewrap(id, version, oldCiphertext, newARN, newCiphertext); err != nil {
		return err
	}
	return s.modify(ctx, id, func(d *fileDocument) error {
		i := d.find(version)
		if i < 0 {
			return VersionNotFoundError(id, version)
		}
		if d.Versions[i].State == StateDestroyed {
			return DestroyedError(id, version)
		}
		if !bytes.Equal(d.Versions[i].Ciphertext, oldCiphertext) {
			return fmt.Errorf("%w: %s version %s no longer holds the expected wrapped key", ErrConflict, Fingerprint(id), version)
		}
		d.Versions[i].KMSKeyARN = newARN
		d.Versions[i].Ciphertext = bytes.Clone(newCiphertext)
		return nil
	})
}

// AddUsage implements Store, as a read-modify-write of the document under
// the lock (so each call is one durable rewrite: count in blocks).
func (s *FileStore) AddUsage(ctx context.Context, id, version string, n uint64) (uint64, error) {
	if err := CheckAddUsage(id, version, n); err != nil {
		return 0, err
	}
	var total uint64
	err := s.modify(ctx, id, func(d *fileDocument) error {
		i := d.find(version)
		if i < 0 {
			return VersionNotFoundError(id, version)
		}
		switch d.Versions[i].State {
		case StateRetired:
			return RetiredUsageError(id, version)
		case StateDestroyed:
			return DestroyedError(id, version)
		}
		total = AddUsage(d.Versions[i].Usage, n)
		d.Versions[i].Usage = total
		return nil
	})
	if err != nil {
		return 0, err
	}
	return total, nil
}

// Close implements Store. It waits for a write in progress.
func (s *FileStore) Close() error {
	err := errors.New("keystore: file store already closed")
	s.closeOnce.Do(func() {
		s.sem <- struct{}{}
		close(s.closed)
		err = s.lock.Close()
	})
	return err
}

func toFileVersion(v BranchKeyVersion) fileVersion {
	v = v.Normalized()
	return fileVersion{Version: v.Version, KMSKeyARN: v.KMSKeyARN, Ciphertext: v.Ciphertext, CreatedAt: v.CreatedAt, State: v.State, Usage: v.Usage}
}

func (d *fileDocument) record(i int) BranchKeyVersion {
	fv := d.Versions[i]
	return BranchKeyVersion{BranchKeyID: d.BranchKeyID, Version: fv.Version, KMSKeyARN: fv.KMSKeyARN,
		Ciphertext: bytes.Clone(fv.Ciphertext), CreatedAt: fv.CreatedAt, State: fv.State, Usage: fv.Usage}
}

func (d *fileDocument) find(version string) int {
	return slices.IndexFunc(d.Versions, func(v fileVersion) bool { return v.Version == version })
}

// active returns the index of the active version, or -1 when the key is
// destroyed; validate guarantees one otherwise.
func (d *fileDocument) active() int {
	return slices.IndexFunc(d.Versions, func(v fileVersion) bool { return v.State == StateActive })
}

// validate checks a document read from disk against the invariants every
// write keeps, so a hand-edited or damaged file is refused, not used.
func (d *fileDocument) validate(path string) error {
	bad := func(what string) error {
		return fmt.Errorf("keystore: file store document of %s is damaged: %s; restore it from a backup", docRef(path), what)
	}
	if CheckID(d.BranchKeyID) != nil || filepath.Base(path) != docName(d.BranchKeyID) {
		return bad("its branch key id does not match its file name")
	}
	if len(d.Versions) == 0 {
		return bad("it has no versions")
	}
	active, destroyed := 0, 0
	seen := make(map[string]bool, len(d.Versions))
	for _, fv := range d.Versions {
		v := BranchKeyVersion{BranchKeyID: d.BranchKeyID, Version: fv.Version, KMSKeyARN: fv.KMSKeyARN,
			Ciphertext: fv.Ciphertext, CreatedAt: fv.CreatedAt, State: fv.State, Usage: fv.Usage}
		if err := v.Validate(0); err != nil {
			return bad(err.Error())
		}
		if seen[fv.Version] {
			return bad("a version appears twice")
		}
		seen[fv.Version] = true
		switch fv.State {
		case StateActive:
			active++
		case StateDestroyed:
			destroyed++
		}
	}
	if destroyed > 0 && d.Schema < fileSchemaTombstone {
		return bad(fmt.Sprintf("schema %d has no destroyed versions", d.Schema))
	}
	// A destroyed key (DestroyKey) has no active version: all are destroyed.
	if active != 1 && (active != 0 || destroyed != len(d.Versions)) {
		return bad(fmt.Sprintf("it has %d active versions, not 1", active))
	}
	return nil
}

// docName is the file name of branch key id's document. Hashing keeps any
// id (slashes, dots, 256 bytes) a short, safe file name.
// docRef names a document in errors as keyRef names its branch key (the
// file name is the full SHA-256 of the id, which a log should not carry:
// ids may be patient numbers, and an unsalted hash of one is guessable).
func docRef(path string) string {
	base := filepath.Base(path)
	if len(base) < 8 {
		return "an unnamed document"
	}
	return "branch key #" + base[:8]
}

func docName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:]) + fileDocSuffix
}

func isDocName(n string) bool {
	h, ok := strings.CutSuffix(n, fileDocSuffix)
	if !ok || len(h) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && strings.ToLower(h) == h
}

func (s *FileStore) names() ([]string, error) {
	f, err := os.Open(s.dir)
	if err != nil {
		return nil, fmt.Errorf("keystore: file store: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("keystore: file store: %w", err)
	}
	return names, nil
}

// readExisting reads branch key id's document; ErrNotFound if it has none.
func (s *FileStore) readExisting(ctx context.Context, id string) (*fileDocument, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	d, err := s.readFile(filepath.Join(s.dir, docName(id)), id)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, NotFoundError(id)
	}
	return d, err
}

// readFile reads and validates one document. Readers take no lock: a
// document is replaced by rename, so they see the old one or the new one.
// want, when not empty, is the branch key id the document must hold.
func (s *FileStore) readFile(path, want string) (*fileDocument, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("keystore: file store: %w", err)
	}
	var head struct {
		Schema int `json:"schema"`
	}
	if err := json.Unmarshal(b, &head); err != nil || head.Schema == 0 {
		return nil, fmt.Errorf("keystore: file store document of %s is not a phicrypt branch key document", docRef(path))
	}
	if head.Schema < 1 || head.Schema > fileSchemaTombstone {
		return nil, fmt.Errorf("%w: file store document of %s has schema %d; this phicrypt reads schemas 1 to %d",
			ErrUnsupportedSchema, docRef(path), head.Schema, fileSchemaTombstone)
	}
	var d fileDocument
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("keystore: file store document of %s is damaged (%s); restore it from a backup",
			docRef(path), jsonErrorKind(err))
	}
	if err := d.validate(path); err != nil {
		return nil, err
	}
	if d.Schema == 1 && slices.ContainsFunc(d.Versions, func(v fileVersion) bool { return v.Usage != 0 }) {
		return nil, fmt.Errorf("keystore: file store document of %s is damaged: schema 1 has no usage counters; restore it from a backup", docRef(path))
	}
	if want != "" && d.BranchKeyID != want {
		return nil, fmt.Errorf("keystore: file store document of %s belongs to another branch key", docRef(path))
	}
	return &d, nil
}

// jsonErrorKind describes a decoding error without echoing the document,
// which holds wrapped keys.
func jsonErrorKind(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return "field " + typ.Field + " has the wrong type"
	default:
		return "unexpected content"
	}
}

// modify runs change on branch key id's existing document under the lock
// and writes the result; ErrNotFound if there is none.
func (s *FileStore) modify(ctx context.Context, id string, change func(*fileDocument) error) error {
	var d *fileDocument
	return s.update(ctx, id, func(cur *fileDocument) error {
		if cur == nil {
			return NotFoundError(id)
		}
		d = cur
		return change(d)
	}, func() *fileDocument { return d })
}

// update reads branch key id's document (nil if none) under the lock,
// lets decide refuse the write, and writes what build returns.
func (s *FileStore) update(ctx context.Context, id string, decide func(*fileDocument) error, build func() *fileDocument) error {
	return s.locked(ctx, func() error {
		path := filepath.Join(s.dir, docName(id))
		cur, err := s.readFile(path, id)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := decide(cur); err != nil {
			if errors.Is(err, errUnchanged) {
				return nil
			}
			return err
		}
		return s.write(path, build())
	})
}

// errUnchanged, from a decide or change function, ends an update with
// success and no write: the document already is as asked (a retried
// Destroy).
var errUnchanged = errors.New("keystore: file store: nothing to change")

// write replaces path with d, in the current schema, atomically and
// durably.
func (s *FileStore) write(path string, d *fileDocument) error {
	d.Schema = fileSchema
	if slices.ContainsFunc(d.Versions, func(v fileVersion) bool { return v.State == StateDestroyed }) {
		d.Schema = fileSchemaTombstone
	}
	b, err := json.MarshalIndent(d, "", "\t")
	if err != nil {
		return fmt.Errorf("keystore: file store: encoding a document: %w", err)
	}
	if err := s.replaceAtomically(path, b, "a document"); err != nil {
		return err
	}
	return s.syncDir()
}

// replaceAtomically writes b and a newline to a temporary file in the
// store's directory (where OpenFileStore removes one a crash left), fsyncs
// it and renames it over path. Making the rename durable (an fsync of
// path's directory) is the caller's. what names the file in errors.
func (s *FileStore) replaceAtomically(path string, b []byte, what string) error {
	tmp, err := os.CreateTemp(s.dir, fileTmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("keystore: file store: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("keystore: file store: writing %s: %w", what, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("keystore: file store: syncing %s: %w", what, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keystore: file store: writing %s: %w", what, err)
	}
	if err := replaceFile(tmp.Name(), path); err != nil {
		return fmt.Errorf("keystore: file store: replacing %s: %w", what, err)
	}
	committed = true
	return nil
}

// syncDir makes the rename itself durable.
func (s *FileStore) syncDir() error {
	if err := syncDirectory(s.dir); err != nil {
		return fmt.Errorf("keystore: file store: syncing the directory: %w", err)
	}
	return nil
}

// locked runs fn holding this process's semaphore and the directory's
// exclusive flock.
func (s *FileStore) locked(ctx context.Context, fn func() error) error {
	select {
	case s.sem <- struct{}{}:
	case <-s.closed:
		return errFileStoreClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.sem }()
	if err := s.usable(ctx); err != nil {
		return err
	}
	if err := s.flock(ctx); err != nil {
		return err
	}
	defer unlockFile(s.lock)
	return fn()
}

var errFileStoreClosed = errors.New("keystore: file store is closed")

func (s *FileStore) usable(ctx context.Context) error {
	select {
	case <-s.closed:
		return errFileStoreClosed
	default:
		return ctx.Err()
	}
}

// flock takes the exclusive lock, polling so that ctx can end the wait.
func (s *FileStore) flock(ctx context.Context) error {
	wait := 100 * time.Microsecond
	for {
		locked, err := tryLockFile(s.lock)
		if err != nil {
			return fmt.Errorf("keystore: file store: locking: %w", err)
		}
		if locked {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 10*time.Millisecond)
	}
}
