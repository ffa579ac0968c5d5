package phicrypt_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

// Open decrypts what Decrypt decrypts, refuses what Decrypt refuses (a
// context other than the expected one, a flipped bit), and on failure
// clears what it appended and returns nil.
func TestOpen(t *testing.T) {
	ctx := context.Background()
	for _, suite := range []phicrypt.Suite{phicrypt.SuiteCommitted, phicrypt.SuiteCommittedSigned} {
		enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(t), Suite: suite, FrameLength: 100})
		require.NoError(t, err)
		ec := map[string]string{"tenant": "general-hospital", "purpose": "treatment"}
		pt := randomBytes(1234)
		msg, err := enc.Encrypt(ctx, pt, ec)
		require.NoError(t, err)

		got, err := enc.Open(ctx, []byte("prefix"), msg, map[string]string{"tenant": "general-hospital"})
		require.NoError(t, err)
		require.Equal(t, append([]byte("prefix"), pt...), got)

		_, err = enc.Open(ctx, nil, msg, map[string]string{"tenant": "other"})
		require.ErrorIs(t, err, phicrypt.ErrContext)

		bad := bytes.Clone(msg)
		bad[len(bad)/2] ^= 1
		dst := make([]byte, 3, 4096)
		out, err := enc.Open(ctx, dst, bad, nil)
		require.ErrorIs(t, err, phicrypt.ErrAuthentication)
		require.Nil(t, out)
		require.Equal(t, make([]byte, 2000), dst[3:2003], "the failed Open's plaintext is cleared")
	}
}

// With the data key in the Cache, a 1 KiB message costs at most three
// allocations each way: the message's AES-GCM instance (aes.NewCipher and
// cipher.NewGCM, since each message has its own derived key) and the
// output. Encrypt and Open allocate their output; EncryptAppend and Open
// into a buffer with room do not. Decrypt also returns the context, a map
// of its own (a header and one group): five.
func TestCachedMessageAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates; scripts/test.sh runs this without -race")
	}
	ctx := context.Background()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(t), Cache: newCache(t, phicrypt.CacheConfig{})})
	require.NoError(t, err)
	ec := map[string]string{"tenant": "general-hospital"}
	pt := make([]byte, 1024)
	msg, err := enc.Encrypt(ctx, pt, ec)
	require.NoError(t, err)
	_, err = enc.Open(ctx, nil, msg, nil) // fills the decrypt entry
	require.NoError(t, err)
	dst := make([]byte, 0, 4096)
	for _, c := range []struct {
		name string
		max  float64
		f    func() error
	}{
		{"Encrypt", 3, func() error { _, err := enc.Encrypt(ctx, pt, ec); return err }},
		{"EncryptAppend", 2, func() error { _, err := enc.EncryptAppend(ctx, dst[:0], pt, ec); return err }},
		{"Open", 3, func() error { _, err := enc.Open(ctx, nil, msg, ec); return err }},
		{"Open into room", 2, func() error { _, err := enc.Open(ctx, dst[:0], msg, ec); return err }},
		{"Decrypt", 5, func() error { _, _, err := enc.Decrypt(ctx, msg, nil); return err }},
	} {
		allocs := testing.AllocsPerRun(200, func() {
			if err := c.f(); err != nil {
				t.Fatal(err)
			}
		})
		require.LessOrEqual(t, allocs, c.max, c.name)
	}
}
