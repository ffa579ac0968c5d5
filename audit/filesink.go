package audit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// File names inside a FileSink's directory.
const (
	recordsFile = "records"
	hashesFile  = "hashes"
)

// entryOverhead is the length prefix and checksum around each record.
const entryOverhead = 4 + 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// FileSink stores a log in a directory of two append-only files:
//
//   - records: per record, its length (uint32, big-endian), its bytes and
//     the CRC-32C of both;
//   - hashes: the tree's stored hashes, 32 bytes each, in tlog's order.
//
// Fsync policy: Append writes the record and fsyncs the records file, then
// writes its hashes and fsyncs the hashes file, and only then returns; a
// record is in a checkpoint only after that. So only the last append can
// be torn by a crash. OpenFileSink recovers: it cuts a torn record off the
// end (bytes after the last whole record that are no longer than the entry
// their length prefix announces, or zeros) and recomputes hashes the crash
// kept from being written. Damage anywhere else is ErrCorrupt: restore
// the directory from a copy; a checkpoint tells which copy is whole.
//
// One process at a time may open a directory; FileSink does not lock it.
// It keeps each record's file offset in memory (8 bytes a record), and
// OpenFileSink reads the records file through once.
type FileSink struct {
	mu      sync.Mutex
	records *os.File
	hashes  *os.File
	offsets []int64 // offsets[i] is where entry i starts; one more for the end
}

// OpenFileSink opens (creating if need be) the log in dir and recovers it
// after a crash.
func OpenFileSink(dir string) (*FileSink, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: create the log directory: %w", err)
	}
	s := &FileSink{}
	var err error
	if s.records, err = openAppend(filepath.Join(dir, recordsFile)); err != nil {
		return nil, err
	}
	if s.hashes, err = openAppend(filepath.Join(dir, hashesFile)); err != nil {
		s.records.Close()
		return nil, err
	}
	if err = syncDir(dir); err == nil {
		err = s.recover()
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open the log file: %w", err)
	}
	return f, nil
}

// syncDir makes the files' directory entries durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit: open the log directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("audit: sync the log directory: %w", err)
	}
	return nil
}

// Close closes both files.
func (s *FileSink) Close() error {
	return errors.Join(s.records.Close(), s.hashes.Close())
}

// Size is the number of whole records stored.
func (s *FileSink) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.offsets) - 1)
}

// Append writes record then its hashes, fsyncing each (see FileSink).
func (s *FileSink) Append(record []byte, hashes []tlog.Hash) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	end := s.offsets[len(s.offsets)-1]
	entry := appendEntry(make([]byte, 0, len(record)+entryOverhead), record)
	if err := writeSynced(s.records, entry, end); err != nil {
		return err
	}
	n := int64(len(s.offsets) - 1)
	if err := writeSynced(s.hashes, hashBytes(hashes), tlog.StoredHashCount(n)*tlog.HashSize); err != nil {
		// The record is whole but its hashes are not: undo it, so Size
		// and the hashes agree (recovery would recompute them otherwise).
		return errors.Join(err, s.records.Truncate(end))
	}
	s.offsets = append(s.offsets, end+int64(len(entry)))
	return nil
}

func appendEntry(dst, record []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(record)))
	dst = append(dst, record...)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[len(dst)-len(record)-4:], castagnoli))
}

func hashBytes(hashes []tlog.Hash) []byte {
	b := make([]byte, 0, len(hashes)*tlog.HashSize)
	for _, h := range hashes {
		b = append(b, h[:]...)
	}
	return b
}

// writeSynced writes b at off and fsyncs; on failure it cuts the file
// back to off so a retry starts clean.
func writeSynced(f *os.File, b []byte, off int64) error {
	_, err := f.WriteAt(b, off)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return fmt.Errorf("audit: write the log file: %w", errors.Join(err, f.Truncate(off)))
	}
	return nil
}

// ReadHashes returns the stored hashes at indexes.
func (s *FileSink) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readHashes(indexes)
}

func (s *FileSink) readHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if _, err := s.hashes.ReadAt(out[i][:], x*tlog.HashSize); err != nil {
			return nil, fmt.Errorf("audit: read stored hash %d: %w", x, err)
		}
	}
	return out, nil
}

// ReadRecords returns records [start, end).
func (s *FileSink) ReadRecords(start, end int64) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := checkRange(start, end, int64(len(s.offsets)-1)); err != nil {
		return nil, err
	}
	out := make([][]byte, 0, end-start)
	for i := start; i < end; i++ {
		entry := make([]byte, s.offsets[i+1]-s.offsets[i])
		if _, err := s.records.ReadAt(entry, s.offsets[i]); err != nil {
			return nil, fmt.Errorf("audit: read record %d: %w", i, err)
		}
		rec, ok := parseEntry(entry)
		if !ok || len(rec) != len(entry)-entryOverhead {
			return nil, fmt.Errorf("%w: record %d fails its checksum", ErrCorrupt, i)
		}
		out = append(out, rec)
	}
	return out, nil
}

// parseEntry returns the record at the start of b, if a whole entry with a
// good checksum is there.
func parseEntry(b []byte) ([]byte, bool) {
	if len(b) < entryOverhead {
		return nil, false
	}
	n := int(binary.BigEndian.Uint32(b))
	if n > MaxRecordSize || len(b) < n+entryOverhead {
		return nil, false
	}
	sum := binary.BigEndian.Uint32(b[4+n:])
	if crc32.Checksum(b[:4+n], castagnoli) != sum {
		return nil, false
	}
	return b[4 : 4+n], true
}

// recover reads the records file, cuts a torn last entry off, and brings
// the hashes file in line with the whole records.
func (s *FileSink) recover() error {
	data, err := io.ReadAll(io.NewSectionReader(s.records, 0, 1<<62))
	if err != nil {
		return fmt.Errorf("audit: read the log file: %w", err)
	}
	s.offsets = []int64{0}
	var recs [][]byte
	off := 0
	for off < len(data) {
		rec, ok := parseEntry(data[off:])
		if !ok {
			break
		}
		recs = append(recs, rec)
		off += len(rec) + entryOverhead
		s.offsets = append(s.offsets, int64(off))
	}
	if off < len(data) {
		if !tornTail(data[off:]) {
			return fmt.Errorf("%w: the bytes after record %d are not a record", ErrCorrupt, len(recs)-1)
		}
		if err := s.cut(s.records, int64(off)); err != nil {
			return err
		}
	}
	return s.recoverHashes(recs)
}

// tornTail reports whether the bytes after the last whole record can be
// what a crash left of one append: no longer than the entry its length
// prefix announces, or zeros no longer than the largest entry. Anything
// else (such as whole records after a damaged one) is corruption, which
// recovery must not cut away.
func tornTail(tail []byte) bool {
	if len(tail) < 4 {
		return true
	}
	if n := int(binary.BigEndian.Uint32(tail)); n <= MaxRecordSize && len(tail) <= n+entryOverhead {
		return true
	}
	return len(tail) <= MaxRecordSize+entryOverhead && !slices.ContainsFunc(tail, func(b byte) bool { return b != 0 })
}

// recoverHashes drops hashes of a record whose hashes were half written and
// recomputes those of every record that has none.
func (s *FileSink) recoverHashes(recs [][]byte) error {
	st, err := s.hashes.Stat()
	if err != nil {
		return fmt.Errorf("audit: stat the hashes file: %w", err)
	}
	// Hashes are derived data: those of a record cut off above, or half
	// written, are dropped and recomputed from the records.
	have := st.Size() / tlog.HashSize
	n := int64(len(recs))
	i := n
	for i > 0 && tlog.StoredHashCount(i) > have {
		i--
	}
	if err := s.checkLeaf(i, recs); err != nil {
		return err
	}
	if st.Size() != tlog.StoredHashCount(i)*tlog.HashSize {
		if err := s.cut(s.hashes, tlog.StoredHashCount(i)*tlog.HashSize); err != nil {
			return err
		}
	}
	for ; i < n; i++ {
		hs, err := tlog.StoredHashes(i, recs[i], tlog.HashReaderFunc(s.readHashes))
		if err != nil {
			return fmt.Errorf("audit: recompute the hashes of record %d: %w", i, err)
		}
		if err := writeSynced(s.hashes, hashBytes(hs), tlog.StoredHashCount(i)*tlog.HashSize); err != nil {
			return err
		}
	}
	return nil
}

// checkLeaf checks that the stored leaf hash of record i-1, the last one
// with hashes, is that record's: the two files belong together.
func (s *FileSink) checkLeaf(i int64, recs [][]byte) error {
	if i == 0 {
		return nil
	}
	h, err := s.readHashes([]int64{tlog.StoredHashIndex(0, i-1)})
	if err != nil {
		return err
	}
	if h[0] != tlog.RecordHash(recs[i-1]) {
		return fmt.Errorf("%w: the hashes file does not match the records file", ErrCorrupt)
	}
	return nil
}

func (s *FileSink) cut(f *os.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("audit: cut a torn write off the log file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("audit: sync the log file: %w", err)
	}
	return nil
}
