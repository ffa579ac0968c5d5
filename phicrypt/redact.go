package phicrypt

import (
	"fmt"
	"io"
	"log/slog"
)

// Redaction. The stream readers and writer buffer plaintext, the Encryptor
// and Cache hold data keys and (as cache keys) serialized encryption
// contexts. Each prints only its kind under every fmt verb (fmt.Formatter:
// %d, %#v and bad verbs would otherwise walk the fields) and in log/slog;
// encoding/json sees no exported fields. A change to their fields can so
// never start printing a secret.

// formatRedacted writes desc whatever the verb and flags.
func formatRedacted(f fmt.State, desc string) { io.WriteString(f, desc) }

// Format implements fmt.Formatter: "phicrypt.Reader" whatever the verb.
func (Reader) Format(f fmt.State, _ rune) { formatRedacted(f, "phicrypt.Reader") }

// LogValue implements slog.LogValuer.
func (Reader) LogValue() slog.Value { return slog.StringValue("phicrypt.Reader") }

// Format implements fmt.Formatter: "phicrypt.ReaderAt" whatever the verb.
func (ReaderAt) Format(f fmt.State, _ rune) { formatRedacted(f, "phicrypt.ReaderAt") }

// LogValue implements slog.LogValuer.
func (ReaderAt) LogValue() slog.Value { return slog.StringValue("phicrypt.ReaderAt") }

// Format implements fmt.Formatter: the stream writer NewWriter returns
// prints "phicrypt.Writer" whatever the verb.
func (writer) Format(f fmt.State, _ rune) { formatRedacted(f, "phicrypt.Writer") }

// LogValue implements slog.LogValuer.
func (writer) LogValue() slog.Value { return slog.StringValue("phicrypt.Writer") }

// Format implements fmt.Formatter: "phicrypt.Encryptor" whatever the verb.
func (*Encryptor) Format(f fmt.State, _ rune) { formatRedacted(f, "phicrypt.Encryptor") }

// LogValue implements slog.LogValuer.
func (*Encryptor) LogValue() slog.Value { return slog.StringValue("phicrypt.Encryptor") }

// Format implements fmt.Formatter: "phicrypt.Cache" whatever the verb.
func (*Cache) Format(f fmt.State, _ rune) { formatRedacted(f, "phicrypt.Cache") }

// LogValue implements slog.LogValuer.
func (*Cache) LogValue() slog.Value { return slog.StringValue("phicrypt.Cache") }

// Format implements fmt.Formatter: "phicrypt.Message" whatever the verb.
func (Message) Format(f fmt.State, _ rune) { formatRedacted(f, "phicrypt.Message") }

// LogValue implements slog.LogValuer.
func (Message) LogValue() slog.Value { return slog.StringValue("phicrypt.Message") }

// Format implements fmt.Formatter: "phicrypt.FrameSealer" whatever the verb.
func (FrameSealer) Format(f fmt.State, _ rune) { formatRedacted(f, "phicrypt.FrameSealer") }

// LogValue implements slog.LogValuer.
func (FrameSealer) LogValue() slog.Value { return slog.StringValue("phicrypt.FrameSealer") }
