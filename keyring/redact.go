package keyring

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/phicrypt/phicrypt/keystore"
)

// Redaction. Every type of this package that holds key bytes, a branch key
// id or encryption-context pairs prints a redacted description under every
// fmt verb (fmt.Formatter: no verb reaches the fields, not even %d or %#v,
// which bypass String), in encoding/json (json.Marshaler) and in log/slog
// (slog.LogValuer). A branch key id shows as its fingerprint (keyRef), as
// in errors; key bytes and wrapped key material show only their length;
// encryption contexts only their number of pairs. The fields stay exported
// for code to read: only their printed forms are redacted. Code that must
// store these values (the file store, backups) encodes its own document
// types, never these.
//
// Keyrings and other handles (Hierarchical, RawAES, Multi, BranchKey, the
// branch key store handles) print only their kind, so that a change to
// their fields can never start printing a cached key.

// formatRedacted writes desc whatever the verb and flags.
func formatRedacted(f fmt.State, desc string) { io.WriteString(f, desc) }

// EncryptedDataKey: the provider info of a hierarchical keyring's key is
// the branch key id.

// providerInfo describes e.ProviderInfo: a KMS key ARN as it is, a branch
// key id by its fingerprint, anything else (a raw keyring's key name and
// IV) by its length.
func (e EncryptedDataKey) providerInfo() string {
	switch e.ProviderID {
	case kmsProviderID:
		return string(e.ProviderInfo)
	case hierarchyProviderID:
		return keystore.Fingerprint(string(e.ProviderInfo))
	}
	return strconv.Itoa(len(e.ProviderInfo)) + " bytes"
}

// String describes e without its branch key id and wrapped key.
func (e EncryptedDataKey) String() string {
	return "EncryptedDataKey{" + e.ProviderID + ", " + e.providerInfo() + ", wrapped key " +
		strconv.Itoa(len(e.Ciphertext)) + " bytes}"
}

// Format implements fmt.Formatter: every verb prints String.
func (e EncryptedDataKey) Format(f fmt.State, _ rune) { formatRedacted(f, e.String()) }

// MarshalText implements encoding.TextMarshaler with String.
func (e EncryptedDataKey) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// MarshalJSON implements json.Marshaler with what String shows.
func (e EncryptedDataKey) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ProviderID    string `json:"provider_id"`
		ProviderInfo  string `json:"provider_info"`
		CiphertextLen int    `json:"ciphertext_len"`
	}{e.ProviderID, e.providerInfo(), len(e.Ciphertext)})
}

// LogValue implements slog.LogValuer.
func (e EncryptedDataKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("provider_id", e.ProviderID), slog.String("provider_info", e.providerInfo()),
		slog.Int("ciphertext_len", len(e.Ciphertext)))
}

// Materials: the data key is a Secret; the encryption context may hold
// PHI in its values (and is counted, keys included, since nothing needs
// more in a log line).

// materialsView is the printed form of either kind of materials.
type materialsView struct {
	Suite         string `json:"suite"`
	DataKeyLength int    `json:"data_key_length"`
	DataKey       string `json:"data_key"`
	ContextPairs  int    `json:"context_pairs"`
	EDKs          *int   `json:"encrypted_data_keys,omitempty"`
	ValidFor      string `json:"valid_for,omitempty"` // a cache's bound on reuse
}

func newMaterialsView(suite uint16, dkLen int, dk Secret, ec map[string]string, validFor time.Duration) materialsView {
	key := "none"
	if dk != nil {
		key = redacted
	}
	w := materialsView{Suite: fmt.Sprintf("0x%04X", suite), DataKeyLength: dkLen, DataKey: key, ContextPairs: len(ec)}
	if validFor > 0 {
		w.ValidFor = validFor.String()
	}
	return w
}

func (w materialsView) describe(kind string) string {
	s := fmt.Sprintf("%s{suite %s, data key %s, %d context pairs", kind, w.Suite, w.DataKey, w.ContextPairs)
	if w.EDKs != nil {
		s += fmt.Sprintf(", %d encrypted data keys", *w.EDKs)
	}
	if w.ValidFor != "" {
		s += ", valid for " + w.ValidFor
	}
	return s + "}"
}

func (w materialsView) logValue() slog.Value {
	attrs := []slog.Attr{slog.String("suite", w.Suite), slog.Int("data_key_length", w.DataKeyLength),
		slog.String("data_key", w.DataKey), slog.Int("context_pairs", w.ContextPairs)}
	if w.EDKs != nil {
		attrs = append(attrs, slog.Int("encrypted_data_keys", *w.EDKs))
	}
	if w.ValidFor != "" {
		attrs = append(attrs, slog.String("valid_for", w.ValidFor))
	}
	return slog.GroupValue(attrs...)
}

func (m *EncryptionMaterials) view() materialsView {
	w := newMaterialsView(m.SuiteID, m.DataKeyLength, m.DataKey, m.EncryptionContext, m.ValidFor)
	n := len(m.EncryptedDataKeys)
	w.EDKs = &n
	return w
}

// String describes m by its suite, whether it holds a data key, and how
// many context pairs and encrypted data keys it has.
func (m EncryptionMaterials) String() string { return m.view().describe("EncryptionMaterials") }

// Format implements fmt.Formatter: every verb prints String.
func (m EncryptionMaterials) Format(f fmt.State, _ rune) { formatRedacted(f, m.String()) }

// MarshalJSON implements json.Marshaler with what String shows.
func (m EncryptionMaterials) MarshalJSON() ([]byte, error) { return json.Marshal(m.view()) }

// LogValue implements slog.LogValuer.
func (m EncryptionMaterials) LogValue() slog.Value { return m.view().logValue() }

func (m *DecryptionMaterials) view() materialsView {
	return newMaterialsView(m.SuiteID, m.DataKeyLength, m.DataKey, m.EncryptionContext, m.ValidFor)
}

// String describes m by its suite, whether it holds a data key, and how
// many context pairs it has.
func (m DecryptionMaterials) String() string { return m.view().describe("DecryptionMaterials") }

// Format implements fmt.Formatter: every verb prints String.
func (m DecryptionMaterials) Format(f fmt.State, _ rune) { formatRedacted(f, m.String()) }

// MarshalJSON implements json.Marshaler with what String shows.
func (m DecryptionMaterials) MarshalJSON() ([]byte, error) { return json.Marshal(m.view()) }

// LogValue implements slog.LogValuer.
func (m DecryptionMaterials) LogValue() slog.Value { return m.view().logValue() }

// HierarchicalConfig: its branch key id by fingerprint.

func (c HierarchicalConfig) describe() string {
	key := "no branch key"
	switch {
	case c.BranchKeyID != "":
		key = keystore.Fingerprint(c.BranchKeyID)
	case c.BranchKeyIDSupplier != nil:
		key = "branch key from a supplier"
	}
	return fmt.Sprintf("HierarchicalConfig{%s, CacheTTL %v, CacheCapacity %d, MaxUsesPerVersion %d, UsageBlock %d}",
		key, c.CacheTTL, c.CacheCapacity, c.MaxUsesPerVersion, c.UsageBlock)
}

// Format implements fmt.Formatter: the branch key by its fingerprint and
// the cache and usage settings, whatever the verb.
func (c HierarchicalConfig) Format(f fmt.State, _ rune) { formatRedacted(f, c.describe()) }

// MarshalJSON implements json.Marshaler with what Format shows.
func (c HierarchicalConfig) MarshalJSON() ([]byte, error) { return json.Marshal(c.describe()) }

// LogValue implements slog.LogValuer.
func (c HierarchicalConfig) LogValue() slog.Value { return slog.StringValue(c.describe()) }

// Handles print their kind only.

// Format implements fmt.Formatter: "Hierarchical" whatever the verb.
func (h Hierarchical) Format(f fmt.State, _ rune) { formatRedacted(f, h.String()) }

// LogValue implements slog.LogValuer.
func (h Hierarchical) LogValue() slog.Value { return slog.StringValue(h.String()) }

// Format implements fmt.Formatter: String whatever the verb.
func (k *BranchKey) Format(f fmt.State, _ rune) { formatRedacted(f, k.String()) }

// LogValue implements slog.LogValuer.
func (k *BranchKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Format implements fmt.Formatter: String whatever the verb.
func (r *RawAES) Format(f fmt.State, _ rune) { formatRedacted(f, r.String()) }

// LogValue implements slog.LogValuer.
func (r *RawAES) LogValue() slog.Value { return slog.StringValue(r.String()) }

// String names the keyring and how many keyrings it combines.
func (m Multi) String() string {
	n := len(m.children)
	if m.generator != nil {
		n++
	}
	return "Multi(" + strconv.Itoa(n) + " keyrings)"
}

// Format implements fmt.Formatter: String whatever the verb.
func (m Multi) Format(f fmt.State, _ rune) { formatRedacted(f, m.String()) }

// LogValue implements slog.LogValuer.
func (m Multi) LogValue() slog.Value { return slog.StringValue(m.String()) }

// Format implements fmt.Formatter: String whatever the verb.
func (b BranchKeys) Format(f fmt.State, _ rune) { formatRedacted(f, b.String()) }

// LogValue implements slog.LogValuer.
func (b BranchKeys) LogValue() slog.Value { return slog.StringValue(b.String()) }
