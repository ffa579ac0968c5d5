package keyring

import (
	"context"
	"fmt"
	"time"
)

// Keyring makes and unwraps data keys.
//
// OnEncrypt must leave m.DataKey set (generating it if empty) and append at
// least one encrypted data key, or return an error and leave m unchanged.
// OnDecrypt must set m.DataKey from one of edks, or return an error and leave
// m unchanged. Both are called with a data key of m.DataKeyLength bytes.
// m, its context and edks are lent for the call only: a caller may reuse
// them for its next message, so a keyring keeps none of them (it may keep
// the encrypted data keys it makes). The data key it sets in m becomes the
// caller's, which wipes it once done with it: a keyring that keeps a data
// key sets a copy of it.
type Keyring interface {
	OnEncrypt(ctx context.Context, m *EncryptionMaterials) error
	OnDecrypt(ctx context.Context, m *DecryptionMaterials, edks []EncryptedDataKey) error
}

// EncryptedDataKey is one wrapped copy of a message's data key, as the
// message header stores it.
type EncryptedDataKey struct {
	// ProviderID names the kind of keyring ("aws-kms", or a raw keyring's
	// key namespace).
	ProviderID string
	// ProviderInfo tells that keyring which key wrapped it (a KMS key ARN,
	// or a raw keyring's key name and IV).
	ProviderInfo []byte
	Ciphertext   []byte
}

// EncryptionMaterials are what a keyring works on while a message is written.
type EncryptionMaterials struct {
	// SuiteID is the message's algorithm suite (for example 0x0478).
	SuiteID uint16
	// DataKeyLength is the length of the data key the suite needs.
	DataKeyLength int
	// EncryptionContext is bound to every wrapped key. Its values may be
	// PHI: keyrings must not log them or put them in errors.
	EncryptionContext map[string]string
	DataKey           Secret
	EncryptedDataKeys []EncryptedDataKey
	// ValidFor bounds how long a cache may reuse these materials, counted
	// from when the keyring returned them; zero means the keyring sets no
	// bound. Keyrings lower it with LimitValidity and never raise it (the
	// hierarchical keyring sets what is left of its branch key's cache
	// entry, so rotation takes effect within CacheTTL; the KMS keyring sets
	// none).
	ValidFor time.Duration
}

// DecryptionMaterials are what a keyring works on while a message is read.
type DecryptionMaterials struct {
	SuiteID           uint16
	DataKeyLength     int
	EncryptionContext map[string]string
	DataKey           Secret
	// ValidFor is as for EncryptionMaterials: how long a cache may reuse
	// the unwrapped data key (zero: no bound), so that a retired branch
	// key version stops decrypting within the keyring's CacheTTL.
	ValidFor time.Duration
}

// LimitValidity lowers m.ValidFor to d (a d ≤ 0 means "do not reuse": the
// shortest bound, one nanosecond).
func (m *EncryptionMaterials) LimitValidity(d time.Duration) {
	m.ValidFor = lowerValidity(m.ValidFor, d)
}

// LimitValidity lowers m.ValidFor to d, as for EncryptionMaterials.
func (m *DecryptionMaterials) LimitValidity(d time.Duration) {
	m.ValidFor = lowerValidity(m.ValidFor, d)
}

func lowerValidity(cur, d time.Duration) time.Duration {
	d = max(d, time.Nanosecond)
	if cur == 0 || d < cur {
		return d
	}
	return cur
}

// Secret is key material. It formats as [REDACTED] with every fmt verb,
// in JSON and through %#v, so a stray log line cannot leak it.
type Secret []byte

const redacted = "[REDACTED]"

// Format implements fmt.Formatter.
func (Secret) Format(f fmt.State, _ rune) { f.Write([]byte(redacted)) }

// String implements fmt.Stringer.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return redacted }

// MarshalJSON implements json.Marshaler.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler (and so slog's text output).
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Wipe overwrites the key bytes. Go cannot promise no other copy exists (the
// garbage collector may have moved the slice, and callers may have copied
// it), so this narrows the window rather than closing it.
func (s Secret) Wipe() { clear(s) }

func (m *EncryptionMaterials) checkDataKey() error {
	if m.DataKey != nil && len(m.DataKey) != m.DataKeyLength {
		return fmt.Errorf("keyring: the materials hold a %d-byte data key; the suite needs %d", len(m.DataKey), m.DataKeyLength)
	}
	return nil
}
