package audit

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func openSink(t *testing.T, dir string) *FileSink {
	t.Helper()
	s, err := OpenFileSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func truncateFile(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// TestFileSinkReopen: a log reopened from its directory carries on with
// the same records, root and numbering.
func TestFileSinkReopen(t *testing.T) {
	signer, v, _ := testKeys(t)
	h := testHasher(t)
	dir := t.TempDir()
	s := openSink(t, dir)
	l := newTestLog(t, s, signer)
	appendN(t, l, h, 0, 7)
	c7 := openCheckpoint(t, v, l)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openSink(t, dir)
	defer s.Close()
	l = newTestLog(t, s, signer)
	if got := openCheckpoint(t, v, l); got != c7 {
		t.Fatalf("reopened checkpoint %+v, want %+v", got, c7)
	}
	appendN(t, l, h, 7, 3)
	c10 := openCheckpoint(t, v, l)
	if err := v.VerifyRecords(c10, allRecords(t, l)); err != nil {
		t.Fatal(err)
	}
	p, err := l.ProveTree(7, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyConsistency(c7, c10, p); err != nil {
		t.Fatal(err)
	}
}

// TestFileSinkCrashRecovery: a crash tears the last append; reopening
// keeps every whole record, and the next checkpoint is consistent with
// the one taken before the crash.
func TestFileSinkCrashRecovery(t *testing.T) {
	tests := []struct {
		name string
		// crash damages the files of a log of 6 records whose first 5
		// were checkpointed; want is how many records survive.
		crash func(t *testing.T, dir string, size5 int64)
		want  int64
	}{
		{"record torn mid-way, no hashes", func(t *testing.T, dir string, size5 int64) {
			rec := filepath.Join(dir, recordsFile)
			truncateFile(t, rec, fileSize(t, rec)-7)
			truncateFile(t, filepath.Join(dir, hashesFile), tlog.StoredHashCount(5)*tlog.HashSize)
		}, 5},
		{"record torn in its length prefix", func(t *testing.T, dir string, size5 int64) {
			truncateFile(t, filepath.Join(dir, recordsFile), size5+2)
			truncateFile(t, filepath.Join(dir, hashesFile), tlog.StoredHashCount(5)*tlog.HashSize)
		}, 5},
		{"record torn, its hashes written", func(t *testing.T, dir string, size5 int64) {
			rec := filepath.Join(dir, recordsFile)
			truncateFile(t, rec, fileSize(t, rec)-1)
		}, 5},
		{"record whole, hashes half written", func(t *testing.T, dir string, size5 int64) {
			truncateFile(t, filepath.Join(dir, hashesFile), tlog.StoredHashCount(5)*tlog.HashSize+40)
		}, 6},
		{"record whole, no hashes", func(t *testing.T, dir string, size5 int64) {
			truncateFile(t, filepath.Join(dir, hashesFile), tlog.StoredHashCount(5)*tlog.HashSize)
		}, 6},
		{"zeros after the last record", func(t *testing.T, dir string, size5 int64) {
			rec := filepath.Join(dir, recordsFile)
			truncateFile(t, rec, fileSize(t, rec)+300)
		}, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signer, v, _ := testKeys(t)
			h := testHasher(t)
			dir := t.TempDir()
			s := openSink(t, dir)
			l := newTestLog(t, s, signer)
			appendN(t, l, h, 0, 5)
			c5 := openCheckpoint(t, v, l)
			size5 := fileSize(t, filepath.Join(dir, recordsFile))
			appendN(t, l, h, 5, 1)
			c6 := openCheckpoint(t, v, l)
			s.Close()

			tt.crash(t, dir, size5)

			s = openSink(t, dir)
			defer s.Close()
			l = newTestLog(t, s, signer)
			if got := l.Size(); got != tt.want {
				t.Fatalf("after recovery the log holds %d records, want %d", got, tt.want)
			}
			if tt.want == 6 {
				if got := openCheckpoint(t, v, l); got != c6 {
					t.Fatalf("recovered checkpoint %+v, want %+v", got, c6)
				}
			}
			appendN(t, l, h, int(tt.want), 2)
			next := openCheckpoint(t, v, l)
			if err := v.VerifyRecords(next, allRecords(t, l)); err != nil {
				t.Fatal(err)
			}
			p, err := l.ProveTree(5, next.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.VerifyConsistency(c5, next, p); err != nil {
				t.Fatalf("the checkpoint after recovery is not consistent with the one before: %v", err)
			}
			// The files are whole again: a third open changes nothing.
			before := fileSize(t, filepath.Join(dir, recordsFile))
			s.Close()
			s = openSink(t, dir)
			if s.Size() != next.Size || fileSize(t, filepath.Join(dir, recordsFile)) != before {
				t.Fatal("a second recovery changed the log")
			}
		})
	}
}

// TestFileSinkCorruption: damage before the last record is not cut away
// as if it were a torn write: opening fails with ErrCorrupt.
func TestFileSinkCorruption(t *testing.T) {
	tests := []struct {
		name  string
		crash func(t *testing.T, dir string)
	}{
		{"a byte flipped in record 2", func(t *testing.T, dir string) {
			path := filepath.Join(dir, recordsFile)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/3] ^= 0x40
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"hashes of another log", func(t *testing.T, dir string) {
			path := filepath.Join(dir, hashesFile)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for i := range b {
				b[i] ^= 0xff
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signer, _, _ := testKeys(t)
			dir := t.TempDir()
			s := openSink(t, dir)
			appendN(t, newTestLog(t, s, signer), testHasher(t), 0, 6)
			s.Close()
			tt.crash(t, dir)
			if s, err := OpenFileSink(dir); !errors.Is(err, ErrCorrupt) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("OpenFileSink = %v, want ErrCorrupt", err)
			}
		})
	}
}
