package suite_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/phicrypt/phicrypt/benchmarks/suite"
)

// Both lists hold every op of the record schema for every implementation,
// with unique names, so a phibench run writes each of them.
func TestListsCoverEveryOp(t *testing.T) {
	want := map[string][]string{
		suite.ImplPhicrypt: {"field-seal", "field-open", "deterministic-seal", "blind-index", "struct-seal", "message-encrypt",
			"message-decrypt", "stream-encrypt", "stream-decrypt", "range-read", "cached-encrypt"},
		suite.ImplRawGCM: {"seal", "open"},
		suite.ImplTink:   {"aead-encrypt", "aead-decrypt", "daead-encrypt", "stream-encrypt", "stream-decrypt", "envelope-encrypt"},
		suite.ImplAWS:    {"message-encrypt", "message-decrypt"},
	}
	env := newEnv(t)
	for _, quick := range []bool{true, false} {
		cs := suite.Cases(env, suite.Options{Quick: quick})
		names := map[string]bool{}
		have := map[string][]string{}
		for _, c := range cs {
			if names[c.Name] {
				t.Errorf("quick=%v: case %q twice", quick, c.Name)
			}
			names[c.Name] = true
			if !c.NoJSON {
				have[c.Impl] = append(have[c.Impl], c.Op)
			}
		}
		for impl, ops := range want {
			for _, op := range ops {
				if !slices.Contains(have[impl], op) {
					t.Errorf("quick=%v: no %s %s case", quick, impl, op)
				}
			}
		}
		for _, size := range []int64{64, suite.KiB, suite.MiB, 64 * suite.MiB} {
			for _, op := range []string{"message-encrypt", "message-decrypt"} {
				rec, err := suite.Find(cs, "phicrypt/"+op+"/"+suite.SizeName(size))
				if err != nil {
					t.Errorf("quick=%v: %v", quick, err)
				}
				alloc, err := suite.Find(cs, "phicrypt/"+op+"/"+suite.SizeName(size)+"/alloc")
				if err != nil {
					t.Errorf("quick=%v: %v", quick, err)
				}
				if rec.NoJSON || !alloc.NoJSON {
					t.Errorf("quick=%v: %s has a record: %v, its alloc row: %v; want the append form's only", quick, rec.Name, !rec.NoJSON, !alloc.NoJSON)
				}
			}
		}
		w := fmt.Sprintf("/w%d", suite.ParallelWorkers())
		if c, err := suite.Find(cs, "phicrypt/message-encrypt/64MiB"+w); err != nil || c.Workers != suite.ParallelWorkers() || c.NoJSON {
			t.Errorf("quick=%v: the 64 MiB message on %d workers: %+v, %v", quick, suite.ParallelWorkers(), c, err)
		}
	}
	sweep := suite.Cases(env, suite.Options{FrameLengths: []int{4096, suite.MiB}, Workers: []int{1, 2, 4}})
	for _, name := range []string{"phicrypt/stream-encrypt/64MiB/w1/frame4KiB", "phicrypt/stream-decrypt/64MiB/frame1MiB",
		"phicrypt/message-encrypt/1MiB/frame4KiB", "phicrypt/stream-encrypt/64MiB/w4",
		"phicrypt/message-encrypt/64MiB", "phicrypt/message-encrypt/64MiB/w2", "phicrypt/message-encrypt/64MiB/w4", "raw-gcm/seal/64MiB"} {
		if _, err := suite.Find(sweep, name); err != nil {
			t.Error(err)
		}
	}
}
