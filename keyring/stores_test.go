package keyring_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/sqlite"
	"github.com/phicrypt/phicrypt/keystore/storetest"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"
)

// The stores keyring's tests run against; keystore's own tests run the
// conformance suite on every back end.

func fileBackend() storetest.Backend {
	return storetest.Backend{
		Name:  "file",
		Fresh: func(t *testing.T) string { return filepath.Join(t.TempDir(), "branch-keys") },
		Open:  func(_ context.Context, loc string) (keystore.Store, error) { return keystore.OpenFileStore(loc) },
	}
}

func sqliteBackend() storetest.Backend {
	return storetest.Backend{
		Name:  "sqlite",
		Fresh: func(t *testing.T) string { return filepath.Join(t.TempDir(), "keys.db") },
		Open:  func(ctx context.Context, loc string) (keystore.Store, error) { return sqlite.Open(ctx, loc) },
	}
}

// mustOpen opens the store of b at loc, closed after t.
func mustOpen(t *testing.T, b storetest.Backend, loc string) keystore.Store {
	t.Helper()
	s, err := b.Open(t.Context(), loc)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func usageOf(t *testing.T, s keystore.Store, id, version string) uint64 {
	t.Helper()
	v, err := s.Get(t.Context(), id, version)
	require.NoError(t, err)
	return v.Usage
}
