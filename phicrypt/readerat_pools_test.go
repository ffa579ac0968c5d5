package phicrypt_test

import (
	"bytes"
	"context"
	"runtime"
	"testing"

	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

// TestReaderAtReusesScratch opens a ReaderAt and reads 1 MiB, again and
// again, on one Encryptor: the frame buffer and the header's buffered
// reader come from the Encryptor's pools, so a ranged read allocates a few
// KiB (the opened header), not a 64 KiB frame buffer and a 16 KiB reader
// each time. A second Encryptor's reads are just as right: nothing of the
// first one's messages is shared.
func TestReaderAtReusesScratch(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop what it is given at random")
	}
	ctx := context.Background()
	kr := rawKeyring(t)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr})
	require.NoError(t, err)
	pt := randomBytes(8 << 20)
	msg, err := enc.Encrypt(ctx, pt, nil)
	require.NoError(t, err)
	src := bytes.NewReader(msg)
	p := make([]byte, 1<<20)
	read := func(e *phicrypt.Encryptor, off int64) {
		r, err := e.NewReaderAt(ctx, src, int64(len(msg)), nil)
		require.NoError(t, err)
		n, err := r.ReadAt(p, off)
		require.NoError(t, err)
		require.Equal(t, len(p), n)
		require.True(t, bytes.Equal(pt[off:off+int64(n)], p), "offset %d", off)
	}
	read(enc, 12345) // fills the pools
	const runs = 50
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range runs {
		read(enc, int64(i)*77777)
	}
	runtime.ReadMemStats(&after)
	perRead := (after.TotalAlloc - before.TotalAlloc) / runs
	require.Less(t, perRead, uint64(16<<10), "bytes allocated per NewReaderAt and 1 MiB ReadAt")

	other, err := phicrypt.New(phicrypt.Config{Keyring: kr})
	require.NoError(t, err)
	read(other, 3<<20+1)
}
