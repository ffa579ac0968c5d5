package keystore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/phicrypt/phicrypt/internal/steperr"
)

// Store keeps the versions of branch keys, each wrapped by KMS. It never sees
// plaintext key material: a version's Ciphertext is what KMS returned.
//
// For most uses, open the file store (OpenFileStore): one directory, safe for
// several processes on one host. Fleets of service instances share a
// PostgreSQL store (keystore/postgres); single nodes that prefer a database
// file use SQLite (keystore/sqlite). All three pass the same conformance
// suite and are safe for concurrent use by many goroutines and processes.
//
// Every branch key has exactly one Active version at any time. Writes are
// conditional (compare-and-swap) so that two processes rotating at once can
// never both win: the loser gets ErrConflict and should re-read.
//
// Errors wrap ErrExists, ErrNotFound, ErrConflict, ErrInvalid, ErrDestroyed
// or ErrUnsupportedSchema (test with errors.Is). They never contain ciphertext
// and never the branch key id itself, which may be derived from PHI (a
// patient number): they name a branch key by its fingerprint, the first
// four bytes of SHA-256(id) in hex.
type Store interface {
	// Create stores the first version of a new branch key. v.State must be
	// StateActive. ErrExists if a branch key with v.BranchKeyID exists.
	Create(ctx context.Context, v BranchKeyVersion) error
	// Rotate makes next the active version of branch key id, on condition
	// that the active version is expectedActive; the old active version
	// becomes DecryptOnly in the same atomic step. next.BranchKeyID must be
	// id and next.State StateActive. ErrNotFound if id does not exist,
	// ErrConflict if the active version is not expectedActive (another
	// rotation won: re-read with Active), ErrExists if next.Version exists.
	Rotate(ctx context.Context, id, expectedActive string, next BranchKeyVersion) error
	// Active returns the active version of branch key id. ErrNotFound.
	Active(ctx context.Context, id string) (BranchKeyVersion, error)
	// Get returns one version of branch key id, whatever its state.
	// ErrNotFound if the branch key or the version does not exist.
	Get(ctx context.Context, id, version string) (BranchKeyVersion, error)
	// List returns every version of branch key id in the order they were
	// added, oldest first. ErrNotFound if id does not exist.
	List(ctx context.Context, id string) ([]BranchKeyVersion, error)
	// IDs returns the id of every branch key, sorted bytewise.
	IDs(ctx context.Context) ([]string, error)
	// SetState moves a version from state from to state to, on condition
	// that it is in state from. Only DecryptOnly and Retired may be named:
	// the active version changes only through Rotate, so naming StateActive
	// (or from == to) is ErrInvalid. ErrNotFound if the version does not
	// exist, ErrConflict if it is not in state from (an active version is
	// never in DecryptOnly or Retired, so it cannot be retired this way;
	// nor can a destroyed one be brought back).
	SetState(ctx context.Context, id, version string, from, to State) error
	// Rewrap replaces a version's wrapped key and KMS key ARN (after KMS
	// ReEncrypt), on condition that its stored ciphertext is still
	// oldCiphertext; the state is unchanged. ErrNotFound if the version does
	// not exist, ErrConflict if its ciphertext differs (another rewrap won).
	Rewrap(ctx context.Context, id, version string, oldCiphertext []byte, newARN string, newCiphertext []byte) error
	// AddUsage atomically adds n encryptions (1 to MaxUsageIncrement) to
	// the usage counter of a version and returns the new total, saturating
	// at MaxUsage. Active and DecryptOnly versions are counted (a process
	// may still hold a cached active version briefly after a rotation); a
	// retired one is ErrConflict, since nothing may encrypt under it. It is
	// atomic across processes sharing the store. ErrNotFound if the version
	// does not exist, ErrInvalid for n out of range.
	AddUsage(ctx context.Context, id, version string, n uint64) (total uint64, err error)
	// Destroy erases the wrapped material of one version of branch key id
	// (crypto-shredding) and marks it StateDestroyed; the record stays as a
	// tombstone that Get and List return without Ciphertext. The active
	// version cannot be destroyed alone (ErrConflict: rotate first, or
	// destroy the whole key with DestroyKey). Destroying a destroyed
	// version succeeds again, so a retry is safe. ErrNotFound if the
	// version does not exist. What "erased" means differs by back end:
	// each one's documentation says what it overwrites and what (old row
	// versions, freed file blocks, backups) it cannot reach.
	Destroy(ctx context.Context, id, version string) error
	// DestroyKey destroys every version of branch key id, the active one
	// included, as Destroy does each. Afterwards Active is ErrDestroyed;
	// Rotate, AddUsage and Rewrap are ErrDestroyed, SetState ErrConflict;
	// Get and List return the tombstones; Create with the same id is
	// ErrExists (an id is never reused, so nothing new is ever readable
	// under a destroyed key's id). A back end that cannot do it in one
	// atomic step says so and what a crash midway leaves; calling
	// DestroyKey again finishes it, and on a destroyed key returns nil.
	// ErrNotFound if id does not exist.
	DestroyKey(ctx context.Context, id string) error
	// Close releases the store's resources. The Store is unusable after.
	Close() error
}

// BranchKeyVersion is one version of a branch key, as a Store keeps it.
type BranchKeyVersion struct {
	// BranchKeyID names the branch key (for example, one per tenant): at
	// most MaxBranchKeyIDLen bytes of UTF-8, not empty, without NUL (which
	// PostgreSQL cannot store in text).
	BranchKeyID string
	// Version is a UUID in its canonical lowercase form (NewBranchKeyVersion).
	Version string
	// KMSKeyARN is the KMS key that wrapped Ciphertext.
	KMSKeyARN string
	// Ciphertext is the branch key material as KMS wrapped it: at most
	// MaxWrappedBranchKeyLen bytes, not empty; empty exactly when State is
	// StateDestroyed (a tombstone).
	Ciphertext []byte
	// CreatedAt is when the version was made. Stores keep it in UTC to the
	// microsecond (what PostgreSQL keeps), between years 1 and 9999.
	CreatedAt time.Time
	State     State
	// Usage counts the encryptions reserved under this version so far
	// (Store.AddUsage), at most MaxUsage. Create and Rotate store what the
	// caller gives, normally 0. Reserved uses a process did not spend are
	// counted all the same, so Usage is an upper bound on real use.
	Usage uint64
}

// Caps on what a Store accepts.
const (
	MaxBranchKeyIDLen      = 256  // bytes of UTF-8
	MaxWrappedBranchKeyLen = 6144 // bytes of KMS ciphertext
	MaxKMSKeyARNLen        = 2048 // bytes; KMS's own limit on a key identifier
	// MaxUsage is where a version's usage counter saturates: the largest
	// PostgreSQL BIGINT.
	MaxUsage = math.MaxInt64
	// MaxUsageIncrement is the most one AddUsage call may add.
	MaxUsageIncrement = 1 << 32
)

// State is where a branch key version is in its life. The zero value is not
// a state.
type State uint8

const (
	// StateActive: the version new data is encrypted under; exactly one per
	// branch key.
	StateActive State = iota + 1
	// StateDecryptOnly: a former active version, still used to decrypt.
	StateDecryptOnly
	// StateRetired: no longer used, even to decrypt.
	StateRetired
	// StateDestroyed: the version's wrapped material has been erased
	// (Store.Destroy, Store.DestroyKey: crypto-shredding). The record stays
	// as a tombstone without Ciphertext, so that what was under it fails
	// as destroyed, not as unknown. It is final: no state leads out of it.
	StateDestroyed
)

var stateNames = [...]string{StateActive: "active", StateDecryptOnly: "decrypt_only", StateRetired: "retired", StateDestroyed: "destroyed"}

// String returns the state's stored name: active, decrypt_only, retired or
// destroyed.
func (s State) String() string {
	if !s.valid() {
		return fmt.Sprintf("State(%d)", uint8(s))
	}
	return stateNames[s]
}

func (s State) valid() bool { return s >= StateActive && s <= StateDestroyed }

// MarshalText implements encoding.TextMarshaler.
func (s State) MarshalText() ([]byte, error) {
	if !s.valid() {
		return nil, fmt.Errorf("%w: no such branch key state %d", ErrInvalid, uint8(s))
	}
	return []byte(stateNames[s]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *State) UnmarshalText(b []byte) error {
	st, ok := parseState(string(b))
	if !ok {
		return fmt.Errorf("%w: no such branch key state (want active, decrypt_only, retired or destroyed)", ErrInvalid)
	}
	*s = st
	return nil
}

func parseState(name string) (State, bool) {
	for s := StateActive; s <= StateDestroyed; s++ {
		if stateNames[s] == name {
			return s, true
		}
	}
	return 0, false
}

var (
	// ErrExists: the branch key (Create) or the version (Rotate) exists.
	ErrExists = errors.New("keystore: the branch key or version already exists")
	// ErrNotFound: no such branch key or version.
	ErrNotFound = errors.New("keystore: no such branch key or version")
	// ErrConflict: a conditional write found the store changed (another
	// rotation, state change or rewrap won); re-read and decide again.
	ErrConflict = errors.New("keystore: the branch key changed since it was read (a concurrent write won); re-read it")
	// ErrInvalid: a request the store refuses whatever it holds: a field
	// out of range, a cap exceeded, a transition Store does not allow.
	ErrInvalid = errors.New("keystore: invalid branch key store request")
	// ErrDestroyed: the branch key, or the version asked for, has been
	// destroyed (crypto-shredded); its material is gone for good.
	ErrDestroyed = errors.New("keystore: the branch key or version has been destroyed (crypto-shredded)")
	// ErrUnsupportedSchema: the store was written by a newer phicrypt (or is
	// not a phicrypt store); upgrade phicrypt rather than overwrite it.
	ErrUnsupportedSchema = errors.New("keystore: the store's schema version is unknown to this phicrypt; upgrade phicrypt")
)

// NewBranchKeyVersion returns a new random (version 4) UUID for
// BranchKeyVersion.Version.
func NewBranchKeyVersion() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return VersionString(u)
}

// Fingerprint names a branch key in errors and logs without its id (which
// may be derived from PHI, a patient number): "branch key #" and the first
// four bytes of SHA-256(id) in hex. It is not a secret: anyone who can list
// the candidate ids (a small space such as patient numbers) can find which
// one a fingerprint names by hashing them all. Keep logs that carry it as
// access-controlled as the ids themselves.
func Fingerprint(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "branch key #" + hex.EncodeToString(sum[:4])
}

// CheckID reports whether id is a valid branch key id (ErrInvalid if not):
// 1 to MaxBranchKeyIDLen bytes of UTF-8, without NUL.
func CheckID(id string) error {
	if id == "" || len(id) > MaxBranchKeyIDLen || !utf8.ValidString(id) || strings.ContainsRune(id, 0) {
		return fmt.Errorf("%w: a branch key id is 1 to %d bytes of UTF-8, without NUL", ErrInvalid, MaxBranchKeyIDLen)
	}
	return nil
}

// CheckVersion reports whether v is a valid branch key version (ErrInvalid
// if not): only the canonical lowercase UUID form, so one version has one
// spelling.
func CheckVersion(v string) error {
	bad := len(v) != 36
	for i := 0; !bad && i < len(v); i++ {
		c := v[i]
		switch i {
		case 8, 13, 18, 23:
			bad = c != '-'
		default:
			bad = !('0' <= c && c <= '9' || 'a' <= c && c <= 'f')
		}
	}
	if bad {
		return fmt.Errorf("%w: a branch key version is a lowercase UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", ErrInvalid)
	}
	return nil
}

// CheckWrapped validates a wrapped branch key and the ARN of the KMS key
// that wrapped it.
func CheckWrapped(arn string, ciphertext []byte) error {
	if arn == "" || len(arn) > MaxKMSKeyARNLen || !utf8.ValidString(arn) || strings.ContainsRune(arn, 0) {
		return fmt.Errorf("%w: a KMS key ARN is 1 to %d bytes of UTF-8, without NUL", ErrInvalid, MaxKMSKeyARNLen)
	}
	if len(ciphertext) == 0 || len(ciphertext) > MaxWrappedBranchKeyLen {
		return fmt.Errorf("%w: a wrapped branch key is 1 to %d bytes, not %d", ErrInvalid, MaxWrappedBranchKeyLen, len(ciphertext))
	}
	return nil
}

// Validate checks v as a record to store, with v.State required to be want
// (0: any valid state): for Store implementations, which refuse an invalid
// record with ErrInvalid.
func (v BranchKeyVersion) Validate(want State) error {
	if err := CheckID(v.BranchKeyID); err != nil {
		return err
	}
	if err := CheckVersion(v.Version); err != nil {
		return err
	}
	if err := checkMaterial(v); err != nil {
		return err
	}
	if y := v.CreatedAt.UTC().Year(); v.CreatedAt.IsZero() || y < 1 || y > 9999 {
		return fmt.Errorf("%w: a branch key version's creation time is between years 1 and 9999", ErrInvalid)
	}
	if !v.State.valid() {
		return fmt.Errorf("%w: %v is not a branch key state", ErrInvalid, v.State)
	}
	if want != 0 && v.State != want {
		return fmt.Errorf("%w: the version's state is %v, want %v", ErrInvalid, v.State, want)
	}
	if v.Usage > MaxUsage {
		return fmt.Errorf("%w: a branch key version's usage is at most %d", ErrInvalid, uint64(MaxUsage))
	}
	return nil
}

// Normalized is v as every Store returns it: its own copy of the
// ciphertext and CreatedAt in UTC, to the microsecond.
func (v BranchKeyVersion) Normalized() BranchKeyVersion {
	v.Ciphertext = bytes.Clone(v.Ciphertext)
	v.CreatedAt = v.CreatedAt.UTC().Truncate(time.Microsecond)
	return v
}

// CheckTransition reports whether SetState may move a version from from to
// to (ErrInvalid if not): only between DecryptOnly and Retired, so never
// into or out of StateDestroyed.
func CheckTransition(from, to State) error {
	ok := func(s State) bool { return s == StateDecryptOnly || s == StateRetired }
	if !ok(from) || !ok(to) || from == to {
		return fmt.Errorf("%w: SetState moves a version between decrypt_only and retired, not %v to %v; the active version changes only through Rotate, and a version is destroyed only through Destroy",
			ErrInvalid, from, to)
	}
	return nil
}

// CheckRotate validates the arguments of Store.Rotate.
func CheckRotate(id, expectedActive string, next BranchKeyVersion) error {
	if err := CheckID(id); err != nil {
		return err
	}
	if err := CheckVersion(expectedActive); err != nil {
		return err
	}
	if next.BranchKeyID != id {
		return fmt.Errorf("%w: the next version belongs to another branch key", ErrInvalid)
	}
	return next.Validate(StateActive)
}

// CheckRewrap validates the arguments of Store.Rewrap.
func CheckRewrap(id, version string, oldCiphertext []byte, newARN string, newCiphertext []byte) error {
	if err := CheckID(id); err != nil {
		return err
	}
	if err := CheckVersion(version); err != nil {
		return err
	}
	if len(oldCiphertext) == 0 || len(oldCiphertext) > MaxWrappedBranchKeyLen {
		return fmt.Errorf("%w: the expected old wrapped key is 1 to %d bytes", ErrInvalid, MaxWrappedBranchKeyLen)
	}
	return CheckWrapped(newARN, newCiphertext)
}

// CheckAddUsage validates the arguments of Store.AddUsage.
func CheckAddUsage(id, version string, n uint64) error {
	if err := CheckKeyVersion(id, version); err != nil {
		return err
	}
	if n < 1 || n > MaxUsageIncrement {
		return fmt.Errorf("%w: AddUsage adds 1 to %d uses, not %d", ErrInvalid, uint64(MaxUsageIncrement), n)
	}
	return nil
}

// AddUsage is total + n, saturating at MaxUsage, as Store.AddUsage counts.
func AddUsage(total, n uint64) uint64 {
	if total >= MaxUsage-n {
		return MaxUsage
	}
	return total + n
}

// RetiredUsageError is the error AddUsage returns for a retired version.
func RetiredUsageError(id, version string) error {
	return fmt.Errorf("%w: %s version %s is retired; nothing may be encrypted under it", ErrConflict, Fingerprint(id), version)
}

// CheckKeyVersion validates a branch key id and version (the arguments of
// Store.Get and SetState).
func CheckKeyVersion(id, version string) error {
	if err := CheckID(id); err != nil {
		return err
	}
	return CheckVersion(version)
}

// NotFoundError is ErrNotFound for branch key id.
func NotFoundError(id string) error { return fmt.Errorf("%w: %s", ErrNotFound, Fingerprint(id)) }

// VersionNotFoundError is ErrNotFound for one version of branch key id.
func VersionNotFoundError(id, version string) error {
	return fmt.Errorf("%w: %s has no version %s", ErrNotFound, Fingerprint(id), version)
}

// VersionBytes parses a version (a canonical lowercase UUID) into its 16
// bytes, as the hierarchical keyring's encrypted data keys carry it.
func VersionBytes(v string) (u [16]byte, ok bool) {
	if CheckVersion(v) != nil {
		return u, false
	}
	h := v[0:8] + v[9:13] + v[14:18] + v[19:23] + v[24:36]
	_, err := hex.Decode(u[:], []byte(h))
	return u, err == nil
}

// VersionString formats 16 bytes as a version: a canonical lowercase UUID.
func VersionString(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// wrapStep names a step of this package over err, saying "keystore:" once.
func wrapStep(err error, format string, args ...any) error {
	return steperr.Wrap("keystore: ", err, format, args...)
}
