package audit

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestRecordRoundTrip: every kind of event encodes, parses back to the
// same event, and re-encodes to the same bytes.
func TestRecordRoundTrip(t *testing.T) {
	h := testHasher(t)
	for i := range 5 {
		e := testEvent(h, i)
		b, err := encodeRecord(nil, int64(i), e)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ParseRecord(b)
		if err != nil {
			t.Fatalf("%v: %v", e.Kind, err)
		}
		if r.Index != int64(i) || !r.Time.Equal(e.Time) || r.Kind != e.Kind || r.Actor != e.Actor ||
			r.Operation != e.Operation || r.Reason != e.Reason || r.Key != e.Key || r.Context != e.Context ||
			strings.Join(r.Approvers, ",") != strings.Join(e.Approvers, ",") {
			t.Fatalf("round trip of %v: got %+v, want %+v", e.Kind, r, e)
		}
		again, err := encodeRecord(nil, r.Index, r.Event)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %v differs (%v)", e.Kind, err)
		}
	}
}

// TestRecordRefused: encodings that are not the one canonical encoding of
// an event are refused with ErrMalformedRecord.
func TestRecordRefused(t *testing.T) {
	h := testHasher(t)
	good, err := encodeRecord(nil, 3, testEvent(h, 2))
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := map[string][]byte{
		"empty":            nil,
		"version 2":        mutate(func(b []byte) []byte { b[0] = 2; return b }),
		"kind 0":           mutate(func(b []byte) []byte { b[17] = 0; return b }),
		"kind 6":           mutate(func(b []byte) []byte { b[17] = 6; return b }),
		"unknown flag":     mutate(func(b []byte) []byte { b[18] |= 4; return b }),
		"trailing byte":    append(bytes.Clone(good), 0),
		"one byte short":   good[:len(good)-1],
		"negative index":   mutate(func(b []byte) []byte { b[1] = 0x80; return b }),
		"too large":        make([]byte, MaxRecordSize+1),
		"invalid UTF-8":    mutate(func(b []byte) []byte { b[bytes.Index(b, []byte("alice"))] = 0xff; return b }),
		"approver count+1": mutate(func(b []byte) []byte { b[bytes.LastIndex(b, []byte{2, 0, 5})] = 3; return b }),
	}
	for name, b := range tests {
		if _, err := ParseRecord(b); !errors.Is(err, ErrMalformedRecord) {
			t.Errorf("%s: ParseRecord = %v, want ErrMalformedRecord", name, err)
		}
	}
}

// TestFieldCaps: an event over any cap is refused by Append, naming the
// field, and nothing is appended.
func TestFieldCaps(t *testing.T) {
	signer, _, _ := testKeys(t)
	h := testHasher(t)
	l := newTestLog(t, NewMemorySink(), signer)
	at := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	long := func(n int) string { return strings.Repeat("a", n+1) }
	many := make([]string, MaxApprovers+1)
	tests := map[string]Event{
		"actor":     h.KeyUse(at, long(MaxActor), "Decrypt", "k", nil),
		"operation": h.KeyUse(at, "svc", long(MaxOperation), "k", nil),
		"reason":    h.Denial(at, "svc", "destroy", "k", long(MaxReason)),
		"approver":  h.AdminChange(at, "alice", "rotate", "k", []string{long(MaxActor)}),
		"approvers": h.AdminChange(at, "alice", "rotate", "k", many),
	}
	for name, e := range tests {
		_, err := l.Append(e)
		if !errors.Is(err, ErrFieldTooLarge) || !strings.Contains(err.Error(), strings.TrimSuffix(name, "s")) {
			t.Errorf("%s over its cap: Append = %v, want ErrFieldTooLarge naming it", name, err)
		}
	}
	if _, err := l.Append(Event{Time: at, Actor: "svc"}); err == nil {
		t.Error("an event with no Kind was appended")
	}
	if _, err := l.Append(Event{Kind: KindDenial, Actor: "svc"}); err == nil {
		t.Error("an event with no time was appended")
	}
	if l.Size() != 0 {
		t.Fatalf("refused events left %d records", l.Size())
	}
	// At the caps exactly, the event is taken and fits MaxRecordSize.
	full := make([]string, MaxApprovers)
	for i := range full {
		full[i] = strings.Repeat("b", MaxActor)
	}
	e := h.AdminChange(at, strings.Repeat("a", MaxActor), strings.Repeat("o", MaxOperation), "k", full)
	e.Context, e.Reason = h.Context(map[string]string{"a": "b"}), strings.Repeat("r", MaxReason)
	b, err := encodeRecord(nil, 0, e)
	if err != nil || len(b) != MaxRecordSize {
		t.Fatalf("an event at every cap encodes to %d bytes (%v), MaxRecordSize is %d", len(b), err, MaxRecordSize)
	}
	if _, err := ParseRecord(b); err != nil {
		t.Fatal(err)
	}
}

// TestDigests: the digests depend on the key, the value and the kind of
// value, and a context's digest does not depend on map order.
func TestDigests(t *testing.T) {
	h := testHasher(t)
	h2, err := NewHasher(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if h.BranchKey("a") == h2.BranchKey("a") || h.BranchKey("a") == h.BranchKey("b") {
		t.Fatal("branch key digests collide")
	}
	// "a"+"b" as one key or as key and value: length prefixes keep them apart.
	if h.Context(map[string]string{"ab": ""}) == h.Context(map[string]string{"a": "b"}) {
		t.Fatal("context digests collide")
	}
	if h.Context(map[string]string{"x": "1", "y": "2"}) != h.Context(map[string]string{"y": "2", "x": "1"}) {
		t.Fatal("context digest depends on order")
	}
	if h.Context(nil) == h.BranchKey("") {
		t.Fatal("the two kinds of digest share a domain")
	}
	if (Digest{}).String() != "-" || !(Digest{}).IsZero() || h.BranchKey("a").IsZero() {
		t.Fatal("IsZero or String of an absent digest")
	}
	at := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	if e := h.Denial(at, "svc", "create", "", "not a custodian"); !e.Key.IsZero() {
		t.Fatal("an empty branch key id gave a digest")
	}
	if _, err := NewHasher(make([]byte, 31)); err == nil {
		t.Fatal("NewHasher took a 31-byte key")
	}
}
