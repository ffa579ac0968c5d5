package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// An independent RFC 6962 section 2.1 implementation, written from the
// RFC's definitions, to show that the log's use of tlog computes the same
// tree hashes and proofs.

func rfcLeaf(d []byte) tlog.Hash { return sha256.Sum256(append([]byte{0x00}, d...)) }

func rfcNode(l, r tlog.Hash) tlog.Hash {
	return sha256.Sum256(append(append([]byte{0x01}, l[:]...), r[:]...))
}

// rfcSplit is k, the largest power of two smaller than n (n > 1).
func rfcSplit(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// rfcMTH is MTH(D[n]).
func rfcMTH(d [][]byte) tlog.Hash {
	switch len(d) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return rfcLeaf(d[0])
	}
	k := rfcSplit(len(d))
	return rfcNode(rfcMTH(d[:k]), rfcMTH(d[k:]))
}

// rfcPath is PATH(m, D[n]), the audit path of leaf m.
func rfcPath(m int, d [][]byte) []tlog.Hash {
	if len(d) <= 1 {
		return nil
	}
	k := rfcSplit(len(d))
	if m < k {
		return append(rfcPath(m, d[:k]), rfcMTH(d[k:]))
	}
	return append(rfcPath(m-k, d[k:]), rfcMTH(d[:k]))
}

// rfcProof is PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
func rfcProof(m int, d [][]byte) []tlog.Hash { return rfcSubproof(m, d, true) }

func rfcSubproof(m int, d [][]byte, b bool) []tlog.Hash {
	n := len(d)
	if m == n {
		if b {
			return nil
		}
		return []tlog.Hash{rfcMTH(d)}
	}
	k := rfcSplit(n)
	if m <= k {
		return append(rfcSubproof(m, d[:k], b), rfcMTH(d[k:]))
	}
	return append(rfcSubproof(m-k, d[k:], false), rfcMTH(d[:k]))
}

// TestRFC6962 compares the log's roots, inclusion proofs and consistency
// proofs with the RFC's definitions for every tree up to 33 records, and
// checks each proof with tlog's CheckRecord and CheckTree.
func TestRFC6962(t *testing.T) {
	signer, v, _ := testKeys(t)
	h := testHasher(t)
	l := newTestLog(t, NewMemorySink(), signer)
	if c := openCheckpoint(t, v, l); c.Root != sha256.Sum256(nil) {
		t.Fatalf("empty tree root %x, RFC 6962 says SHA-256 of nothing", c.Root)
	}
	var roots []tlog.Hash
	for n := 1; n <= 33; n++ {
		appendN(t, l, h, n-1, 1)
		d := allRecords(t, l)
		c := openCheckpoint(t, v, l)
		if want := rfcMTH(d); c.Root != want {
			t.Fatalf("n=%d: checkpoint root %x, RFC MTH %x", n, c.Root, want)
		}
		roots = append(roots, c.Root)
		for m := range n {
			p, err := l.ProveRecord(int64(m), int64(n))
			if err != nil {
				t.Fatal(err)
			}
			if want := rfcPath(m, d); !slices.Equal(p, want) {
				t.Fatalf("n=%d m=%d: inclusion proof differs from PATH", n, m)
			}
			if err := tlog.CheckRecord(p, int64(n), c.Root, int64(m), rfcLeaf(d[m])); err != nil {
				t.Fatalf("n=%d m=%d: tlog.CheckRecord: %v", n, m, err)
			}
		}
		for m := 1; m < n; m++ {
			p, err := l.ProveTree(int64(m), int64(n))
			if err != nil {
				t.Fatal(err)
			}
			if want := rfcProof(m, d); !slices.Equal(p, want) {
				t.Fatalf("n=%d m=%d: consistency proof differs from PROOF", n, m)
			}
			if err := tlog.CheckTree(p, int64(n), c.Root, int64(m), roots[m-1]); err != nil {
				t.Fatalf("n=%d m=%d: tlog.CheckTree: %v", n, m, err)
			}
		}
	}
}

// TestRFC6962KnownAnswer pins the RFC 6962 leaf and node hash of fixed
// inputs, so both implementations above cannot be wrong the same way.
func TestRFC6962KnownAnswer(t *testing.T) {
	// SHA-256 of the single byte 0x00: the hash of an empty leaf (RFC 6962 test vectors).
	const emptyLeaf = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
	if got := hexOf(tlog.RecordHash(nil)); got != emptyLeaf {
		t.Fatalf("tlog empty leaf %s", got)
	}
	if got := hexOf(rfcLeaf(nil)); got != emptyLeaf {
		t.Fatalf("rfc empty leaf %s", got)
	}
	a, b := rfcLeaf([]byte("a")), rfcLeaf([]byte("b"))
	if tlog.NodeHash(a, b) != rfcNode(a, b) {
		t.Fatal("node hashes differ")
	}
}

func hexOf(h tlog.Hash) string { return hex.EncodeToString(h[:]) }
