package audit

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Config says where a log stores its records and how it signs checkpoints.
type Config struct {
	// Sink stores records and hashes: a *FileSink, a *PostgresSink, a
	// *MemorySink, a *SlogMirror around one of them, or your own.
	Sink Sink
	// Signer signs checkpoints: note.NewSigner of a key from
	// note.GenerateKey. Its name is the checkpoint's origin line.
	Signer note.Signer
}

// Log is an append-only, verifiable log of events. It is safe for
// concurrent use.
type Log struct {
	mu     sync.Mutex
	sink   Sink
	signer note.Signer
}

// NewLog returns a log over c.Sink, carrying on from the records it holds.
func NewLog(c Config) (*Log, error) {
	if c.Sink == nil || c.Signer == nil {
		return nil, errors.New("audit: Config needs a Sink and a Signer")
	}
	if err := checkOrigin(c.Signer.Name()); err != nil {
		return nil, err
	}
	return &Log{sink: c.Sink, signer: c.Signer}, nil
}

// Append encodes e as the next record, stores it and returns its index.
func (l *Log) Append(e Event) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.sink.Size()
	rec, err := encodeRecord(nil, n, e)
	if err != nil {
		return 0, err
	}
	hashes, err := tlog.StoredHashes(n, rec, tlog.HashReaderFunc(l.sink.ReadHashes))
	if err != nil {
		return 0, fmt.Errorf("audit: hash record %d: %w", n, err)
	}
	if err := l.sink.Append(rec, hashes); err != nil {
		return 0, err
	}
	return n, nil
}

// Size is the number of records in the log.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sink.Size()
}

// Checkpoint returns a signed checkpoint of the whole log as it is now.
func (l *Log) Checkpoint() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.sink.Size()
	root, err := tlog.TreeHash(n, tlog.HashReaderFunc(l.sink.ReadHashes))
	if err != nil {
		return nil, fmt.Errorf("audit: hash the tree: %w", err)
	}
	c := Checkpoint{Origin: l.signer.Name(), Size: n, Root: root}
	signed, err := note.Sign(&note.Note{Text: c.body()}, l.signer)
	if err != nil {
		return nil, fmt.Errorf("audit: sign the checkpoint: %w", err)
	}
	return signed, nil
}

// Records returns the encoded records [start, end), for an auditor.
func (l *Log) Records(start, end int64) ([][]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sink.ReadRecords(start, end)
}

// ProveRecord returns the inclusion proof of record index in the tree of
// the first size records (a checkpoint's size).
func (l *Log) ProveRecord(index, size int64) (tlog.RecordProof, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkSize(size); err != nil {
		return nil, err
	}
	p, err := tlog.ProveRecord(size, index, tlog.HashReaderFunc(l.sink.ReadHashes))
	if err != nil {
		return nil, fmt.Errorf("audit: prove record %d in a tree of %d: %w", index, size, err)
	}
	return p, nil
}

// ProveTree returns the consistency proof that the tree of the first
// newSize records extends the tree of the first oldSize.
func (l *Log) ProveTree(oldSize, newSize int64) (tlog.TreeProof, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkSize(newSize); err != nil {
		return nil, err
	}
	p, err := tlog.ProveTree(newSize, oldSize, tlog.HashReaderFunc(l.sink.ReadHashes))
	if err != nil {
		return nil, fmt.Errorf("audit: prove a tree of %d extends one of %d: %w", newSize, oldSize, err)
	}
	return p, nil
}

func (l *Log) checkSize(size int64) error {
	if n := l.sink.Size(); size > n {
		return fmt.Errorf("audit: the log holds %d records, not %d", n, size)
	}
	return nil
}
