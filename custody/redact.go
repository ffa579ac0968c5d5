package custody

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/phicrypt/phicrypt/keystore"
)

// Redaction: what names a branch key prints its fingerprint, never its id
// (which may be derived from PHI), under every fmt verb, JSON and slog.

// formatRedacted writes desc whatever the verb and flags.
func formatRedacted(f fmt.State, desc string) { io.WriteString(f, desc) }

// RewrapPosition: a resume point names a branch key by its fingerprint.

// String describes p with its branch key's fingerprint.
func (p RewrapPosition) String() string {
	return "RewrapPosition{" + keystore.Fingerprint(p.BranchKeyID) + ", version " + p.Version + "}"
}

// Format implements fmt.Formatter: every verb prints String.
func (p RewrapPosition) Format(f fmt.State, _ rune) { formatRedacted(f, p.String()) }

// MarshalText implements encoding.TextMarshaler with String.
func (p RewrapPosition) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// MarshalJSON implements json.Marshaler with the fingerprint and version.
// It does not round-trip: to persist a position, store its two fields.
func (p RewrapPosition) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		BranchKey string `json:"branch_key"`
		Version   string `json:"version"`
	}{keystore.Fingerprint(p.BranchKeyID), p.Version})
}

// LogValue implements slog.LogValuer.
func (p RewrapPosition) LogValue() slog.Value {
	return slog.GroupValue(slog.String("branch_key", keystore.Fingerprint(p.BranchKeyID)), slog.String("version", p.Version))
}

// RewrapOptions holds a resume position (a branch key id) and callbacks.

// Format implements fmt.Formatter: the resume position redacted, whether
// each callback is set.
func (o RewrapOptions) Format(f fmt.State, _ rune) { formatRedacted(f, o.describe()) }

func (o RewrapOptions) describe() string {
	resume := "none"
	if o.Resume != nil {
		resume = o.Resume.String()
	}
	return fmt.Sprintf("RewrapOptions{resume %s, checkpoint %t, progress %t, %d grant tokens}",
		resume, o.Checkpoint != nil, o.Progress != nil, len(o.GrantTokens))
}

// LogValue implements slog.LogValuer.
func (o RewrapOptions) LogValue() slog.Value { return slog.StringValue(o.describe()) }

// Format implements fmt.Formatter: every verb prints String.
func (b BranchKeys) Format(f fmt.State, _ rune) { formatRedacted(f, b.String()) }

// LogValue implements slog.LogValuer.
func (b BranchKeys) LogValue() slog.Value { return slog.StringValue(b.String()) }
