package audit

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// testOrigin is the test log's key name and checkpoint origin.
const testOrigin = "audit.test/phicrypt"

// testKeys returns a fresh signer and the verifier for it.
func testKeys(t testing.TB) (note.Signer, *Verifier, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return signer, v, vkey
}

func testHasher(t testing.TB) *Hasher {
	t.Helper()
	h, err := NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func newTestLog(t testing.TB, sink Sink, signer note.Signer) *Log {
	t.Helper()
	l, err := NewLog(Config{Sink: sink, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testEvent is the i-th event of a test log, one of each kind in turn.
func testEvent(h *Hasher, i int) Event {
	at := time.Date(2026, 12, 6, 12, 0, i, 0, time.UTC)
	id := fmt.Sprintf("branch-key-%d", i%3)
	switch i % 5 {
	case 0:
		return h.KeyUse(at, "svc-billing", "Decrypt", id, map[string]string{"tenant": "t1"})
	case 1:
		return h.StaleServe(at, "svc-billing", id, "store unreachable")
	case 2:
		return h.AdminChange(at, "alice", "rotate", id, []string{"alice", "bob"})
	case 3:
		return h.Denial(at, "svc-billing", "destroy", id, "not a custodian")
	default:
		return h.Destruction(at, "alice", "destroy-version", id, []string{"alice", "carol"})
	}
}

// appendN appends n test events and fails the test on any error.
func appendN(t testing.TB, l *Log, h *Hasher, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		idx, err := l.Append(testEvent(h, i))
		if err != nil {
			t.Fatal(err)
		}
		if idx != int64(i) {
			t.Fatalf("Append gave index %d, want %d", idx, i)
		}
	}
}

func openCheckpoint(t testing.TB, v *Verifier, l *Log) Checkpoint {
	t.Helper()
	signed, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Open(signed)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func allRecords(t testing.TB, l *Log) [][]byte {
	t.Helper()
	recs, err := l.Records(0, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
