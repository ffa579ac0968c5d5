package fieldenc_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/stretchr/testify/require"
)

func TestPseudonyms(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	tbl := e.table(t, fieldenc.Config{})
	research, err := tbl.Pseudonyms(ctx, "research-2026")
	require.NoError(t, err)
	billing, err := tbl.Pseudonyms(ctx, "billing-audit")
	require.NoError(t, err)
	a := research.Token("MRN-000042")
	require.Len(t, a, fieldenc.PseudonymTokenLen)
	require.Equal(t, a, research.Token("MRN-000042"), "stable within a purpose")
	require.NotEqual(t, a, research.Token("MRN-000043"))
	require.NotEqual(t, a, billing.Token("MRN-000042"), "unlinkable across purposes")
	other := e.table(t, fieldenc.Config{Table: "visits"})
	ov, err := other.Pseudonyms(ctx, "research-2026")
	require.NoError(t, err)
	require.NotEqual(t, a, ov.Token("MRN-000042"), "scoped to the table too")

	// Reproducible at the recorded version after a rotation.
	v := research.Version()
	e.rotate(t, tbl)
	again, err := tbl.PseudonymsAt(ctx, "research-2026", v)
	require.NoError(t, err)
	require.Equal(t, a, again.Token("MRN-000042"))
	fresh, err := tbl.Pseudonyms(ctx, "research-2026")
	require.NoError(t, err)
	require.NotEqual(t, v, fresh.Version())
	require.NotContains(t, fmt.Sprintf("%v %+v %#v %s", research, research, research, research), "MRN")
}

func TestIndexSizing(t *testing.T) {
	n, err := fieldenc.RecommendIndexBits(1_000_000)
	require.NoError(t, err)
	require.Equal(t, 14, n)
	_, err = fieldenc.RecommendIndexBits(5)
	require.Error(t, err)
	require.Empty(t, fieldenc.AssessIndexBits(1_000_000, 14).Warnings)
	require.NotEmpty(t, fieldenc.AssessIndexBits(1_000_000, 24).Warnings, "2^24 > 500000: leaks")
	require.NotEmpty(t, fieldenc.AssessIndexBits(1_000_000, 8).Warnings, "2^8 < 1000: collides")
}

// FuzzOpen: no input makes Open panic, and nothing forged opens.
func FuzzOpen(f *testing.F) {
	e := newEnv(f, zeroHC())
	tbl := e.table(f, fieldenc.Config{})
	ctx := context.Background()
	rnd, err := tbl.Column("notes", fieldenc.Randomized)
	require.NoError(f, err)
	det, err := tbl.Column("mrn", fieldenc.Deterministic)
	require.NoError(f, err)
	s1, err := rnd.Seal(ctx, nil, []byte("seed one"), []byte("row"))
	require.NoError(f, err)
	s2, err := det.Seal(ctx, nil, []byte("seed two"), nil)
	require.NoError(f, err)
	f.Add(s1, []byte("row"))
	f.Add(s2, []byte(nil))
	f.Add([]byte{1, 2, 3}, []byte(nil))
	f.Fuzz(func(t *testing.T, sealed, row []byte) {
		for _, c := range []*fieldenc.Column{rnd, det} {
			pt, err := c.Open(ctx, nil, sealed, row)
			if err == nil && string(pt) != "seed one" && string(pt) != "seed two" {
				t.Fatalf("a forged value opened")
			}
		}
		var s fieldenc.Sealed[string]
		if s.Scan(sealed) == nil {
			_, _ = s.Value()
			_, _ = s.MarshalJSON()
		}
		_ = s.UnmarshalJSON(sealed)
	})
}

// Every field encryption counts against its branch key version in the
// store; at the keyring's cap the branch key rotates, and every value
// still opens.
func TestUsageCapRotates(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, keyring.HierarchicalConfig{MaxUsesPerVersion: 50, UsageBlock: 10})
	tbl := e.table(t, fieldenc.Config{ReservedUses: 10})
	col, err := tbl.Column("notes", fieldenc.Randomized)
	require.NoError(t, err)
	var sealed [][]byte
	for i := range 200 {
		s, err := col.Seal(ctx, nil, []byte(fmt.Sprint("note ", i)), nil)
		require.NoError(t, err)
		sealed = append(sealed, s)
	}
	versions, err := e.store.List(ctx, e.id)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(versions), 4, "200 encryptions at 50 per version")
	refs := map[string]int{}
	for _, s := range sealed {
		refs[string(s[1:5])]++
	}
	for _, v := range versions {
		require.LessOrEqual(t, v.Usage, uint64(50))
	}
	for ref, n := range refs {
		require.LessOrEqual(t, n, 50, "version %x", ref)
	}
	for i, s := range sealed {
		pt, err := col.Open(ctx, nil, s, nil)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint("note ", i), string(pt))
	}
}

func TestNewRequiresCounting(t *testing.T) {
	e := newEnv(t, zeroHC())
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: e.bk, BranchKeyID: e.id, CacheTTL: time.Minute})
	require.NoError(t, err)
	_, err = fieldenc.New(fieldenc.Config{Keys: kr, BranchKeyID: e.id, Table: "patients"})
	require.ErrorContains(t, err, "MaxUsesPerVersion")
	_, err = fieldenc.New(fieldenc.Config{Keys: e.kr, BranchKeyID: e.id, Table: "patients", ReservedUses: 1 << 31})
	require.ErrorContains(t, err, "ReservedUses")
	_, err = fieldenc.New(fieldenc.Config{Keys: e.kr, BranchKeyID: e.id})
	require.Error(t, err)
}
