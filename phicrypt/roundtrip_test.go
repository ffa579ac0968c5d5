package phicrypt_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

func rawKeyring(t testing.TB) keyring.Keyring {
	t.Helper()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	kr, err := keyring.NewRawAES("phicrypt-test", "key-1", key)
	require.NoError(t, err)
	return kr
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestRoundTripSizes(t *testing.T) {
	ctx := context.Background()
	for _, suite := range []phicrypt.Suite{phicrypt.SuiteCommitted, phicrypt.SuiteCommittedSigned} {
		for _, frame := range []int{1, 4096, 65536} {
			enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(t), Suite: suite, FrameLength: frame})
			require.NoError(t, err)
			for _, size := range []int{0, 1, frame - 1, frame, frame + 1, 3*frame + 17} {
				if size < 0 || size > 300000 {
					continue
				}
				pt := randomBytes(size)
				ec := map[string]string{"tenant": "general-hospital", "table": "notes", "ünïcode": "✓"}
				msg, err := enc.Encrypt(ctx, pt, ec)
				require.NoError(t, err)
				got, gotEC, err := enc.Decrypt(ctx, msg, map[string]string{"tenant": "general-hospital"})
				require.NoError(t, err, "suite %v frame %d size %d", suite, frame, size)
				require.True(t, bytes.Equal(pt, got))
				require.Equal(t, ec, gotEC)
			}
		}
	}
}

func TestDecryptRefusesWrongExpectation(t *testing.T) {
	ctx := context.Background()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(t)})
	require.NoError(t, err)
	msg, err := enc.Encrypt(ctx, []byte("phi"), map[string]string{"tenant": "a"})
	require.NoError(t, err)
	_, _, err = enc.Decrypt(ctx, msg, map[string]string{"tenant": "b"})
	require.ErrorIs(t, err, phicrypt.ErrContext)
	_, _, err = enc.Decrypt(ctx, msg, map[string]string{"extra": "x"})
	// A pair the message lacks is treated as authenticated-only context, as
	// the ESDK does; the raw AES keyring binds the whole context, so the
	// data key no longer unwraps.
	require.ErrorIs(t, err, phicrypt.ErrNoKey)
	var me *phicrypt.MessageError
	require.True(t, errors.As(err, &me))
	require.Equal(t, phicrypt.StageEDK, me.Stage)
}
