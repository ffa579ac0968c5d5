package fieldenc_test

import (
	"context"
	"testing"

	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/stretchr/testify/require"
)

// The hot path allocates nothing when dst has room: randomized and
// deterministic seal and open, with and without a row identity.
func TestColumnAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates; scripts/test.sh runs this without -race")
	}
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	tbl := e.table(t, fieldenc.Config{})
	pt := make([]byte, 64)
	row := []byte("patient-00000042")
	out := make([]byte, 0, 256)
	opened := make([]byte, 0, 256)
	for _, kind := range []fieldenc.Kind{fieldenc.Randomized, fieldenc.Deterministic} {
		col, err := tbl.Column("notes", kind)
		require.NoError(t, err)
		for _, r := range [][]byte{nil, row} {
			sealed, err := col.Seal(ctx, nil, pt, r)
			require.NoError(t, err)
			seal := testing.AllocsPerRun(200, func() {
				out, err = col.Seal(ctx, out[:0], pt, r)
			})
			require.NoError(t, err)
			open := testing.AllocsPerRun(200, func() {
				opened, err = col.Open(ctx, opened[:0], sealed, r)
			})
			require.NoError(t, err)
			require.Equal(t, pt, opened)
			require.Zero(t, seal, "%v seal, row %q", kind, r)
			require.Zero(t, open, "%v open, row %q", kind, r)
		}
	}
}
