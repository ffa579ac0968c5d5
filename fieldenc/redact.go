package fieldenc

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
)

// Redaction. Config and Table hold a branch key id, which may be PHI (a
// patient number), and Table and Column hold derived keys. Each prints a
// redacted description under every fmt verb (fmt.Formatter: %d, %#v and
// bad verbs would otherwise walk the fields), in encoding/json and in
// log/slog, with the branch key named by its fingerprint.

// branchKeyRef is the fingerprint by which keyring's errors name a branch
// key: the first four bytes of SHA-256 of its id, in hex.
func branchKeyRef(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "branch key #" + hex.EncodeToString(sum[:4])
}

func (c Config) describe() string {
	return fmt.Sprintf("fieldenc.Config{table %s, %s, migration %t, reserved uses %d}",
		c.Table, branchKeyRef(c.BranchKeyID), c.Migration, c.ReservedUses)
}

// Format implements fmt.Formatter: the table name, the branch key's
// fingerprint and the settings, whatever the verb.
func (c Config) Format(f fmt.State, _ rune) { io.WriteString(f, c.describe()) }

// MarshalJSON implements json.Marshaler with what Format shows.
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Table        string `json:"table"`
		BranchKey    string `json:"branch_key"`
		Migration    bool   `json:"migration"`
		ReservedUses uint64 `json:"reserved_uses"`
	}{c.Table, branchKeyRef(c.BranchKeyID), c.Migration, c.ReservedUses})
}

// LogValue implements slog.LogValuer.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("table", c.Table), slog.String("branch_key", branchKeyRef(c.BranchKeyID)),
		slog.Bool("migration", c.Migration), slog.Uint64("reserved_uses", c.ReservedUses))
}

// Format implements fmt.Formatter: String whatever the verb.
func (t *Table) Format(f fmt.State, _ rune) { io.WriteString(f, t.String()) }

// LogValue implements slog.LogValuer.
func (t *Table) LogValue() slog.Value { return slog.StringValue(t.String()) }

// String names the column and its table.
func (c *Column) String() string {
	if c.t == nil {
		return "fieldenc.Column(" + c.name + ")"
	}
	return "fieldenc.Column(" + c.t.cfg.Table + "." + c.name + ")"
}

// Format implements fmt.Formatter: String whatever the verb.
func (c *Column) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// LogValue implements slog.LogValuer.
func (c *Column) LogValue() slog.Value { return slog.StringValue(c.String()) }
