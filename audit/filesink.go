package audit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// File names inside a FileSink's directory.
const (
	recordsFile   = "records"  // the live segment
	sealedPrefix  = "records." // then the first record's index in 20 digits
	sealedDigits  = 20
	hashesFile    = "hashes"
	lockFile      = "lock"
	sealedFileMod = 0o400
)

// entryOverhead is the length prefix and checksum around each record.
const entryOverhead = 4 + 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errDirLocked is what lockDir returns when another FileSink holds the
// directory.
var errDirLocked = errors.New("the log directory is in use by another FileSink (in this process or another): close that one first")

// FileSink stores a log in a directory:
//
//   - records: the live segment, where Append writes. Per record, its
//     length (uint32, big-endian), its bytes and the CRC-32C of both;
//   - records.NNNNNNNNNNNNNNNNNNNN: sealed segments (see Rotate), in the
//     same encoding, named by the index of their first record in 20
//     decimal digits, read-only;
//   - hashes: the tree's stored hashes, 32 bytes each, in tlog's order,
//     one file for the whole log whatever its segments;
//   - lock: held (flock on Unix, an unshared open on Windows) while a
//     FileSink has the directory open, so a second OpenFileSink of the
//     same directory fails until the first is closed. (Network file
//     systems whose locks are advisory or absent do not give this.)
//
// Fsync policy: Append writes the record and fsyncs the records file,
// then writes its hashes and fsyncs the hashes file, and only then
// returns; a record is in a checkpoint only after that. So only the last
// append can be torn by a crash. OpenFileSink recovers: it cuts a torn
// record off the end of the live segment (bytes after the last whole
// record that are no longer than the entry their length prefix announces,
// or zeros) and recomputes hashes the crash kept from being written.
// Rotate fsyncs the directory after its rename and create, and every
// step of it leaves a directory that opens. Damage anywhere else is
// ErrCorrupt: restore the directory from a copy; a checkpoint tells which
// copy is whole.
//
// Rotation: a log that grows forever is split with Rotate, which seals
// the live segment under its sealed name and starts an empty one. Sealed
// segments may be copied (to archive them) but must stay in the
// directory: the hashes file covers every record, and OpenFileSink checks
// that the segments run from record 0 without a gap, that every record
// carries the index of its place, and that the hashes belong to the
// records. A segment moved or renamed away, or the live file moved aside
// as an external logrotate would, is ErrCorrupt at the next open rather
// than a log that silently starts again; Append refuses while the live
// file is not the one it opened.
//
// It keeps each record's position in memory (8 bytes a record), and
// OpenFileSink reads every segment through once.
type FileSink struct {
	mu       sync.Mutex
	dir      string
	lock     *os.File
	live     *os.File
	liveStat os.FileInfo // to see the live file moved away under us
	hashes   *os.File
	// segments[k] is where segment k starts: its first record and its
	// offset in the segments laid end to end. The last is the live one.
	segments []segment
	// offsets[i] is where record i's entry starts, in the segments laid
	// end to end; one more for the end.
	offsets []int64
	// broken is set when a failed Rotate left no live file to write.
	broken error
}

type segment struct {
	first int64 // index of its first record
	base  int64 // offset of its first byte in the segments end to end
}

func sealedName(first int64) string {
	return fmt.Sprintf("%s%0*d", sealedPrefix, sealedDigits, first)
}

// OpenFileSink opens (creating if need be) the log in dir, locks the
// directory and recovers it after a crash.
func OpenFileSink(dir string) (*FileSink, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: create the log directory: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, lockFile))
	if err != nil {
		return nil, fmt.Errorf("audit: lock the log directory: %w", err)
	}
	s := &FileSink{dir: dir, lock: lock}
	if s.hashes, err = openAppend(filepath.Join(dir, hashesFile)); err == nil {
		err = s.openLive()
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err == nil {
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

// openLive opens (creating) the live segment and notes which file it is.
func (s *FileSink) openLive() error {
	f, err := openAppend(filepath.Join(s.dir, recordsFile))
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit: stat the log file: %w", err)
	}
	s.live, s.liveStat = f, st
	return nil
}

// syncDir makes the files' directory entries durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit: open the log directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !isWindows() {
		return fmt.Errorf("audit: sync the log directory: %w", err)
	}
	return nil
}

// Close closes the files and releases the directory's lock.
func (s *FileSink) Close() error {
	var errs []error
	for _, f := range []*os.File{s.live, s.hashes, s.lock} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
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
	if err := s.checkLive(); err != nil {
		return err
	}
	end := s.offsets[len(s.offsets)-1]
	off := end - s.segments[len(s.segments)-1].base
	entry := appendEntry(make([]byte, 0, len(record)+entryOverhead), record)
	if err := writeSynced(s.live, entry, off); err != nil {
		return err
	}
	n := int64(len(s.offsets) - 1)
	if err := writeSynced(s.hashes, hashBytes(hashes), tlog.StoredHashCount(n)*tlog.HashSize); err != nil {
		// The record is whole but its hashes are not: undo it, so Size
		// and the hashes agree (recovery would recompute them otherwise).
		return errors.Join(err, s.live.Truncate(off))
	}
	s.offsets = append(s.offsets, end+int64(len(entry)))
	return nil
}

// checkLive refuses to write when the live file is no longer at its name:
// something moved it aside (an external log rotation) and records written
// now would land in a file OpenFileSink will not read.
func (s *FileSink) checkLive() error {
	if s.broken != nil {
		return s.broken
	}
	st, err := os.Stat(filepath.Join(s.dir, recordsFile))
	if err != nil || !os.SameFile(st, s.liveStat) {
		return fmt.Errorf("%w: the live records file was moved or removed while open (seal segments with FileSink.Rotate, never move them): put it back", ErrCorrupt)
	}
	return nil
}

// Rotate seals the live segment: it becomes the read-only file
// records.NNNNNNNNNNNNNNNNNNNN (the index of its first record) and an
// empty live segment takes its place. An empty live segment is left as it
// is. A crash at any step leaves a directory OpenFileSink opens whole:
// the rename is atomic, and a missing live file is created again.
func (s *FileSink) Rotate() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLive(); err != nil {
		return err
	}
	live := s.segments[len(s.segments)-1]
	n := int64(len(s.offsets) - 1)
	if live.first == n {
		return nil
	}
	// Close before renaming: Windows refuses to rename an open file.
	if err := s.live.Close(); err != nil {
		return s.breakLive(fmt.Errorf("audit: close the live segment: %w", err))
	}
	sealed := filepath.Join(s.dir, sealedName(live.first))
	if err := os.Rename(filepath.Join(s.dir, recordsFile), sealed); err != nil {
		return errors.Join(fmt.Errorf("audit: seal the live segment: %w", err), s.reopenLive())
	}
	if err := os.Chmod(sealed, sealedFileMod); err != nil {
		return s.breakLive(fmt.Errorf("audit: make the sealed segment read-only: %w", err))
	}
	if err := s.openLive(); err != nil {
		return s.breakLive(err)
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	s.segments = append(s.segments, segment{first: n, base: s.offsets[n]})
	return nil
}

func (s *FileSink) reopenLive() error {
	if err := s.openLive(); err != nil {
		return s.breakLive(err)
	}
	return nil
}

// breakLive leaves the sink unable to append (until reopened, which
// recovers) after a Rotate that failed half way.
func (s *FileSink) breakLive(err error) error {
	s.live = nil
	s.broken = fmt.Errorf("audit: a rotation failed half way (%w): close the FileSink and open it again", err)
	return err
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

// ReadRecords returns records [start, end), from whichever segments hold
// them. A sealed segment is opened by name for the read, so one moved
// away shows here as an error.
func (s *FileSink) ReadRecords(start, end int64) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := checkRange(start, end, int64(len(s.offsets)-1)); err != nil {
		return nil, err
	}
	out := make([][]byte, 0, end-start)
	for i := start; i < end; {
		k := s.segmentOf(i)
		stop := end
		if k+1 < len(s.segments) {
			stop = min(end, s.segments[k+1].first)
		}
		recs, err := s.readSegment(k, i, stop)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
		i = stop
	}
	return out, nil
}

// segmentOf returns the segment holding record i.
func (s *FileSink) segmentOf(i int64) int {
	return sort.Search(len(s.segments), func(k int) bool { return s.segments[k].first > i }) - 1
}

// readSegment reads records [start, end) from segment k.
func (s *FileSink) readSegment(k int, start, end int64) ([][]byte, error) {
	f := s.live
	if k < len(s.segments)-1 {
		name := sealedName(s.segments[k].first)
		sf, err := os.Open(filepath.Join(s.dir, name))
		if err != nil {
			return nil, fmt.Errorf("%w: sealed segment %s cannot be opened (%w): put it back", ErrCorrupt, name, err)
		}
		defer sf.Close()
		f = sf
	}
	base := s.segments[k].base
	out := make([][]byte, 0, end-start)
	for i := start; i < end; i++ {
		entry := make([]byte, s.offsets[i+1]-s.offsets[i])
		if _, err := f.ReadAt(entry, s.offsets[i]-base); err != nil {
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

// recover reads the sealed segments and the live one, cuts a torn last
// entry off the live segment, and brings the hashes file in line with the
// whole records.
func (s *FileSink) recover() error {
	firsts, err := s.sealedSegments()
	if err != nil {
		return err
	}
	s.offsets = []int64{0}
	var recs [][]byte
	for _, first := range firsts {
		if first != int64(len(recs)) {
			return fmt.Errorf("%w: the sealed segment holding record %d is missing (the next one found starts at record %d): put it back", ErrCorrupt, len(recs), first)
		}
		name := sealedName(first)
		data, err := os.ReadFile(filepath.Join(s.dir, name))
		if err != nil {
			return fmt.Errorf("audit: read the log file: %w", err)
		}
		var off int
		if recs, off, err = s.parseSegment(data, recs); err != nil {
			return err
		}
		if off < len(data) || int64(len(recs)) == first {
			return fmt.Errorf("%w: sealed segment %s is empty or damaged", ErrCorrupt, name)
		}
		if err := os.Chmod(filepath.Join(s.dir, name), sealedFileMod); err != nil {
			return fmt.Errorf("audit: make the sealed segment read-only: %w", err)
		}
	}
	data, err := io.ReadAll(io.NewSectionReader(s.live, 0, 1<<62))
	if err != nil {
		return fmt.Errorf("audit: read the log file: %w", err)
	}
	recs, off, err := s.parseSegment(data, recs)
	if err != nil {
		return err
	}
	if off < len(data) {
		if !tornTail(data[off:]) {
			return fmt.Errorf("%w: the bytes after record %d are not a record", ErrCorrupt, len(recs)-1)
		}
		if err := s.cut(s.live, int64(off)); err != nil {
			return err
		}
	}
	return s.recoverHashes(recs)
}

// sealedSegments lists the first record indexes of the sealed segments in
// the directory, in order. Other files are not the log's and are left
// alone.
func (s *FileSink) sealedSegments() ([]int64, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("audit: list the log directory: %w", err)
	}
	var firsts []int64
	for _, e := range entries {
		digits, ok := strings.CutPrefix(e.Name(), sealedPrefix)
		if !ok || len(digits) != sealedDigits || strings.Trim(digits, "0123456789") != "" {
			continue
		}
		first, err := strconv.ParseInt(digits, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: sealed segment %s is numbered past the largest index", ErrCorrupt, e.Name())
		}
		firsts = append(firsts, first)
	}
	slices.Sort(firsts)
	return firsts, nil
}

// parseSegment starts a segment after the records read so far, appends
// the whole records at the start of data to recs and their ends to
// s.offsets, and returns where the whole records stop. A version 1 record
// must carry the index of its place: a segment renamed to another place
// in the log is corruption.
func (s *FileSink) parseSegment(data []byte, recs [][]byte) ([][]byte, int, error) {
	base := s.offsets[len(s.offsets)-1]
	s.segments = append(s.segments, segment{first: int64(len(recs)), base: base})
	off := 0
	for off < len(data) {
		rec, ok := parseEntry(data[off:])
		if !ok {
			break
		}
		if len(rec) >= 9 && rec[0] == recordVersion && binary.BigEndian.Uint64(rec[1:9]) != uint64(len(recs)) {
			return nil, 0, fmt.Errorf("%w: the record at index %d carries another index: segments were renamed or reordered", ErrCorrupt, len(recs))
		}
		recs = append(recs, rec)
		off += len(rec) + entryOverhead
		s.offsets = append(s.offsets, base+int64(off))
	}
	return recs, off, nil
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
	have := st.Size() / tlog.HashSize
	n := int64(len(recs))
	// A crash leaves at most the hashes of one record past the whole
	// records (the one it tore). More means records went missing: a
	// segment moved away or the live file moved aside. Cutting the
	// hashes back would silently start the tree again.
	if have > tlog.StoredHashCount(n+1) {
		return fmt.Errorf("%w: the hashes cover more records than the %d the segments hold: a segment or the live records file was moved away or cut short; put it back", ErrCorrupt, n)
	}
	// Hashes are derived data: those of a record cut off above, or half
	// written, are dropped and recomputed from the records.
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

func isWindows() bool { return runtime.GOOS == "windows" }
