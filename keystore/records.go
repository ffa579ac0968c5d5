package keystore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Record is a small value a Store keeps beside its branch keys for the
// custodian's tools: a signed policy, the id of an applied change request.
// A record is named by its Kind and Name and changes only by
// compare-and-swap on its Revision (Records.PutRecord). Records are never
// deleted.
//
// Its Name may be a branch key id (possibly PHI), so a Record prints, in
// every fmt verb, encoding/json and log/slog, its kind, a fingerprint of
// its name (RecordRef) and the length of its value; the fields stay
// exported for code to read.
type Record struct {
	// Kind groups records (ListRecords lists one kind): 1 to 64 bytes of
	// lowercase ASCII letters, digits and hyphens, such as "policy".
	Kind string
	// Name names the record within its kind: 1 to MaxRecordNameLen bytes
	// of UTF-8, without NUL.
	Name string
	// Value is opaque to the store: 1 to MaxRecordValueLen bytes.
	Value []byte
	// Revision is 1 after the record's first PutRecord and grows by one
	// with each successful PutRecord.
	Revision uint64
	// UpdatedAt is when the store wrote this revision, in UTC to the
	// microsecond.
	UpdatedAt time.Time
}

// Caps on records.
const (
	// MaxRecordKindLen is the most bytes of a Record's Kind.
	MaxRecordKindLen = 64
	// MaxRecordNameLen is the most bytes of a Record's Name.
	MaxRecordNameLen = 512
	// MaxRecordValueLen is the most bytes of a Record's Value.
	MaxRecordValueLen = 64 << 10
	// MaxListedRecords is the most records of one kind ListRecords returns;
	// a kind with more is ErrInvalid, so one call holds at most about
	// 640 MiB of values.
	MaxListedRecords = 10000
)

// VersionRecordKindPrefix begins the kinds of records kept one per branch
// key version (the branch-key escrow copies of package keyring, the
// recovery marks of package custody), each named VersionRecordName(id,
// version). A store may hold as many of them as versions, more than
// ListRecords lists (MaxListedRecords), so Export reads them version by
// version, and Restore puts them back with the other records.
const VersionRecordKindPrefix = "version-"

// IsVersionRecordKind reports whether kind is a per-version kind (it
// begins with VersionRecordKindPrefix).
func IsVersionRecordKind(kind string) bool { return strings.HasPrefix(kind, VersionRecordKindPrefix) }

// VersionRecordName is the name of a per-version record of version
// version of branch key id: the version (a 36-character UUID), "/" and the
// id.
func VersionRecordName(id, version string) string { return version + "/" + id }

// Records is implemented by every Store in this module (file, SQLite,
// PostgreSQL, DynamoDB): small named values, kept in the same store as the
// branch keys, that change only by compare-and-swap. It is separate from
// Store so that a Store of your own need not have it; test for it with a
// type assertion. Like Store, it is safe for concurrent use by many
// goroutines and processes, and its errors name a record by its kind and
// RecordRef, never by its name or value.
type Records interface {
	// GetRecord returns the record kind/name. ErrNotFound if there is
	// none; ErrInvalid for a kind or name out of range.
	GetRecord(ctx context.Context, kind, name string) (Record, error)
	// PutRecord stores value if the record's revision is expected:
	// expected 0 means it must not exist yet (ErrExists otherwise); a
	// nonzero expected that differs from the stored revision is
	// ErrConflict, and ErrNotFound if absent. Returns the new revision. It
	// is atomic across processes (compare-and-swap): of several puts from
	// one revision, exactly one wins. ErrInvalid for a kind, name or value
	// out of range.
	PutRecord(ctx context.Context, kind, name string, value []byte, expected uint64) (uint64, error)
	// ListRecords returns the records of kind sorted bytewise by name
	// (none: an empty list, not an error); more than MaxListedRecords is
	// ErrInvalid.
	ListRecords(ctx context.Context, kind string) ([]Record, error)
}

// RecordKindLister is implemented, beside Records, by every Store in this
// module: Export uses it to carry every record into a backup.
type RecordKindLister interface {
	// RecordKinds returns every kind that has records, sorted; more than
	// MaxRecordKinds is ErrInvalid.
	RecordKinds(ctx context.Context) ([]string, error)
}

// MaxRecordKinds is the most kinds RecordKinds returns.
const MaxRecordKinds = 1024

// CheckRecordKind reports whether kind is a valid Record.Kind (ErrInvalid
// if not): 1 to MaxRecordKindLen bytes of [a-z0-9-].
func CheckRecordKind(kind string) error {
	ok := kind != "" && len(kind) <= MaxRecordKindLen
	for i := 0; ok && i < len(kind); i++ {
		c := kind[i]
		ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-'
	}
	if !ok {
		return fmt.Errorf("%w: a record kind is 1 to %d bytes of lowercase letters, digits and hyphens", ErrInvalid, MaxRecordKindLen)
	}
	return nil
}

// CheckRecordKey reports whether kind and name name a record (ErrInvalid
// if not): a valid kind (CheckRecordKind) and a name of 1 to
// MaxRecordNameLen bytes of UTF-8, without NUL.
func CheckRecordKey(kind, name string) error {
	if err := CheckRecordKind(kind); err != nil {
		return err
	}
	if name == "" || len(name) > MaxRecordNameLen || !utf8.ValidString(name) || strings.ContainsRune(name, 0) {
		return fmt.Errorf("%w: a record name is 1 to %d bytes of UTF-8, without NUL", ErrInvalid, MaxRecordNameLen)
	}
	return nil
}

// CheckPutRecord validates the arguments of Records.PutRecord. A revision
// stays below 2^63-1 (what PostgreSQL's BIGINT holds), so expected must too.
func CheckPutRecord(kind, name string, value []byte, expected uint64) error {
	if err := CheckRecordKey(kind, name); err != nil {
		return err
	}
	if len(value) == 0 || len(value) > MaxRecordValueLen {
		return fmt.Errorf("%w: a record value is 1 to %d bytes, not %d", ErrInvalid, MaxRecordValueLen, len(value))
	}
	if expected >= math.MaxInt64 {
		return fmt.Errorf("%w: a record revision is below %d", ErrInvalid, uint64(math.MaxInt64))
	}
	return nil
}

// Validate checks r as read from a store: a valid kind, name and value, a
// revision of at least 1 and below 2^63-1, and an UpdatedAt between years
// 1 and 9999. For Store implementations, which refuse what no write of
// theirs could have made.
func (r Record) Validate() error {
	if err := CheckPutRecord(r.Kind, r.Name, r.Value, r.Revision); err != nil {
		return err
	}
	if r.Revision == 0 {
		return fmt.Errorf("%w: a stored record's revision is at least 1", ErrInvalid)
	}
	if y := r.UpdatedAt.UTC().Year(); r.UpdatedAt.IsZero() || y < 1 || y > 9999 {
		return fmt.Errorf("%w: a record's update time is between years 1 and 9999", ErrInvalid)
	}
	return nil
}

// RecordNow is the UpdatedAt a store gives a revision it writes now: UTC,
// to the microsecond.
func RecordNow() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Normalized is r as every store returns it: its own copy of the value and
// UpdatedAt in UTC, to the microsecond.
func (r Record) Normalized() Record {
	r.Value = bytes.Clone(r.Value)
	r.UpdatedAt = r.UpdatedAt.UTC().Truncate(time.Microsecond)
	return r
}

// RecordRef names record kind/name in errors and logs without its name
// (which may be a branch key id, possibly PHI): "record of kind <kind> #"
// and the first four bytes of SHA-256(name) in hex. Like Fingerprint, it
// is not a secret: whoever can list candidate names can find which one it
// names.
func RecordRef(kind, name string) string {
	sum := sha256.Sum256([]byte(name))
	if CheckRecordKind(kind) != nil {
		kind = "(invalid)"
	}
	return "record of kind " + kind + " #" + hex.EncodeToString(sum[:4])
}

// recordError is a record's ErrExists, ErrNotFound or ErrConflict in the
// words of records rather than of branch keys.
type recordError struct {
	sentinel error
	msg      string
}

func (e *recordError) Error() string { return "keystore: " + e.msg }
func (e *recordError) Unwrap() error { return e.sentinel }

// RecordExistsError is ErrExists for PutRecord with expected 0 on a record
// that exists.
func RecordExistsError(kind, name string) error {
	return &recordError{ErrExists, RecordRef(kind, name) + " already exists; read it and put with its revision"}
}

// RecordNotFoundError is ErrNotFound for record kind/name.
func RecordNotFoundError(kind, name string) error {
	return &recordError{ErrNotFound, "no " + RecordRef(kind, name)}
}

// RecordConflictError is ErrConflict for PutRecord when the record's
// revision is no longer expected.
func RecordConflictError(kind, name string, expected uint64) error {
	return &recordError{ErrConflict, RecordRef(kind, name) + " is no longer at revision " +
		strconv.FormatUint(expected, 10) + " (a concurrent write won); re-read it"}
}

// TooManyRecordKindsError is ErrInvalid for RecordKinds of a store with
// more than MaxRecordKinds kinds.
func TooManyRecordKindsError() error {
	return fmt.Errorf("%w: the store has records of more than %d kinds", ErrInvalid, MaxRecordKinds)
}

// TooManyRecordsError is ErrInvalid for ListRecords of a kind with more
// than max records.
func TooManyRecordsError(kind string, max int) error {
	return fmt.Errorf("%w: there are more than %d records of kind %s to list", ErrInvalid, max, kind)
}

// String describes r with RecordRef instead of its name and the length of
// its value instead of the bytes.
func (r Record) String() string {
	return "Record{" + RecordRef(r.Kind, r.Name) + ", revision " + strconv.FormatUint(r.Revision, 10) +
		", updated " + r.UpdatedAt.UTC().Format(time.RFC3339Nano) + ", value " + strconv.Itoa(len(r.Value)) + " bytes}"
}

// Format implements fmt.Formatter: every verb prints String.
func (r Record) Format(f fmt.State, _ rune) { formatRedacted(f, r.String()) }

// MarshalText implements encoding.TextMarshaler with String.
func (r Record) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// recordView is the printed form of a Record in JSON and slog; stores
// keep their own document types.
type recordView struct {
	Record    string    `json:"record"`
	Revision  uint64    `json:"revision"`
	UpdatedAt time.Time `json:"updated_at"`
	ValueLen  int       `json:"value_len"`
}

func (r Record) view() recordView {
	return recordView{Record: RecordRef(r.Kind, r.Name), Revision: r.Revision, UpdatedAt: r.UpdatedAt, ValueLen: len(r.Value)}
}

// MarshalJSON implements json.Marshaler: RecordRef, the revision, the
// update time and the value's length. It is a redacted view, not a
// serialization: it does not round-trip.
func (r Record) MarshalJSON() ([]byte, error) { return json.Marshal(r.view()) }

// LogValue implements slog.LogValuer with the fields MarshalJSON writes.
func (r Record) LogValue() slog.Value {
	v := r.view()
	return slog.GroupValue(
		slog.String("record", v.Record),
		slog.Uint64("revision", v.Revision),
		slog.Time("updated_at", v.UpdatedAt),
		slog.Int("value_len", v.ValueLen))
}
