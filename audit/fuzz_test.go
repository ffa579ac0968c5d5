package audit

import (
	"bytes"
	"testing"
)

// FuzzParseRecord: ParseRecord never panics, and what it accepts is the
// one canonical encoding of what it returns.
func FuzzParseRecord(f *testing.F) {
	h := testHasher(f)
	for i := range 5 {
		b, err := encodeRecord(nil, int64(i), testEvent(h, i))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			return
		}
		again, err := encodeRecord(nil, r.Index, r.Event)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted a non-canonical record (%v)", err)
		}
	})
}
