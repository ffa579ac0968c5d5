package phicrypt_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

// TestEncryptWorkersDecryptsWithOneWorker encrypts plaintexts large enough
// to be sealed on several goroutines and decrypts them with a one-worker
// Encryptor, which checks every frame's number, place, length and tag and,
// for the signed suite, the signature over the body sealed in parallel.
func TestEncryptWorkersDecryptsWithOneWorker(t *testing.T) {
	ctx := context.Background()
	ec := map[string]string{"tenant": "general-hospital"}
	for _, c := range []struct {
		name    string
		suite   phicrypt.Suite
		frame   int
		workers int
		sizes   []int
	}{
		// 64 KiB frames: an exact multiple of the frame (a full final
		// frame), one byte over (a 1-byte final frame) and one under.
		{"default", phicrypt.SuiteCommitted, phicrypt.DefaultFrameLength, 2, []int{1 << 20, 1<<20 + 1, 1<<20 - 1, 3<<20 + 12345}},
		{"signed", phicrypt.SuiteCommittedSigned, phicrypt.DefaultFrameLength, 2, []int{1 << 20, 1<<20 + 1, 2<<20 + 777}},
		// Small frames: many frames to a goroutine's batch.
		{"frame1000", phicrypt.SuiteCommitted, 1000, 3, []int{1 << 20, 1000 * 1100, 1000*1100 + 1}},
		// Frames larger than a batch, and more workers than batches.
		{"frame1MiB", phicrypt.SuiteCommittedSigned, 1 << 20, 8, []int{4 << 20, 4<<20 + 1, 5<<20 - 1}},
		{"workers8", phicrypt.SuiteCommitted, phicrypt.DefaultFrameLength, 8, []int{1 << 20, 1<<20 + 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			kr := rawKeyring(t)
			enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, Suite: c.suite, FrameLength: c.frame, Workers: c.workers})
			require.NoError(t, err)
			one, err := phicrypt.New(phicrypt.Config{Keyring: kr, Suite: c.suite, FrameLength: c.frame})
			require.NoError(t, err)
			for _, size := range c.sizes {
				pt := randomBytes(size)
				msg, err := enc.Encrypt(ctx, pt, ec)
				require.NoError(t, err)
				// The same plaintext from one worker: the messages differ
				// (message ID, data key, signature) but not in length
				// (ECDSA signatures' DER lengths aside).
				single, err := one.Encrypt(ctx, pt, ec)
				require.NoError(t, err)
				if c.suite == phicrypt.SuiteCommitted {
					require.Len(t, msg, len(single), "size %d", size)
				} else {
					require.InDelta(t, len(single), len(msg), 2, "size %d", size)
				}
				got, _, err := one.Decrypt(ctx, msg, ec)
				require.NoError(t, err, "size %d", size)
				require.True(t, bytes.Equal(pt, got), "size %d", size)
				// The stream reader walks the frames one by one.
				r, err := one.NewReader(ctx, bytes.NewReader(msg), ec)
				require.NoError(t, err)
				var out bytes.Buffer
				_, err = out.ReadFrom(r)
				require.NoError(t, err)
				require.True(t, bytes.Equal(pt, out.Bytes()), "size %d", size)
			}
		})
	}
}

// TestEncryptAppendWorkersKeepsPrefixAndBuffer appends a message sealed on
// several goroutines after existing bytes, in a buffer with room: the
// prefix stays, the message lands in the same array, a flipped bit in any
// frame makes decryption fail, and no sealing goroutine outlives the call.
func TestEncryptAppendWorkersKeepsPrefixAndBuffer(t *testing.T) {
	ctx := context.Background()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(t), Workers: 4})
	require.NoError(t, err)
	pt := randomBytes(2<<20 + 5)
	prefix := []byte("prefix")
	dst := append(make([]byte, 0, len(pt)+64<<10), prefix...)
	out, err := enc.EncryptAppend(ctx, dst, pt, nil)
	require.NoError(t, err)
	require.Equal(t, prefix, out[:len(prefix)])
	require.Same(t, &dst[:1][0], &out[0], "EncryptAppend reallocated a buffer with room")
	require.True(t, goroutinesDownTo("phicrypt/phicrypt.(*Encryptor).sealBodyParallel", false), "sealing goroutines outlive EncryptAppend")
	msg := out[len(prefix):]
	got, _, err := enc.Decrypt(ctx, msg, nil)
	require.NoError(t, err)
	require.True(t, bytes.Equal(pt, got))
	for _, at := range []int{len(msg) / 3, len(msg) / 2, len(msg) - 1} {
		bad := bytes.Clone(msg)
		bad[at] ^= 1
		_, _, err := enc.Decrypt(ctx, bad, nil)
		require.ErrorIs(t, err, phicrypt.ErrAuthentication, "bit flipped at %d", at)
	}
}
