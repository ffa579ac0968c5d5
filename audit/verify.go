package audit

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Verifier checks a log's checkpoints, records and proofs with the log's
// public key alone: it needs neither the signing key nor the hash key.
type Verifier struct {
	key note.Verifier
}

// NewVerifier returns a verifier for the log whose verifier key (from
// note.GenerateKey: "<name>+<hash>+<key>") is vkey.
func NewVerifier(vkey string) (*Verifier, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("audit: the log's verifier key is malformed: %w", err)
	}
	if err := checkOrigin(v.Name()); err != nil {
		return nil, err
	}
	return &Verifier{key: v}, nil
}

// Open checks a signed checkpoint's signature and returns what it says.
func (v *Verifier) Open(signed []byte) (Checkpoint, error) {
	n, err := note.Open(signed, note.VerifierList(v.key))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return Checkpoint{}, ErrBadSignature
		}
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrMalformedCheckpoint, err)
	}
	c, err := parseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.key.Name() {
		return Checkpoint{}, fmt.Errorf("%w: its origin is not the key's name", ErrMalformedCheckpoint)
	}
	return c, nil
}

// VerifyRecord checks that record sits at index in c's tree, with the
// proof from Log.ProveRecord(index, c.Size).
func (v *Verifier) VerifyRecord(c Checkpoint, index int64, record []byte, proof tlog.RecordProof) error {
	if index < 0 || index >= c.Size {
		return fmt.Errorf("%w: index %d is outside a tree of %d", ErrNotIncluded, index, c.Size)
	}
	if err := tlog.CheckRecord(proof, c.Size, c.Root, index, tlog.RecordHash(record)); err != nil {
		return fmt.Errorf("%w (record %d)", ErrNotIncluded, index)
	}
	return nil
}

// VerifyConsistency checks that newer's tree extends older's, with the
// proof from Log.ProveTree(older.Size, newer.Size): the log was only
// appended to between them. Otherwise it returns ErrFork.
func (v *Verifier) VerifyConsistency(older, newer Checkpoint, proof tlog.TreeProof) error {
	if older.Origin != newer.Origin {
		return fmt.Errorf("audit: the checkpoints are of two logs")
	}
	if older.Size > newer.Size {
		return fmt.Errorf("audit: the older checkpoint (%d records) is larger than the newer (%d): swap them", older.Size, newer.Size)
	}
	if older.Size == newer.Size {
		if older.Root != newer.Root {
			return fmt.Errorf("%w: two roots for %d records", ErrFork, older.Size)
		}
		return nil
	}
	if err := tlog.CheckTree(proof, newer.Size, newer.Root, older.Size, older.Root); err != nil {
		return fmt.Errorf("%w: %d records do not extend %d", ErrFork, newer.Size, older.Size)
	}
	return nil
}

// VerifyRecords checks a copy of the log's records (all of them, from
// index 0) against checkpoint c: every record parses, the record indexes
// run 0, 1, 2, ... and the first c.Size records hash to c.Root. Records
// past c.Size are checked for order only; a later checkpoint covers them.
//
// It names the first evidence of tampering it meets: a repeated index is
// ErrInserted; indexes out of order are ErrReordered when they are all
// there and ErrInserted when one is foreign; indexes in order with a gap
// are ErrDeleted; too few records are ErrTruncated; anything else, such as
// an edit or a rewrite of every later index, is ErrEdited.
func (v *Verifier) VerifyRecords(c Checkpoint, records [][]byte) error {
	indexes := make([]int64, len(records))
	for i, b := range records {
		r, err := ParseRecord(b)
		if err != nil {
			return fmt.Errorf("%w: position %d does not parse", ErrEdited, i)
		}
		indexes[i] = r.Index
	}
	if err := checkIndexes(indexes); err != nil {
		return err
	}
	if int64(len(records)) < c.Size {
		return fmt.Errorf("%w: %d records, the checkpoint covers %d", ErrTruncated, len(records), c.Size)
	}
	root, err := rootOf(records[:c.Size])
	if err != nil {
		return err
	}
	if root != c.Root {
		return fmt.Errorf("%w (within the first %d records)", ErrEdited, c.Size)
	}
	return nil
}

// checkIndexes classifies a sequence of record indexes that is not
// 0, 1, 2, ... (see VerifyRecords).
func checkIndexes(indexes []int64) error {
	seen := make(map[int64]bool, len(indexes))
	for i, x := range indexes {
		if seen[x] {
			return fmt.Errorf("%w: index %d again at position %d", ErrInserted, x, i)
		}
		seen[x] = true
	}
	sorted := slices.IsSorted(indexes)
	for i, x := range indexes {
		switch {
		case x == int64(i):
			continue
		case sorted:
			return fmt.Errorf("%w: position %d holds index %d", ErrDeleted, i, x)
		case isPermutation(seen, len(indexes)):
			return fmt.Errorf("%w: position %d holds index %d", ErrReordered, i, x)
		default:
			return fmt.Errorf("%w: position %d holds index %d out of order", ErrInserted, i, x)
		}
	}
	return nil
}

func isPermutation(seen map[int64]bool, n int) bool {
	for i := range n {
		if !seen[int64(i)] {
			return false
		}
	}
	return true
}

// rootOf computes the RFC 6962 root of records with tlog, in memory.
func rootOf(records [][]byte) (tlog.Hash, error) {
	var stored []tlog.Hash
	read := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) { return readHashes(stored, ix) })
	for i, r := range records {
		hs, err := tlog.StoredHashes(int64(i), r, read)
		if err != nil {
			return tlog.Hash{}, fmt.Errorf("audit: hash record %d: %w", i, err)
		}
		stored = append(stored, hs...)
	}
	return tlog.TreeHash(int64(len(records)), read)
}
