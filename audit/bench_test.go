package audit_test

import (
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/audit"
	"golang.org/x/mod/sumdb/note"
)

// BenchmarkAppend measures one KeyUse record appended to a log: in memory,
// and to a FileSink, which fsyncs both of its files per record (so an
// audited KMS call costs at least that much more).
func BenchmarkAppend(b *testing.B) {
	skey, _, err := note.GenerateKey(nil, "bench.example/audit")
	if err != nil {
		b.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		b.Fatal(err)
	}
	h, err := audit.NewHasher(make([]byte, audit.MinHashKeySize))
	if err != nil {
		b.Fatal(err)
	}
	ctx := map[string]string{"tenant": "general-hospital", "purpose": "treatment"}
	for _, tc := range []struct {
		name string
		sink func(b *testing.B) audit.Sink
	}{
		{"memory", func(*testing.B) audit.Sink { return audit.NewMemorySink() }},
		{"file", func(b *testing.B) audit.Sink {
			s, err := audit.OpenFileSink(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			log, err := audit.NewLog(audit.Config{Sink: tc.sink(b), Signer: signer})
			if err != nil {
				b.Fatal(err)
			}
			e := h.KeyUse(time.Now(), "svc-patients", "Decrypt", "patient-4711", ctx)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := log.Append(e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
