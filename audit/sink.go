package audit

import (
	"fmt"
	"slices"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// Sink stores a log's records and the tree's stored hashes (see
// tlog.StoredHashes). A Log calls it under its own lock, one call at a
// time, so a Sink need not be safe for concurrent use by itself.
//
// Append must be all or nothing as far as a later Size sees: after a
// crash, Size counts only records whose hashes are stored too.
type Sink interface {
	// Size is the number of records stored.
	Size() int64
	// Append stores record number Size() and the hashes
	// tlog.StoredHashes returned for it, durably before it returns.
	Append(record []byte, hashes []tlog.Hash) error
	// ReadHashes returns the stored hashes at the given indexes.
	ReadHashes(indexes []int64) ([]tlog.Hash, error)
	// ReadRecords returns records [start, end).
	ReadRecords(start, end int64) ([][]byte, error)
}

// MemorySink keeps a log in memory, for tests and short-lived logs.
type MemorySink struct {
	mu      sync.Mutex
	records [][]byte
	hashes  []tlog.Hash
}

// NewMemorySink returns an empty MemorySink.
func NewMemorySink() *MemorySink { return &MemorySink{} }

// Size is the number of records stored.
func (m *MemorySink) Size() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.records))
}

// Append stores a copy of record and its hashes.
func (m *MemorySink) Append(record []byte, hashes []tlog.Hash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.records = append(m.records, slices.Clone(record))
	m.hashes = append(m.hashes, hashes...)
	return nil
}

// ReadHashes returns the stored hashes at indexes.
func (m *MemorySink) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return readHashes(m.hashes, indexes)
}

func readHashes(all []tlog.Hash, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(all)) {
			return nil, fmt.Errorf("audit: stored hash %d is not in the log (it holds %d)", x, len(all))
		}
		out[i] = all[x]
	}
	return out, nil
}

// ReadRecords returns copies of records [start, end).
func (m *MemorySink) ReadRecords(start, end int64) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := checkRange(start, end, int64(len(m.records))); err != nil {
		return nil, err
	}
	out := make([][]byte, 0, end-start)
	for _, r := range m.records[start:end] {
		out = append(out, slices.Clone(r))
	}
	return out, nil
}

func checkRange(start, end, size int64) error {
	if start < 0 || start > end || end > size {
		return fmt.Errorf("audit: records [%d, %d) are not in a log of %d", start, end, size)
	}
	return nil
}
