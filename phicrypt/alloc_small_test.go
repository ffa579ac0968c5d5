package phicrypt_test

import (
	"context"
	"testing"

	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

// The allocations of a 1 KiB message, counted by what each one is for. Every
// message derives its own key, so it builds its own AES-GCM instance
// (aes.NewCipher and cipher.NewGCM, which the standard library cannot
// re-key); the rest is named in each case.
const (
	aesGCMAllocs = 2
	// A returned non-empty context map: its header and one group.
	contextMapAllocs = 2
	// The raw AES keyring's one buffer: on encrypt the provider info, the
	// generated data key and the wrapped key; on decrypt the unwrapped key.
	rawAESAllocs = 1
	// A parsed header's context strings and EDK provider ids, one string.
	headerNamesAllocs = 1
	outputAllocs      = 1
)

// Without a cache, a message costs its AES-GCM instance, the raw AES
// keyring's buffer and, on decrypt, the header's strings and the returned
// context map: the materials, the EDK list, the keyring's serialized context
// and the parsed header come from pooled scratch.
func TestUncachedMessageAllocations(t *testing.T) {
	ctx := context.Background()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(t)})
	require.NoError(t, err)
	pt := make([]byte, 1024)
	dst := make([]byte, 0, 4096)
	for _, ec := range []map[string]string{{"tenant": "general-hospital", "purpose": "treatment"}, nil} {
		msg, err := enc.Encrypt(ctx, pt, ec)
		require.NoError(t, err)
		ctxMap := 0
		if len(ec) > 0 {
			ctxMap = contextMapAllocs
		}
		for _, c := range []struct {
			name string
			max  int
			f    func() error
		}{
			{"EncryptAppend", aesGCMAllocs + rawAESAllocs, func() error { _, err := enc.EncryptAppend(ctx, dst[:0], pt, ec); return err }},
			{"Encrypt", aesGCMAllocs + rawAESAllocs + outputAllocs, func() error { _, err := enc.Encrypt(ctx, pt, ec); return err }},
			{"DecryptAppend", aesGCMAllocs + rawAESAllocs + headerNamesAllocs + ctxMap, func() error { _, _, err := enc.DecryptAppend(ctx, dst[:0], msg, nil); return err }},
			{"Decrypt", aesGCMAllocs + rawAESAllocs + headerNamesAllocs + ctxMap + outputAllocs, func() error { _, _, err := enc.Decrypt(ctx, msg, nil); return err }},
		} {
			allocs := testing.AllocsPerRun(200, func() {
				if err := c.f(); err != nil {
					t.Fatal(err)
				}
			})
			t.Logf("context of %d pairs: %s %v allocations", len(ec), c.name, allocs)
			if raceEnabled {
				continue // the race detector allocates on its own account
			}
			require.LessOrEqual(t, allocs, float64(c.max), "%s, context of %d pairs", c.name, len(ec))
		}
	}
}

// With the data key cached and no context, Encrypt and Decrypt allocate the
// message's AES-GCM instance and their output, nothing else: the returned
// context of a message without one is nil.
func TestCachedEmptyContextAllocations(t *testing.T) {
	ctx := context.Background()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(t), Cache: newCache(t, phicrypt.CacheConfig{})})
	require.NoError(t, err)
	pt := make([]byte, 1024)
	msg, err := enc.Encrypt(ctx, pt, nil)
	require.NoError(t, err)
	_, _, err = enc.Decrypt(ctx, msg, nil) // fills the decrypt entry
	require.NoError(t, err)
	for _, c := range []struct {
		name string
		f    func() error
	}{
		{"Encrypt", func() error { _, err := enc.Encrypt(ctx, pt, nil); return err }},
		{"Decrypt", func() error { _, _, err := enc.Decrypt(ctx, msg, nil); return err }},
	} {
		allocs := testing.AllocsPerRun(200, func() {
			if err := c.f(); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%s: %v allocations", c.name, allocs)
		if !raceEnabled {
			require.LessOrEqual(t, allocs, float64(aesGCMAllocs+outputAllocs), c.name)
		}
	}
}

// Decrypt returns nil for a message without a context (and for a signed one
// whose only pair is the signing key), and otherwise a map of the caller's
// own: changing it changes nothing a later Decrypt returns, with or without
// the cache.
func TestDecryptReturnedContext(t *testing.T) {
	ctx := context.Background()
	for _, cached := range []bool{false, true} {
		for _, suite := range []phicrypt.Suite{phicrypt.SuiteCommitted, phicrypt.SuiteCommittedSigned} {
			cfg := phicrypt.Config{Keyring: rawKeyring(t), Suite: suite}
			if cached {
				cfg.Cache = newCache(t, phicrypt.CacheConfig{})
			}
			enc, err := phicrypt.New(cfg)
			require.NoError(t, err)

			msg, err := enc.Encrypt(ctx, []byte("no context"), nil)
			require.NoError(t, err)
			pt, got, err := enc.Decrypt(ctx, msg, nil)
			require.NoError(t, err)
			require.Equal(t, "no context", string(pt))
			require.Nil(t, got, "cached %t, %v: an empty context is nil", cached, suite)

			ec := map[string]string{"tenant": "general-hospital", "purpose": "treatment"}
			msg, err = enc.Encrypt(ctx, []byte("with context"), ec)
			require.NoError(t, err)
			for range 2 {
				_, got, err := enc.Decrypt(ctx, msg, nil)
				require.NoError(t, err)
				require.Equal(t, ec, got, "cached %t, %v", cached, suite)
				got["tenant"] = "changed by the caller"
				got["extra"] = "added by the caller"
				delete(got, "purpose")
			}
			r, err := enc.OpenHeader(ctx, msg, nil)
			require.NoError(t, err)
			first := r.EncryptionContext()
			first["tenant"] = "changed"
			require.Equal(t, ec, r.EncryptionContext(), "cached %t, %v: a Message's context is copied for each call", cached, suite)
		}
	}
}
