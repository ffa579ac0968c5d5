package phicrypt

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/phicrypt/phicrypt/internal/wire"
)

// contextSeeds are serialized contexts, valid and not: sorted, unsorted,
// duplicate, empty key, non-UTF-8, truncated, trailing bytes, the legacy
// empty form.
var contextSeeds = []string{
	"", "00", "0000", "000000", "0001", "000100016100016299",
	"0001" + "0001" + "61" + "0001" + "31",
	"0002" + "0001" + "61" + "0001" + "31" + "0001" + "62" + "0000",
	"0002" + "0001" + "62" + "0001" + "31" + "0001" + "61" + "0000", // unsorted
	"0002" + "0001" + "61" + "0001" + "31" + "0001" + "61" + "0000", // duplicate
	"0002" + "0001" + "61" + "0000" + "0002" + "6161" + "0000",
	"0001" + "0000" + "0001" + "31", // empty key
	"0001" + "0001" + "ff" + "0000", // non-UTF-8 key
	"0001" + "0001" + "61" + "0001" + "ff",
	"0003" + "0001" + "61" + "0000" + "0001" + "63" + "0000" + "0001" + "62" + "0000",
	"0001" + "0015" + hex.EncodeToString([]byte(publicKeyContextKey)) + "0001" + "41",
}

// scanContext and contextValue agree with wire.ParseContext, the reference.
func FuzzContextView(f *testing.F) {
	for _, s := range contextSeeds {
		raw, err := hex.DecodeString(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkContextView(t, raw)
	})
}

func checkContextView(t *testing.T, raw []byte) {
	want, err := wire.ParseContext(raw)
	valid, sorted := scanContext(raw)
	if sorted && valid != (err == nil) {
		t.Fatalf("%x: scanContext says valid=%v, wire.ParseContext %v", raw, valid, err)
	}
	if err != nil {
		return
	}
	if !sorted && isCanonical(t, want, raw) {
		t.Fatalf("%x: a context in the ESDK's order was not read in place", raw)
	}
	for k, v := range want {
		got, ok := contextValue(raw, k)
		if !ok || string(got) != v {
			t.Fatalf("%x: contextValue(%q) = %q, %v; want %q", raw, k, got, ok, v)
		}
	}
	if _, ok := contextValue(raw, "absent key"); ok != hasKey(want, "absent key") {
		t.Fatalf("%x: contextValue found a key the context lacks", raw)
	}
}

// isCanonical reports that raw is what wire.AppendContext writes for ctx.
func isCanonical(t *testing.T, ctx map[string]string, raw []byte) bool {
	b, err := wire.AppendContext(nil, ctx)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(b, raw)
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// A header whose context is out of order (another writer) is accepted
// through the map; one with a duplicate key is refused.
func TestHeaderContextOutOfOrder(t *testing.T) {
	for _, tc := range []struct {
		hex   string
		valid bool
	}{
		{"0002" + "0001" + "62" + "0001" + "31" + "0001" + "61" + "0000", true},
		{"0002" + "0001" + "61" + "0001" + "31" + "0001" + "61" + "0000", false},
	} {
		raw, _ := hex.DecodeString(tc.hex)
		msg := append([]byte{byte(len(raw) >> 8), byte(len(raw))}, raw...)
		h := &header{suite: &suiteCommitted}
		p := &headerParser{src: &sliceSource{b: msg}}
		h.parseContext(p)
		if (p.err == nil) != tc.valid {
			t.Fatalf("%s: accepted=%v, want %v", tc.hex, p.err == nil, tc.valid)
		}
		if tc.valid && (h.contextMap()["a"] != "" || h.contextMap()["b"] != "1" || len(h.contextMap()) != 2) {
			t.Fatalf("%s: context %v", tc.hex, h.contextMap())
		}
	}
}
