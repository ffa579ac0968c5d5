package phicrypt_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"testing/iotest"

	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

// Streams, byte slices and ranged reads make and read the same messages,
// for every worker count, frame length and size around frame boundaries.
func TestStreamMatchesSlices(t *testing.T) {
	ctx := context.Background()
	ec := map[string]string{"object": "scan-0042.dcm"}
	for _, suite := range []phicrypt.Suite{phicrypt.SuiteCommitted, phicrypt.SuiteCommittedSigned} {
		for _, workers := range []int{1, 3} {
			frame := 100
			enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(t), Suite: suite, FrameLength: frame, Workers: workers})
			require.NoError(t, err)
			for _, size := range []int{0, 1, 99, 100, 101, 299, 300, 301, 1234, 10000} {
				pt := randomBytes(size)
				var msg bytes.Buffer
				w, err := enc.NewWriter(ctx, &msg, ec)
				require.NoError(t, err)
				// Odd-sized writes exercise every buffering path.
				for rest := pt; len(rest) > 0; {
					k := min(len(rest), 1+len(rest)%257)
					_, err := w.Write(rest[:k])
					require.NoError(t, err)
					rest = rest[k:]
				}
				require.NoError(t, w.Close())

				got, gotEC, err := enc.Decrypt(ctx, msg.Bytes(), ec)
				require.NoError(t, err, "suite %v workers %d size %d", suite, workers, size)
				require.Equal(t, pt, nonNil(got))
				require.Equal(t, ec, gotEC)
				// One big write takes the direct path.
				var msg2 bytes.Buffer
				w2, err := enc.NewWriter(ctx, &msg2, ec)
				require.NoError(t, err)
				_, err = w2.Write(pt)
				require.NoError(t, err)
				require.NoError(t, w2.Close())
				if suite == phicrypt.SuiteCommitted { // a DER signature's length varies
					require.Equal(t, msg.Len(), msg2.Len(), "layout differs between write patterns")
				}

				r, err := enc.NewReader(ctx, iotest.OneByteReader(bytes.NewReader(msg.Bytes())), ec)
				require.NoError(t, err)
				streamed, err := io.ReadAll(r)
				require.NoError(t, err)
				require.Equal(t, pt, nonNil(streamed))

				ra, err := enc.NewReaderAt(ctx, bytes.NewReader(msg.Bytes()), int64(msg.Len()), nil)
				require.NoError(t, err)
				require.Equal(t, int64(size), ra.Size())
				for _, rg := range [][2]int{{0, size}, {size / 3, size/3 + 150}, {size - 1, size}} {
					lo, hi := max(rg[0], 0), min(rg[1], size)
					if lo >= hi {
						continue
					}
					buf := make([]byte, hi-lo)
					n, err := ra.ReadAt(buf, int64(lo))
					if hi < size || n < len(buf) {
						require.NoError(t, err)
					}
					require.Equal(t, pt[lo:hi], buf[:n])
				}
			}
		}
	}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// A message cut after its first frame and given a forged empty final frame
// must not open as a shorter, complete message (review finding).
func TestReaderAtRefusesForgedFinalFrame(t *testing.T) {
	ctx := context.Background()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(t), FrameLength: 16})
	require.NoError(t, err)
	msg, err := enc.Encrypt(ctx, []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz"), nil)
	require.NoError(t, err)
	r, err := enc.NewReader(ctx, bytes.NewReader(msg), nil)
	require.NoError(t, err)
	_, err = io.ReadAll(r)
	require.NoError(t, err)
	headerLen := len(msg) - 3*(16+32) - (40 + 14) // three regular frames and a 14-byte final frame
	cut := append([]byte(nil), msg[:headerLen+16+32]...)
	forged := append([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2}, make([]byte, 12+4+16)...)
	cut = append(cut, forged...)
	_, err = enc.NewReaderAt(ctx, bytes.NewReader(cut), int64(len(cut)), nil)
	require.ErrorIs(t, err, phicrypt.ErrAuthentication)
	_, _, err = enc.Decrypt(ctx, cut, nil)
	require.ErrorIs(t, err, phicrypt.ErrAuthentication)
}
