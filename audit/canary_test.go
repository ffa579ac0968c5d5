package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// Canaries: a branch key id that is a patient number, an encryption
// context key and value, and the hash key.
const (
	canaryID     = "cnry-branch-key-id-MRN-00042"
	canaryCtxKey = "cnry-ctx-key-tenant-name"
	canaryCtxVal = "cnry-ctx-value-patient-55501"
	canaryKey    = "cnry-hash-key-0123456789ABCDEFGH"
)

var canaries = []string{canaryID, canaryCtxKey, canaryCtxVal, canaryKey}

// leaks reports a canary found in out as is, in hex or in base64.
func leaks(out []byte) string {
	for _, c := range canaries {
		forms := []string{c, hex.EncodeToString([]byte(c)), strings.ToUpper(hex.EncodeToString([]byte(c))),
			base64.StdEncoding.EncodeToString([]byte(c))[:len(c)*4/3-4], fmt.Sprint([]byte(c))}
		for _, f := range forms {
			if bytes.Contains(out, []byte(f)) {
				return c
			}
		}
	}
	return ""
}

// TestNoPHI: events built from raw canaries hold only digests. No canary
// shows in the records, the checkpoint, the errors of every path, or any
// way a program might print or log the events, records and Hasher.
func TestNoPHI(t *testing.T) {
	signer, v, _ := testKeys(t)
	h, err := NewHasher([]byte(canaryKey))
	if err != nil {
		t.Fatal(err)
	}
	l := newTestLog(t, NewMemorySink(), signer)
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ctx := map[string]string{canaryCtxKey: canaryCtxVal}
	events := []Event{
		h.KeyUse(at, "svc", "Decrypt", canaryID, ctx),
		h.StaleServe(at, "svc", canaryID, "store unreachable"),
		h.AdminChange(at, "alice", "rotate", canaryID, []string{"alice", "bob"}),
		h.Denial(at, "svc", "destroy", canaryID, "not a custodian"),
		h.Destruction(at, "alice", "destroy", canaryID, []string{"alice", "carol"}),
	}
	var out bytes.Buffer
	for _, e := range events {
		if _, err := l.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	signed, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	out.Write(signed)
	recs := allRecords(t, l)
	for _, r := range recs {
		out.Write(r)
		rec, err := ParseRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		printAll(t, &out, rec, &rec, rec.Event, rec.Key, rec.Context)
	}
	printAll(t, &out, h, *h, events)

	// Errors: caps, malformed records, tampering, proofs, signatures.
	c, err := v.Open(signed)
	if err != nil {
		t.Fatal(err)
	}
	_, e1 := l.Append(h.KeyUse(at, strings.Repeat(canaryID, 10), "Decrypt", canaryID, ctx))
	_, e2 := ParseRecord(recs[0][:len(recs[0])-1])
	e3 := v.VerifyRecords(c, recs[:3])
	e4 := v.VerifyRecords(c, [][]byte{recs[1], recs[0], recs[2], recs[3], recs[4]})
	e5 := v.VerifyRecord(c, 0, recs[1], nil)
	_, e6 := v.Open(append(bytes.Clone(signed[:len(signed)-6]), "AAAA=\n"...))
	_, e7 := NewHasher([]byte(canaryID[:8]))
	for i, err := range []error{e1, e2, e3, e4, e5, e6, e7} {
		if err == nil {
			t.Fatalf("error path %d returned no error", i+1)
		}
		out.WriteString(err.Error())
		printAll(t, &out, err)
	}
	if c := leaks(out.Bytes()); c != "" {
		t.Fatalf("canary %q leaked", c)
	}
	// The check sees a canary where there is one.
	if leaks([]byte(fmt.Sprintf("%x", canaryCtxVal))) == "" || leaks([]byte(canaryID)) == "" {
		t.Fatal("leaks misses a canary")
	}
	if !bytes.Contains(out.Bytes(), []byte(h.BranchKey(canaryID).String())) {
		t.Fatal("the records' JSON does not show the key digest: the test printed nothing useful")
	}
}

func printAll(t *testing.T, out *bytes.Buffer, values ...any) {
	t.Helper()
	logger := slog.New(slog.NewJSONHandler(out, nil))
	text := slog.New(slog.NewTextHandler(out, nil))
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
			fmt.Fprintf(out, verb, v)
		}
		if b, err := json.Marshal(v); err == nil {
			out.Write(b)
		} else if _, isErr := v.(error); !isErr {
			t.Fatalf("json.Marshal(%T): %v", v, err)
		}
		logger.Info("v", "v", v)
		text.Info("v", "v", v)
	}
}
