package audit_test

import (
	"crypto/rand"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/phicrypt/phicrypt/audit"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A log that grows forever is split with Rotate; the sealed segments stay
// in the directory, read-only, and the log reads and verifies across them.
func ExampleFileSink_Rotate() {
	dir, err := os.MkdirTemp("", "audit")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	skey, vkey, _ := note.GenerateKey(rand.Reader, "audit.example.org/phicrypt")
	signer, _ := note.NewSigner(skey)
	verifier, _ := audit.NewVerifier(vkey)
	hasher, _ := audit.NewHasher([]byte("an example key, 32 bytes or more"))
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

	sink, err := audit.OpenFileSink(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()
	auditLog, _ := audit.NewLog(audit.Config{Sink: sink, Signer: signer})
	for day := range 3 {
		auditLog.Append(hasher.KeyUse(now.AddDate(0, 0, day), "svc-billing", "Decrypt", "patient-00042", nil))
		if err := sink.Rotate(); err != nil { // say, at midnight
			log.Fatal(err)
		}
	}
	sealed, _ := filepath.Glob(filepath.Join(dir, "records.*"))
	fmt.Println(len(sealed), "sealed segments")

	_, err = audit.OpenFileSink(dir)
	fmt.Println("a second open:", err != nil)

	signed, _ := auditLog.Checkpoint()
	checkpoint, _ := verifier.Open(signed)
	records, _ := auditLog.Records(0, checkpoint.Size)
	fmt.Println(verifier.VerifyRecords(checkpoint, records))
	// Output:
	// 3 sealed segments
	// a second open: true
	// <nil>
}

// A SlogMirror copies each stored record to a logger, as digests and
// principal names: never a branch key id or a context value. The log
// itself, not the mirror, is what an auditor verifies.
func ExampleNewSlogMirror() {
	skey, _, _ := note.GenerateKey(rand.Reader, "audit.example.org/phicrypt")
	signer, _ := note.NewSigner(skey)
	hasher, _ := audit.NewHasher([]byte("an example key, 32 bytes or more"))
	// Drop the handler's own time so the output is the same every run.
	handler := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	mirror := audit.NewSlogMirror(audit.NewMemorySink(), slog.New(handler))
	auditLog, _ := audit.NewLog(audit.Config{Sink: mirror, Signer: signer})
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	auditLog.Append(hasher.Denial(now, "svc-billing", "destroy", "patient-00042", "not a custodian"))
	mirror.Close() // waits for the logger
	// Output:
	// level=INFO msg="audit record" audit.index=0 audit.time=2026-12-06T12:00:00.000Z audit.kind=denial audit.actor=svc-billing audit.operation=destroy audit.key=df8cf2bab81ddd9f5ae03551618b3928bf0ba48a0a1ef9346487d47a46ee498d audit.reason="not a custodian"
}

// kvSink keeps a log in any key-value store (here a map): records under
// "r/<index>", stored hashes under "h/<index>". A real one writes a
// record and its hashes in one atomic batch, so that after a crash Size
// counts only records whose hashes are stored too.
type kvSink struct {
	kv   map[string][]byte
	size int64
}

func (s *kvSink) Size() int64 { return s.size }

func (s *kvSink) Append(record []byte, hashes []tlog.Hash) error {
	first := tlog.StoredHashCount(s.size)
	for i, h := range hashes {
		s.kv["h/"+strconv.FormatInt(first+int64(i), 10)] = h[:]
	}
	s.kv["r/"+strconv.FormatInt(s.size, 10)] = record
	s.size++
	return nil
}

func (s *kvSink) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		b, ok := s.kv["h/"+strconv.FormatInt(x, 10)]
		if !ok {
			return nil, fmt.Errorf("stored hash %d is missing", x)
		}
		out[i] = tlog.Hash(b)
	}
	return out, nil
}

func (s *kvSink) ReadRecords(start, end int64) ([][]byte, error) {
	if start < 0 || start > end || end > s.size {
		return nil, fmt.Errorf("records [%d, %d) are not in a log of %d", start, end, s.size)
	}
	var out [][]byte
	for i := start; i < end; i++ {
		out = append(out, s.kv["r/"+strconv.FormatInt(i, 10)])
	}
	return out, nil
}

// A Sink of your own: four methods over whatever store the service
// already runs. The Log calls them one at a time and does the hashing.
func ExampleSink() {
	skey, vkey, _ := note.GenerateKey(rand.Reader, "audit.example.org/phicrypt")
	signer, _ := note.NewSigner(skey)
	verifier, _ := audit.NewVerifier(vkey)
	hasher, _ := audit.NewHasher([]byte("an example key, 32 bytes or more"))
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

	var sink audit.Sink = &kvSink{kv: make(map[string][]byte)}
	auditLog, _ := audit.NewLog(audit.Config{Sink: sink, Signer: signer})
	for range 5 {
		auditLog.Append(hasher.KeyUse(now, "svc-billing", "Decrypt", "patient-00042", nil))
	}
	signed, _ := auditLog.Checkpoint()
	checkpoint, _ := verifier.Open(signed)
	records, _ := auditLog.Records(0, checkpoint.Size)
	proof, _ := auditLog.ProveRecord(3, checkpoint.Size)
	fmt.Println(checkpoint.Size, verifier.VerifyRecords(checkpoint, records),
		verifier.VerifyRecord(checkpoint, 3, records[3], proof))
	// Output: 5 <nil> <nil>
}
