package keystore

import "time"

// Record is a named value of a kind that a store keeps beside branch keys.
//
// TEMPORARY (branch wt-quorum): the keystore.Records work on another branch
// declares this type; delete this file when that branch is merged.
type Record struct {
	Kind, Name string
	Value      []byte
	Revision   uint64
	UpdatedAt  time.Time
}
