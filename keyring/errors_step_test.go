package keyring_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keystore"
)

// requireStepOnce checks that err names package pkg once, at its start,
// and no other package more than once.
func requireStepOnce(t *testing.T, err error, pkg string) {
	t.Helper()
	require.Error(t, err)
	msg := err.Error()
	require.True(t, strings.HasPrefix(msg, pkg+": "), "does not start with %s: %q", pkg, msg)
	for _, p := range []string{"keyring:", "keystore:", "custody:"} {
		require.LessOrEqual(t, strings.Count(msg, p), 1, "repeats %s %q", p, msg)
	}
}

// Store failures that reach the caller through the custodian's BranchKeys,
// RotateDue and Export name each package once, and still wrap the store's
// sentinel.
func TestStoreErrorsSayKeyringOnce(t *testing.T) {
	forEachHierStore(t, func(t *testing.T, e *kmsEnv, s keystore.Store) {
		ctx := context.Background()
		bk := newBranchKeys(t, e, s, e.key(""))
		_, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-a")
		require.NoError(t, err)

		_, err = testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-a")
		require.ErrorIs(t, err, keystore.ErrExists)
		requireStepOnce(t, err, "custody")

		_, err = testkeys.Custodian(t, bk).Rotate(ctx, "tenant-missing")
		require.ErrorIs(t, err, keystore.ErrNotFound)
		requireStepOnce(t, err, "custody")

		// A closed store: its errors name the store, the callers the step.
		require.NoError(t, s.Close())
		_, err = testkeys.Custodian(t, bk).RotateDue(ctx, custody.RotationPolicy{MaxAge: time.Hour})
		requireStepOnce(t, err, "custody")
		err = keystore.Export(ctx, s, &bytes.Buffer{})
		requireStepOnce(t, err, "keystore")
	})
}
