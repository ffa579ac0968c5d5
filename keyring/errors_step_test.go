package keyring_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
)

// requireKeyringOnce checks that err says "keyring:" once, at its start.
func requireKeyringOnce(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	msg := err.Error()
	require.True(t, strings.HasPrefix(msg, "keyring: "), "does not start with keyring: %q", msg)
	require.Equal(t, 1, strings.Count(msg, "keyring:"), "repeats keyring: %q", msg)
}

// Store failures that reach the caller through BranchKeys, RotateDue and
// Export say "keyring:" once, and still wrap the store's sentinel.
func TestStoreErrorsSayKeyringOnce(t *testing.T) {
	forEachHierStore(t, func(t *testing.T, e *kmsEnv, s keystore.Store) {
		ctx := context.Background()
		bk := newBranchKeys(t, e, s, e.key(""))
		_, err := bk.CreateBranchKey(ctx, "tenant-a")
		require.NoError(t, err)

		_, err = bk.CreateBranchKey(ctx, "tenant-a")
		require.ErrorIs(t, err, keystore.ErrExists)
		requireKeyringOnce(t, err)

		_, err = bk.Rotate(ctx, "tenant-missing")
		require.ErrorIs(t, err, keystore.ErrNotFound)
		requireKeyringOnce(t, err)

		// A closed store: its errors name the store, the callers the step.
		require.NoError(t, s.Close())
		_, err = bk.RotateDue(ctx, keyring.RotationPolicy{MaxAge: time.Hour})
		requireKeyringOnce(t, err)
		err = keystore.Export(ctx, s, &bytes.Buffer{})
		require.Error(t, err)
		require.True(t, strings.HasPrefix(err.Error(), "keystore: "), "does not start with keystore: %q", err)
		require.Equal(t, 1, strings.Count(err.Error(), "keystore:"), "repeats keystore: %q", err)
	})
}
