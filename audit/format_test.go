package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The worked example of docs/FORMAT.md §5: its inputs, as the section
// states them.
const (
	exampleHashKey = "an example key, 32 bytes or more"
	exampleOrigin  = "audit.example.org/phicrypt"
	exampleKeyID   = "patient-00042"
)

var (
	exampleSeed = func() []byte { // the bytes 00 01 02 ... 1f
		b := make([]byte, ed25519.SeedSize)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}()
	exampleTime    = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	exampleContext = map[string]string{"tenant": "clinic-7"}
)

// formatBlock returns the fenced block that follows the marker
// "<!-- audit-example NAME -->" in docs/FORMAT.md.
func formatBlock(t *testing.T, doc, name string) string {
	t.Helper()
	marker := "<!-- audit-example " + name + " -->\n"
	i := strings.Index(doc, marker)
	if i < 0 {
		t.Fatalf("docs/FORMAT.md has no block %q", name)
	}
	rest := doc[i+len(marker):]
	if !strings.HasPrefix(rest, "```\n") {
		t.Fatalf("block %q: the marker is not followed by a fenced block", name)
	}
	rest = rest[len("```\n"):]
	j := strings.Index(rest, "```\n")
	if j < 0 {
		t.Fatalf("block %q is not closed", name)
	}
	return rest[:j]
}

// annotatedHex reads a block of lines "hex digits  comment": the hex
// before the first two spaces (single spaces inside it are ignored).
func annotatedHex(t *testing.T, block string) []byte {
	t.Helper()
	var out []byte
	for line := range strings.Lines(block) {
		h, _, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "  ")
		b, err := hex.DecodeString(strings.ReplaceAll(h, " ", ""))
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, b...)
	}
	return out
}

// modelDigest is a digest as §5 defines it.
func modelDigest(domain string, data []byte) []byte {
	m := hmac.New(sha256.New, []byte(exampleHashKey))
	m.Write([]byte(domain))
	m.Write(data)
	return m.Sum(nil)
}

// modelRecord is a record as §5 lays it out, field by field.
func modelRecord(index int64, kind, flags byte, digests [][]byte, actor, operation, reason string, approvers []string) []byte {
	b := []byte{1}
	b = binary.BigEndian.AppendUint64(b, uint64(index))
	b = binary.BigEndian.AppendUint64(b, uint64(exampleTime.UnixNano()))
	b = append(b, kind, flags)
	for _, d := range digests {
		b = append(b, d...)
	}
	for _, s := range []string{actor, operation, reason} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	b = append(b, byte(len(approvers)))
	for _, s := range approvers {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	return b
}

// modelKeys builds the example's signer and verifier keys from the seed
// as §5 describes: key hash = the first 4 bytes of SHA-256(name || "\n"
// || 0x01 || public key).
func modelKeys() (skey, vkey string) {
	pub := ed25519.NewKeyFromSeed(exampleSeed).Public().(ed25519.PublicKey)
	h := sha256.Sum256(append([]byte(exampleOrigin+"\n\x01"), pub...))
	hash := hex.EncodeToString(h[:4])
	skey = "PRIVATE+KEY+" + exampleOrigin + "+" + hash + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, exampleSeed...))
	vkey = exampleOrigin + "+" + hash + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, pub...))
	return skey, vkey
}

// TestFormatExample: the worked example in docs/FORMAT.md §5 is what the
// package writes, and what a model written from that section's words
// writes too: the two records byte for byte, the leaf and root hashes,
// the verifier key and the signed checkpoint.
func TestFormatExample(t *testing.T) {
	raw, err := os.ReadFile("../docs/FORMAT.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)

	// The package's side.
	h, err := NewHasher([]byte(exampleHashKey))
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey := modelKeys()
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatalf("the model's signer key: %v", err)
	}
	v, err := NewVerifier(vkey)
	if err != nil {
		t.Fatalf("the model's verifier key: %v", err)
	}
	l := newTestLog(t, NewMemorySink(), signer)
	for _, e := range []Event{
		h.KeyUse(exampleTime, "svc-billing", "Decrypt", exampleKeyID, exampleContext),
		h.AdminChange(exampleTime, "alice", "rotate", exampleKeyID, []string{"alice", "bob"}),
	} {
		if _, err := l.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	recs := allRecords(t, l)
	signed, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Open(signed)
	if err != nil {
		t.Fatal(err)
	}

	// The model's side.
	var ctxData []byte
	for _, s := range []string{"tenant", "clinic-7"} {
		ctxData = binary.BigEndian.AppendUint32(ctxData, uint32(len(s)))
		ctxData = append(ctxData, s...)
	}
	keyDigest := modelDigest("phicrypt audit v1 branch key\x00", []byte(exampleKeyID))
	ctxDigest := modelDigest("phicrypt audit v1 context\x00", ctxData)
	model := [][]byte{
		modelRecord(0, 1, 3, [][]byte{keyDigest, ctxDigest}, "svc-billing", "Decrypt", "", nil),
		modelRecord(1, 3, 1, [][]byte{keyDigest}, "alice", "rotate", "", []string{"alice", "bob"}),
	}
	leaf := func(r []byte) []byte { s := sha256.Sum256(append([]byte{0}, r...)); return s[:] }
	leaves := [][]byte{leaf(model[0]), leaf(model[1])}
	root := sha256.Sum256(append(append([]byte{1}, leaves[0]...), leaves[1]...))

	for i, name := range []string{"record-0", "record-1"} {
		if !bytes.Equal(recs[i], model[i]) {
			t.Errorf("record %d: the package writes\n%x\nthe model of §5\n%x", i, recs[i], model[i])
		}
		if got := annotatedHex(t, formatBlock(t, doc, name)); !bytes.Equal(got, recs[i]) {
			t.Errorf("docs/FORMAT.md block %s is\n%x\nthe package writes\n%x", name, got, recs[i])
		}
		if th := tlog.RecordHash(recs[i]); !bytes.Equal(th[:], leaves[i]) {
			t.Errorf("leaf %d: tlog %x, the model %x", i, th, leaves[i])
		}
	}
	hashes := append(append(bytes.Clone(leaves[0]), leaves[1]...), root[:]...)
	if got := annotatedHex(t, formatBlock(t, doc, "hashes")); !bytes.Equal(got, hashes) {
		t.Errorf("docs/FORMAT.md block hashes is\n%x\nwant\n%x", got, hashes)
	}
	if c.Root != tlog.Hash(root) || c.Size != 2 {
		t.Errorf("the checkpoint says %d records, root %x; the model's root is %x", c.Size, c.Root, root)
	}
	for name, want := range map[string]string{"verifier-key": vkey + "\n", "checkpoint": string(signed)} {
		if got := formatBlock(t, doc, name); got != want {
			t.Errorf("docs/FORMAT.md block %s is\n%s\nwant\n%s", name, got, want)
		}
	}
	// The signature line is the model's: key hash, then Ed25519 over the body.
	body := fmt.Sprintf("%s\n2\n%s\n", exampleOrigin, base64.StdEncoding.EncodeToString(root[:]))
	sig := ed25519.Sign(ed25519.NewKeyFromSeed(exampleSeed), []byte(body))
	hashBytes, _ := hex.DecodeString(strings.Split(vkey, "+")[1])
	line := "— " + exampleOrigin + " " + base64.StdEncoding.EncodeToString(append(hashBytes, sig...)) + "\n"
	if want := body + "\n" + line; string(signed) != want {
		t.Errorf("the signed checkpoint is\n%s\nthe model of §5 writes\n%s", signed, want)
	}
}
