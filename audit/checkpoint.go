package audit

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a verified checkpoint: the log named Origin held Size
// records whose tree hashes to Root. Get one from Verifier.Open.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// body is the C2SP tlog-checkpoint text: origin, size in decimal, root
// hash in standard base64, each line ending in a newline.
func (c Checkpoint) body() string {
	return c.Origin + "\n" + strconv.FormatInt(c.Size, 10) + "\n" +
		base64.StdEncoding.EncodeToString(c.Root[:]) + "\n"
}

// parseCheckpoint reads a checkpoint body. Extension lines after the root
// are allowed by the C2SP format and ignored.
func parseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) < 4 || !strings.HasSuffix(text, "\n") {
		return Checkpoint{}, fmt.Errorf("%w: fewer than three lines", ErrMalformedCheckpoint)
	}
	origin := strings.TrimSuffix(lines[0], "\n")
	size, err := strconv.ParseInt(strings.TrimSuffix(lines[1], "\n"), 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10)+"\n" != lines[1] {
		return Checkpoint{}, fmt.Errorf("%w: the size is not a decimal number", ErrMalformedCheckpoint)
	}
	root, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSuffix(lines[2], "\n"))
	if err != nil || len(root) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("%w: the root is not a base64 SHA-256 hash", ErrMalformedCheckpoint)
	}
	c := Checkpoint{Origin: origin, Size: size}
	copy(c.Root[:], root)
	return c, nil
}

// checkOrigin refuses a key name that cannot be an origin line.
func checkOrigin(name string) error {
	if name == "" || !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsSpace) || strings.Contains(name, "+") {
		return fmt.Errorf("audit: the signer's name is not a valid origin (non-empty, no spaces or '+')")
	}
	return nil
}
