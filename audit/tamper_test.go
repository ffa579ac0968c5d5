package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// TestTamperTable: an auditor holding a signed checkpoint of 10 records
// gets a copy of the records that someone has tampered with; each kind of
// tampering is caught with its own error.
func TestTamperTable(t *testing.T) {
	signer, v, _ := testKeys(t)
	h := testHasher(t)
	l := newTestLog(t, NewMemorySink(), signer)
	appendN(t, l, h, 0, 10)
	c := openCheckpoint(t, v, l)
	honest := allRecords(t, l)
	if err := v.VerifyRecords(c, honest); err != nil {
		t.Fatalf("the honest records fail: %v", err)
	}

	// forged is a record the log never wrote, with the index of record 4.
	forged, err := encodeRecord(nil, 4, h.AdminChange(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "mallory", "policy", "k", nil))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tamper func([][]byte) [][]byte
		want   error
	}{
		{"edit a byte of the actor", func(r [][]byte) [][]byte {
			i := bytes.Index(r[3], []byte("svc-billing"))
			r[3][i] = 'S'
			return r
		}, ErrEdited},
		{"edit to garbage", func(r [][]byte) [][]byte { r[5] = []byte("x"); return r }, ErrEdited},
		{"delete a record", func(r [][]byte) [][]byte { return slices.Delete(r, 4, 5) }, ErrDeleted},
		{"insert a record", func(r [][]byte) [][]byte { return slices.Insert(r, 5, forged) }, ErrInserted},
		{"reorder two records", func(r [][]byte) [][]byte { r[2], r[6] = r[6], r[2]; return r }, ErrReordered},
		{"truncate the last three", func(r [][]byte) [][]byte { return r[:7] }, ErrTruncated},
		{"delete the last record", func(r [][]byte) [][]byte { return r[:9] }, ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := tt.tamper(cloneRecords(honest))
			err := v.VerifyRecords(c, recs)
			if !errors.Is(err, tt.want) {
				t.Fatalf("VerifyRecords = %v, want %v", err, tt.want)
			}
			for _, other := range tamperErrors {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("the error also matches %v", other)
				}
			}
		})
	}

	t.Run("fork", func(t *testing.T) {
		// A second log with the same key shares the first 6 records, then
		// diverges: its checkpoint is not consistent with the first's.
		fork := newTestLog(t, NewMemorySink(), signer)
		appendN(t, fork, h, 0, 6)
		if _, err := fork.Append(h.Denial(time.Date(2026, 2, 2, 0, 0, 0, 0, time.UTC), "mallory", "x", "k", "y")); err != nil {
			t.Fatal(err)
		}
		appendN(t, fork, h, 7, 5)
		fc := openCheckpoint(t, v, fork)
		proof, err := fork.ProveTree(c.Size, fc.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.VerifyConsistency(c, fc, proof); !errors.Is(err, ErrFork) {
			t.Fatalf("VerifyConsistency across a fork = %v, want ErrFork", err)
		}
		// The honest log grown to the same size is consistent.
		appendN(t, l, h, 10, 2)
		nc := openCheckpoint(t, v, l)
		proof, err = l.ProveTree(c.Size, nc.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.VerifyConsistency(c, nc, proof); err != nil {
			t.Fatalf("VerifyConsistency of the honest log = %v", err)
		}
		// Two checkpoints of one size with two roots fork too.
		same := openCheckpoint(t, v, newTestLog(t, NewMemorySink(), signer))
		other := openCheckpoint(t, v, l)
		same.Size, same.Root = other.Size, fc.Root
		if err := v.VerifyConsistency(same, other, nil); !errors.Is(err, ErrFork) {
			t.Fatalf("two roots for one size = %v, want ErrFork", err)
		}
	})

	t.Run("forged signature", func(t *testing.T) {
		signed, err := l.Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		// Flip a bit of the Ed25519 signature on the note's last line.
		bad := flipSignatureBit(t, signed)
		if _, err := v.Open(bad); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("Open(flipped signature) = %v, want ErrBadSignature", err)
		}
		// An edited size under the honest signature.
		size := l.Size()
		edited := bytes.Replace(signed, fmt.Appendf(nil, "\n%d\n", size), fmt.Appendf(nil, "\n%d\n", size-1), 1)
		if bytes.Equal(edited, signed) {
			t.Fatal("the test did not edit the checkpoint")
		}
		if _, err := v.Open(edited); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("Open(edited body) = %v, want ErrBadSignature", err)
		}
		// A checkpoint signed by another key of the same name.
		other, _, _ := testKeys(t)
		ol := newTestLog(t, NewMemorySink(), other)
		osigned, err := ol.Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Open(osigned); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("Open(other key) = %v, want ErrBadSignature", err)
		}
	})
}

var tamperErrors = []error{ErrEdited, ErrDeleted, ErrInserted, ErrReordered, ErrTruncated, ErrFork, ErrBadSignature, ErrNotIncluded}

func cloneRecords(r [][]byte) [][]byte {
	out := make([][]byte, len(r))
	for i := range r {
		out[i] = slices.Clone(r[i])
	}
	return out
}

// TestInclusionProofs: every record of every prefix proves its inclusion;
// an edited record, a wrong index or a proof for another size does not.
func TestInclusionProofs(t *testing.T) {
	signer, v, _ := testKeys(t)
	h := testHasher(t)
	l := newTestLog(t, NewMemorySink(), signer)
	appendN(t, l, h, 0, 13)
	c := openCheckpoint(t, v, l)
	recs := allRecords(t, l)
	for i, r := range recs {
		p, err := l.ProveRecord(int64(i), c.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.VerifyRecord(c, int64(i), r, p); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		edited := slices.Clone(r)
		edited[len(edited)-1] ^= 1
		if err := v.VerifyRecord(c, int64(i), edited, p); !errors.Is(err, ErrNotIncluded) {
			t.Fatalf("edited record %d = %v, want ErrNotIncluded", i, err)
		}
		if err := v.VerifyRecord(c, int64((i+1)%len(recs)), r, p); !errors.Is(err, ErrNotIncluded) {
			t.Fatalf("record %d at another index = %v, want ErrNotIncluded", i, err)
		}
	}
	if err := v.VerifyRecord(c, c.Size, recs[0], nil); !errors.Is(err, ErrNotIncluded) {
		t.Fatalf("an index past the tree = %v, want ErrNotIncluded", err)
	}
}

// flipSignatureBit flips the last bit of the signature in a signed note's
// last line ("— name base64(key hash || signature)"), keeping it base64.
func flipSignatureBit(t *testing.T, signed []byte) []byte {
	t.Helper()
	text := strings.TrimSuffix(string(signed), "\n")
	i := strings.LastIndex(text, " ")
	sig, err := base64.StdEncoding.DecodeString(text[i+1:])
	if err != nil || len(sig) != 4+64 {
		t.Fatalf("the note's signature line does not parse (%v)", err)
	}
	sig[len(sig)-1] ^= 1
	return []byte(text[:i+1] + base64.StdEncoding.EncodeToString(sig) + "\n")
}

// TestVerifyRecordsGrownLog: records appended after the checkpoint are no
// tampering; the checkpoint still covers its own prefix.
func TestVerifyRecordsGrownLog(t *testing.T) {
	signer, v, _ := testKeys(t)
	h := testHasher(t)
	l := newTestLog(t, NewMemorySink(), signer)
	appendN(t, l, h, 0, 4)
	c := openCheckpoint(t, v, l)
	appendN(t, l, h, 4, 3)
	recs := allRecords(t, l)
	if err := v.VerifyRecords(c, recs); err != nil {
		t.Fatalf("a grown log: %v", err)
	}
	recs[1][len(recs[1])-1] ^= 1 // inside the checkpoint's prefix
	if err := v.VerifyRecords(c, recs); !errors.Is(err, ErrEdited) {
		t.Fatalf("an edit inside the prefix = %v, want ErrEdited", err)
	}
}

// TestOpenMalformedCheckpoint: a correctly signed note whose body is not
// a checkpoint of this log is refused as malformed.
func TestOpenMalformedCheckpoint(t *testing.T) {
	signer, v, _ := testKeys(t)
	for _, body := range []string{
		"audit.test/phicrypt\n",
		"audit.test/phicrypt\n-1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
		"audit.test/phicrypt\n01\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
		"audit.test/phicrypt\n1\nnot base64\n",
		"another.origin/log\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
	} {
		signed, err := note.Sign(&note.Note{Text: body}, signer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Open(signed); !errors.Is(err, ErrMalformedCheckpoint) {
			t.Errorf("Open(%q) = %v, want ErrMalformedCheckpoint", body, err)
		}
	}
}
