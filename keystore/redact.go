package keystore

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Redaction: a BranchKeyVersion prints a redacted description under every
// fmt verb, in encoding/json and in log/slog. Its branch key id may be
// derived from PHI, so it shows as its Fingerprint, and the wrapped key
// only as its length. The fields stay exported for code to read; the file
// store and backups encode their own document types, never these forms.

// formatRedacted writes desc whatever the verb and flags.
func formatRedacted(f fmt.State, desc string) { io.WriteString(f, desc) }

// BranchKeyVersion: its id as a fingerprint, its wrapped key as a length.

// String describes v with its branch key's fingerprint instead of its id,
// and the length of its wrapped key instead of the bytes.
func (v BranchKeyVersion) String() string {
	var b strings.Builder
	b.WriteString("BranchKeyVersion{")
	b.WriteString(Fingerprint(v.BranchKeyID))
	b.WriteString(", version ")
	b.WriteString(v.Version)
	b.WriteString(", ")
	b.WriteString(v.State.String())
	b.WriteString(", usage ")
	b.WriteString(strconv.FormatUint(v.Usage, 10))
	b.WriteString(", created ")
	b.WriteString(v.CreatedAt.UTC().Format(time.RFC3339Nano))
	b.WriteString(", KMS key ")
	b.WriteString(v.KMSKeyARN)
	b.WriteString(", wrapped key ")
	b.WriteString(strconv.Itoa(len(v.Ciphertext)))
	b.WriteString(" bytes}")
	return b.String()
}

// Format implements fmt.Formatter: every verb prints String.
func (v BranchKeyVersion) Format(f fmt.State, _ rune) { formatRedacted(f, v.String()) }

// MarshalText implements encoding.TextMarshaler with String.
func (v BranchKeyVersion) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// versionView is the printed form of a BranchKeyVersion in JSON and slog.
// It is for reading, not storing: the file store and backups keep their
// own document types, with the id and the wrapped key.
type versionView struct {
	BranchKey     string    `json:"branch_key"`
	Version       string    `json:"version"`
	State         string    `json:"state"`
	Usage         uint64    `json:"usage"`
	CreatedAt     time.Time `json:"created_at"`
	KMSKeyARN     string    `json:"kms_key_arn"`
	CiphertextLen int       `json:"ciphertext_len"`
}

func (v BranchKeyVersion) view() versionView {
	return versionView{BranchKey: Fingerprint(v.BranchKeyID), Version: v.Version, State: v.State.String(),
		Usage: v.Usage, CreatedAt: v.CreatedAt, KMSKeyARN: v.KMSKeyARN, CiphertextLen: len(v.Ciphertext)}
}

// MarshalJSON implements json.Marshaler: the fingerprint, version, state,
// usage, creation time, KMS key ARN and the wrapped key's length. It is a
// redacted view, not a serialization: it does not round-trip.
func (v BranchKeyVersion) MarshalJSON() ([]byte, error) { return json.Marshal(v.view()) }

// LogValue implements slog.LogValuer with the fields MarshalJSON writes.
func (v BranchKeyVersion) LogValue() slog.Value {
	w := v.view()
	return slog.GroupValue(
		slog.String("branch_key", w.BranchKey),
		slog.String("version", w.Version),
		slog.String("state", w.State),
		slog.Uint64("usage", w.Usage),
		slog.Time("created_at", w.CreatedAt),
		slog.String("kms_key_arn", w.KMSKeyARN),
		slog.Int("ciphertext_len", w.CiphertextLen))
}
