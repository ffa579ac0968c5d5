package audit

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestFileSinkLock: a second OpenFileSink of a directory fails with a
// clear error while the first is open, and succeeds once it is closed.
func TestFileSinkLock(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir)
	second, err := OpenFileSink(dir)
	if err == nil {
		second.Close()
		t.Fatal("a second OpenFileSink of an open directory succeeded")
	}
	if !strings.Contains(err.Error(), "in use by another FileSink") {
		t.Fatalf("second OpenFileSink = %v, want an error saying the directory is in use", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openSink(t, dir)
	s.Close()
}

// rotatedLog builds a log of 9 records in three segments: records 0-3 and
// 4-6 sealed, 7-8 live. It returns the closed directory and a checkpoint
// of all 9.
func rotatedLog(t *testing.T) (string, Checkpoint) {
	t.Helper()
	signer, v, _ := testKeys(t)
	h := testHasher(t)
	dir := t.TempDir()
	s := openSink(t, dir)
	defer s.Close()
	l := newTestLog(t, s, signer)
	appendN(t, l, h, 0, 4)
	mustRotate(t, s)
	appendN(t, l, h, 4, 3)
	mustRotate(t, s)
	mustRotate(t, s) // an empty live segment is left as it is
	appendN(t, l, h, 7, 2)
	return dir, openCheckpoint(t, v, l)
}

func mustRotate(t *testing.T, s *FileSink) {
	t.Helper()
	if err := s.Rotate(); err != nil {
		t.Fatal(err)
	}
}

// TestFileSinkRotate: sealed segments are read-only files named by their
// first record; the log reads, proves and verifies across them, and a
// reopened log carries on with the same root.
func TestFileSinkRotate(t *testing.T) {
	signer, v, _ := testKeys(t)
	h := testHasher(t)
	dir := t.TempDir()
	s := openSink(t, dir)
	l := newTestLog(t, s, signer)
	appendN(t, l, h, 0, 4)
	c4 := openCheckpoint(t, v, l)
	mustRotate(t, s)
	appendN(t, l, h, 4, 3)
	mustRotate(t, s)
	mustRotate(t, s)
	appendN(t, l, h, 7, 2)
	c9 := openCheckpoint(t, v, l)

	for _, first := range []int64{0, 4} {
		st, err := os.Stat(filepath.Join(dir, sealedName(first)))
		if err != nil {
			t.Fatalf("sealed segment of record %d: %v", first, err)
		}
		if runtime.GOOS != "windows" && st.Mode().Perm() != sealedFileMod {
			t.Errorf("sealed segment of record %d has mode %v, want read-only", first, st.Mode().Perm())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, sealedName(7))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the live segment was sealed (%v)", err)
	}
	recs := allRecords(t, l)
	if err := v.VerifyRecords(c9, recs); err != nil {
		t.Fatal(err)
	}
	// A range across both boundaries.
	mid, err := l.Records(2, 8)
	if err != nil || len(mid) != 6 || string(mid[0]) != string(recs[2]) || string(mid[5]) != string(recs[7]) {
		t.Fatalf("Records(2, 8) across segments: %d records, %v", len(mid), err)
	}
	for i := range c9.Size {
		p, err := l.ProveRecord(i, c9.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.VerifyRecord(c9, i, recs[i], p); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	s = openSink(t, dir)
	defer s.Close()
	l = newTestLog(t, s, signer)
	if got := openCheckpoint(t, v, l); got != c9 {
		t.Fatalf("reopened checkpoint %+v, want %+v", got, c9)
	}
	appendN(t, l, h, 9, 2)
	c11 := openCheckpoint(t, v, l)
	if err := v.VerifyRecords(c11, allRecords(t, l)); err != nil {
		t.Fatal(err)
	}
	p, err := l.ProveTree(c4.Size, c11.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyConsistency(c4, c11, p); err != nil {
		t.Fatal(err)
	}
}

// TestFileSinkRotateCrash: a crash during or after a rotation leaves a
// directory that reopens whole, consistent with the checkpoint before.
func TestFileSinkRotateCrash(t *testing.T) {
	tests := []struct {
		name  string
		crash func(t *testing.T, dir string)
		want  int64
	}{
		{"after the rename, before the new live file", func(t *testing.T, dir string) {
			// A Rotate of records 7 and 8 that crashed after its rename.
			if err := os.Rename(filepath.Join(dir, recordsFile), filepath.Join(dir, sealedName(7))); err != nil {
				t.Fatal(err)
			}
		}, 9},
		{"after the rename, before the chmod", func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, sealedName(4)), 0o600); err != nil {
				t.Fatal(err)
			}
		}, 9},
		{"a torn record in the live segment", func(t *testing.T, dir string) {
			live := filepath.Join(dir, recordsFile)
			truncateFile(t, live, fileSize(t, live)-5)
		}, 8},
		{"a live record with no hashes", func(t *testing.T, dir string) {
			truncateFile(t, filepath.Join(dir, hashesFile), tlog.StoredHashCount(8)*tlog.HashSize)
		}, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signer, v, _ := testKeys(t)
			h := testHasher(t)
			dir, c9 := rotatedLog(t)
			want := tt.want
			tt.crash(t, dir)
			s := openSink(t, dir)
			defer s.Close()
			l := newTestLog(t, s, signer)
			if got := l.Size(); got != want {
				t.Fatalf("after recovery the log holds %d records, want %d", got, want)
			}
			if want == 9 {
				if got := openCheckpoint(t, v, l); got != c9 {
					t.Fatalf("recovered checkpoint %+v, want %+v", got, c9)
				}
			}
			if runtime.GOOS != "windows" {
				st, err := os.Stat(filepath.Join(dir, sealedName(4)))
				if err != nil || st.Mode().Perm() != sealedFileMod {
					t.Fatalf("after recovery the sealed segment is not read-only (%v)", err)
				}
			}
			appendN(t, l, h, int(want), 2)
			mustRotate(t, s)
			appendN(t, l, h, int(want)+2, 1)
			next := openCheckpoint(t, v, l)
			if err := v.VerifyRecords(next, allRecords(t, l)); err != nil {
				t.Fatal(err)
			}
			p, err := l.ProveTree(8, next.Size)
			if err != nil {
				t.Fatal(err)
			}
			old := c9
			old.Size = 8
			old.Root = rootOfPrefix(t, l, 8)
			if err := v.VerifyConsistency(old, next, p); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// rootOfPrefix is the root of the log's first n records, from the records.
func rootOfPrefix(t *testing.T, l *Log, n int64) tlog.Hash {
	t.Helper()
	recs, err := l.Records(0, n)
	if err != nil {
		t.Fatal(err)
	}
	root, err := rootOf(recs)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestFileSinkRotationDetected: a segment moved away (as an external log
// rotation would) is ErrCorrupt, not a log that silently starts again.
func TestFileSinkRotationDetected(t *testing.T) {
	move := func(t *testing.T, dir, from, to string) {
		t.Helper()
		if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		crash func(t *testing.T, dir string)
	}{
		{"the first sealed segment archived", func(t *testing.T, dir string) {
			move(t, dir, sealedName(0), "records-0.gz")
		}},
		{"a middle sealed segment archived", func(t *testing.T, dir string) {
			move(t, dir, sealedName(4), "records-4.gz")
		}},
		{"the live file moved aside (logrotate)", func(t *testing.T, dir string) {
			move(t, dir, recordsFile, "records.1")
		}},
		{"the live file moved aside and the last sealed segment too", func(t *testing.T, dir string) {
			move(t, dir, recordsFile, "records.1")
			move(t, dir, sealedName(4), "records.2")
		}},
		{"a sealed segment renamed to another place", func(t *testing.T, dir string) {
			move(t, dir, sealedName(4), sealedName(5))
		}},
		{"two sealed segments swapped", func(t *testing.T, dir string) {
			move(t, dir, sealedName(0), "tmp")
			move(t, dir, sealedName(4), sealedName(0))
			move(t, dir, "tmp", sealedName(4))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, _ := rotatedLog(t)
			tt.crash(t, dir)
			s, err := OpenFileSink(dir)
			if !errors.Is(err, ErrCorrupt) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("OpenFileSink = %v, want ErrCorrupt", err)
			}
		})
	}

	t.Run("while open", func(t *testing.T) {
		signer, _, _ := testKeys(t)
		h := testHasher(t)
		dir, _ := rotatedLog(t)
		s := openSink(t, dir)
		defer s.Close()
		l := newTestLog(t, s, signer)
		move(t, dir, sealedName(0), "records-0.gz")
		if _, err := l.Records(0, 9); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Records with a sealed segment moved away = %v, want ErrCorrupt", err)
		}
		move(t, dir, "records-0.gz", sealedName(0))
		move(t, dir, recordsFile, "records.1")
		if _, err := l.Append(testEvent(h, 9)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Append with the live file moved aside = %v, want ErrCorrupt", err)
		}
		if err := s.Rotate(); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Rotate with the live file moved aside = %v, want ErrCorrupt", err)
		}
		move(t, dir, "records.1", recordsFile)
		if _, err := l.Append(testEvent(h, 9)); err != nil {
			t.Fatalf("Append with the live file back: %v", err)
		}
	})
}
