package kmsmock

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
)

// Redaction. Config and Server hold SigV4 secret access keys (and Server
// all key material): they print a redacted description under every fmt
// verb (fmt.Formatter: %d, %#v and bad verbs would otherwise walk the
// fields), in encoding/json and in log/slog. Local prints as its URL.

func (c Config) describe() string {
	return fmt.Sprintf("kmsmock.Config{region %q, account %q, %d credentials, state file %q, trail capacity %d}",
		c.Region, c.Account, len(c.Credentials), c.StateFile, c.TrailCapacity)
}

// Format implements fmt.Formatter: the settings, with only the number of
// credentials, whatever the verb.
func (c Config) Format(f fmt.State, _ rune) { io.WriteString(f, c.describe()) }

// MarshalJSON implements json.Marshaler with what Format shows.
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Region        string `json:"region"`
		Account       string `json:"account"`
		Credentials   int    `json:"credentials"`
		StateFile     string `json:"state_file"`
		TrailCapacity int    `json:"trail_capacity"`
	}{c.Region, c.Account, len(c.Credentials), c.StateFile, c.TrailCapacity})
}

// LogValue implements slog.LogValuer.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.describe()) }

func (s *Server) describe() string {
	return "kmsmock.Server(" + s.region + ", " + s.account + ")"
}

// Format implements fmt.Formatter: the region and account, whatever the
// verb.
func (s *Server) Format(f fmt.State, _ rune) { io.WriteString(f, s.describe()) }

// LogValue implements slog.LogValuer.
func (s *Server) LogValue() slog.Value { return slog.StringValue(s.describe()) }

// Format implements fmt.Formatter: the server's URL, whatever the verb.
func (l *Local) Format(f fmt.State, _ rune) { io.WriteString(f, "kmsmock.Local("+l.URL+")") }

// LogValue implements slog.LogValuer.
func (l *Local) LogValue() slog.Value { return slog.StringValue("kmsmock.Local(" + l.URL + ")") }
