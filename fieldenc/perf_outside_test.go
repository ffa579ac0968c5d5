package fieldenc_test

// Outside review of the performance work (issue 13): siv.Bound behind
// deterministic columns, the reusable output buffers of Seal.

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"

	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/stretchr/testify/require"
)

// TestOutsideDeterministicConcurrentStable seals the same values on one
// deterministic column from many goroutines: every output equals the one
// sealed alone, another Table (another process) seals the same bytes under
// the same version, and after a rotation the old values still open while
// the new version is itself deterministic.
func TestOutsideDeterministicConcurrentStable(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	tbl := e.table(t, fieldenc.Config{})
	col, err := tbl.Column("mrn", fieldenc.Deterministic)
	require.NoError(t, err)
	values := make([][]byte, 40)
	want := make([][]byte, len(values))
	for i := range values {
		values[i] = make([]byte, i*7)
		rand.Read(values[i])
		want[i], err = col.Seal(ctx, nil, values[i], nil)
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			buf := make([]byte, 0, 512)
			for r := range 50 {
				i := (g + r) % len(values)
				got, err := col.Seal(ctx, buf[:0], values[i], []byte("row-ignored"))
				if err != nil || !bytes.Equal(got, want[i]) {
					t.Errorf("g%d: concurrent deterministic seal of value %d differs: %v", g, i, err)
					return
				}
				back, err := col.Open(ctx, nil, got, nil)
				if err != nil || !bytes.Equal(back, values[i]) {
					t.Errorf("g%d: open of value %d: %v", g, i, err)
					return
				}
			}
		})
	}
	wg.Wait()

	other := e.table(t, fieldenc.Config{})
	ocol, err := other.Column("mrn", fieldenc.Deterministic)
	require.NoError(t, err)
	for i := range values {
		got, err := ocol.Seal(ctx, nil, values[i], nil)
		require.NoError(t, err)
		require.Equal(t, want[i], got, "another Table seals value %d differently under the same version", i)
	}

	e.rotate(t, tbl, other)
	for i := range values {
		back, err := col.Open(ctx, nil, want[i], nil)
		require.NoError(t, err)
		require.True(t, bytes.Equal(values[i], back))
		a, err := col.Seal(ctx, nil, values[i], nil)
		require.NoError(t, err)
		b, err := ocol.Seal(ctx, nil, values[i], nil)
		require.NoError(t, err)
		require.Equal(t, a, b, "value %d: two tables disagree under the new version", i)
		require.NotEqual(t, want[i], a, "value %d: the new version sealed as the old one", i)
	}
}

// TestOutsideSealOverPlaintext: Seal(ctx, buf[:0], buf) (the crypto/cipher
// idiom for sealing in place) must seal the plaintext given (into a new
// array), never the header's bytes instead, and must not panic.
func TestOutsideSealOverPlaintext(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	tbl := e.table(t, fieldenc.Config{})
	for _, kind := range []fieldenc.Kind{fieldenc.Randomized, fieldenc.Deterministic} {
		for _, size := range []int{1, 16, 64, 300} {
			t.Run(fmt.Sprintf("%v/%d", kind, size), func(t *testing.T) {
				col, err := tbl.Column("c", kind)
				require.NoError(t, err)
				buf := make([]byte, size, size+col.Overhead()+64)
				rand.Read(buf)
				pt := bytes.Clone(buf)
				var sealed []byte
				panicked := func() (p bool) {
					defer func() { p = recover() != nil }()
					sealed, err = col.Seal(ctx, buf[:0], buf, []byte("row"))
					return false
				}()
				require.False(t, panicked, "Seal(buf[:0], buf) panicked; it writes the sealed form elsewhere")
				require.NoError(t, err)
				back, err := col.Open(ctx, nil, sealed, []byte("row"))
				require.NoError(t, err)
				require.True(t, bytes.Equal(pt, back), "Seal(buf[:0], buf) sealed other bytes than the plaintext")
			})
		}
	}
}

// TestOutsideOpenOverSealed: Open(ctx, sealed[:0], sealed) returns the
// plaintext or panics; it never returns other bytes.
func TestOutsideOpenOverSealed(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	tbl := e.table(t, fieldenc.Config{})
	for _, kind := range []fieldenc.Kind{fieldenc.Randomized, fieldenc.Deterministic} {
		for _, size := range []int{0, 1, 16, 64, 300} {
			t.Run(fmt.Sprintf("%v/%d", kind, size), func(t *testing.T) {
				col, err := tbl.Column("c", kind)
				require.NoError(t, err)
				pt := make([]byte, size)
				rand.Read(pt)
				sealed, err := col.Seal(ctx, nil, pt, []byte("row"))
				require.NoError(t, err)
				var back []byte
				panicked := func() (p bool) {
					defer func() { p = recover() != nil }()
					back, err = col.Open(ctx, sealed[:0], sealed, []byte("row"))
					return false
				}()
				if panicked {
					return
				}
				require.NoError(t, err)
				require.True(t, bytes.Equal(pt, back), "Open(sealed[:0], sealed) returned other bytes than the plaintext")
			})
		}
	}
}
