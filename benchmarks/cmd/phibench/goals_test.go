package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/phicrypt/phicrypt/benchmarks/suite"
)

func testRow(name, impl, op string, size int64, ns, allocs float64) row {
	r := row{name: name}
	r.Impl, r.Op, r.SizeBytes, r.NsPerOp, r.AllocsPerOp = impl, op, size, ns, allocs
	return r
}

// The goals are read off the rows of a run: a ratio at the limit meets
// it, one above misses it, a fraction of an allocation counts as none (as
// go test -benchmem reports it), and a goal whose rows were not measured
// is left out rather than reported either way.
func TestGoalsAreCheckedAgainstTheRun(t *testing.T) {
	rows := []row{
		testRow("raw-gcm/seal/64B", suite.ImplRawGCM, "seal", 64, 100, 0),
		testRow("phicrypt/field-seal/64B", suite.ImplPhicrypt, "field-seal", 64, 120, 0.01),
		testRow("raw-gcm/open/64B", suite.ImplRawGCM, "open", 64, 100, 0),
		testRow("phicrypt/field-open/64B", suite.ImplPhicrypt, "field-open", 64, 121, 0),
		testRow("phicrypt/cached-encrypt/1KiB/alloc", suite.ImplPhicrypt, "cached-encrypt", 1024, 3999, 3.4),
		testRow("phicrypt/cached-decrypt/1KiB/alloc", suite.ImplPhicrypt, "message-decrypt", 1024, 3000, 4),
	}
	rows[4].noJSON, rows[5].noJSON = true, true
	got := map[string]goalResult{}
	for _, r := range checkGoals(rows) {
		got[r.text] = r
	}
	want := map[string]bool{
		"field-seal 64 B ≤ 1.2× raw seal, 0 allocs":     true,
		"field-open 64 B ≤ 1.2× raw open":               false,
		"Encrypt 1 KiB, cached key: ≤ 4 µs, ≤ 3 allocs": true,
		"Decrypt 1 KiB, cached key: ≤ 4 µs, ≤ 3 allocs": false,
	}
	if len(got) != len(want) {
		t.Errorf("answered %d goals, want %d: %v", len(got), len(want), got)
	}
	for text, met := range want {
		r, ok := got[text]
		if !ok || r.met != met {
			t.Errorf("%s: got %+v (present %t), want met=%t", text, r, ok, met)
		}
	}
	var out bytes.Buffer
	printGoals(&out, checkGoals(rows))
	if !strings.Contains(out.String(), "1.21×") || strings.Count(out.String(), "MISSED") != 2 {
		t.Errorf("printed goals:\n%s", out.String())
	}
}

// An output file that cannot be written is refused when the flags are
// read, before the run; a writable one is left as it was.
func TestOutputsCheckedBeforeTheRun(t *testing.T) {
	dir := t.TempDir()
	for _, flagName := range []string{"-json", "-aws-json", "-plot"} {
		_, err := parseFlags([]string{flagName, dir + "/missing/out.svg"}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), flagName) {
			t.Errorf("%s into a missing directory: %v", flagName, err)
		}
	}
	path := dir + "/out.json"
	if _, err := parseFlags([]string{"-json", path}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the check left %s behind: %v", path, err)
	}
}
