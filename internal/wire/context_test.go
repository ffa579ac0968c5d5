package wire

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// The ESDK's serialization, byte by byte: a pair count, then pairs sorted by
// key bytes, each string with a 2-byte length.
func TestAppendContextLayout(t *testing.T) {
	got, err := AppendContext([]byte{0xAA}, map[string]string{"b": "2", "a": "1", "é": "x"})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hex.DecodeString("AA" + "0003" + "0001" + "61" + "0001" + "31" + "0001" + "62" + "0001" + "32" + "0002" + "c3a9" + "0001" + "78")
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x\nwant %x", got, want)
	}
	empty, err := AppendContext(nil, nil)
	if err != nil || len(empty) != 0 {
		t.Fatalf("an empty context serializes to nothing, got %x, %v", empty, err)
	}
}

func TestContextRoundTripAndRefusals(t *testing.T) {
	in := map[string]string{"tenant": "general-hospital", "病院": "総合", "empty": ""}
	for i := range 20 {
		in[strings.Repeat("k", i+1)] = strings.Repeat("v", i)
	}
	b, err := AppendContext(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ParseContext(b)
	if err != nil || len(out) != len(in) {
		t.Fatalf("round trip: %v, %d pairs", err, len(out))
	}
	for k, v := range in {
		if out[k] != v {
			t.Fatalf("pair %q changed", k)
		}
	}
	if c, err := ParseContext([]byte{0, 0}); err != nil || len(c) != 0 {
		t.Fatal("the legacy zero-count form is an empty context")
	}
	for _, bad := range []string{"00", "0001", "000100010061", "0002000161000162" + "000161000162", "00010000" + "0000", "000100016100016299"} {
		raw, _ := hex.DecodeString(bad)
		if _, err := ParseContext(raw); err == nil {
			t.Errorf("ParseContext(%s) accepted a malformed context", bad)
		}
	}
	if _, err := AppendContext(nil, map[string]string{"": "x"}); err == nil {
		t.Error("an empty key was accepted")
	}
	if _, err := AppendContext(nil, map[string]string{"k": strings.Repeat("v", 70000)}); err == nil {
		t.Error("an oversized value was accepted")
	}
	if _, err := AppendContext(nil, map[string]string{"k": "\xff"}); err == nil {
		t.Error("a non-UTF-8 value was accepted")
	}
}

func BenchmarkAppendContext(b *testing.B) {
	ctx := map[string]string{"tenant": "general-hospital", "table": "patients", "column": "notes"}
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		AppendContext(dst[:0], ctx)
	}
}
