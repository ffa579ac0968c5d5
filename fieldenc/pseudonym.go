package fieldenc

import (
	"context"
	"fmt"

	"github.com/phicrypt/phicrypt/internal/blind"
)

// Pseudonyms makes stable, purpose-scoped tokens for de-identified exports:
// the same value gives the same token for one purpose under one branch key
// version (records about one patient still join), unrelated tokens for
// another purpose, and no way back to the value without the key. Tokens are
// 32 characters of lower-case base32 (160 bits of HMAC-SHA-256 under a key
// derived from the branch key version, the table and the purpose).
//
// A Pseudonyms is pinned to the version it was made under: keep Version()
// with an export to reproduce its tokens later (PseudonymsAt), as long as
// that version is live.
type Pseudonyms struct {
	version string
	p       *blind.Pseudonymizer
}

// PseudonymTokenLen is the length of a token in characters.
const PseudonymTokenLen = blind.TokenLen

// Pseudonyms returns the pseudonyms for purpose (for example
// "research-extract-2026-q4") under the active branch key version.
func (t *Table) Pseudonyms(ctx context.Context, purpose string) (*Pseudonyms, error) {
	active, err := t.ActiveVersion(ctx)
	if err != nil {
		return nil, err
	}
	return t.PseudonymsAt(ctx, purpose, active)
}

// PseudonymsAt returns the pseudonyms for purpose under a given live
// version.
func (t *Table) PseudonymsAt(ctx context.Context, purpose, version string) (*Pseudonyms, error) {
	if err := checkName("purpose", purpose); err != nil {
		return nil, err
	}
	var key [blind.KeySize]byte
	defer clear(key[:])
	if err := t.deriveKey(ctx, version, key[:], purposePseudonym, purpose); err != nil {
		return nil, err
	}
	p, err := blind.NewPseudonymizer(key[:])
	if err != nil {
		return nil, err
	}
	return &Pseudonyms{version: version, p: p}, nil
}

// Version is the branch key version the tokens are made under.
func (p *Pseudonyms) Version() string { return p.version }

// Token returns the token of value.
func (p *Pseudonyms) Token(value string) string {
	var buf [PseudonymTokenLen]byte
	return string(p.p.Token(buf[:0], stringBytes(value)))
}

// AppendToken appends the token of value to dst, allocating nothing when
// dst has room for PseudonymTokenLen bytes.
func (p *Pseudonyms) AppendToken(dst, value []byte) []byte { return p.p.Token(dst, value) }

// String names the version only.
func (p *Pseudonyms) String() string { return "fieldenc.Pseudonyms(" + p.version + ")" }

// Format prints String for every verb, never key material.
func (p *Pseudonyms) Format(f fmt.State, _ rune) { f.Write([]byte(p.String())) }

// IndexAssessment describes how a blind index width fits a column.
type IndexAssessment = blind.Assessment

// RecommendIndexBits returns a blind index width for a column expected to
// hold distinct values (after normalization): N with sqrt(distinct) < 2^N <
// distinct/2, so that each index value stands for two or more real values
// (the index does not identify a patient) and a query's false positives
// stay bounded. One million distinct values give 14 bits. It fails for
// tiny domains (8 or fewer distinct values, or 16), which no index width
// protects: filter those after decrypting.
func RecommendIndexBits(distinct uint64) (int, error) { return blind.Recommend(distinct) }

// AssessIndexBits says how an index width fits a column of distinct
// values, with warnings when it leaks too much (2^N ≥ distinct/2: most
// index values identify one plaintext) or collides too often (2^N ≤
// sqrt(distinct): queries return many false positives).
func AssessIndexBits(distinct uint64, bits int) IndexAssessment { return blind.Assess(distinct, bits) }
