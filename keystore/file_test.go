package keystore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/storetest"
	"github.com/stretchr/testify/require"
)

func fileBackend() storetest.Backend {
	return storetest.Backend{
		Name:  "file",
		Fresh: func(t *testing.T) string { return filepath.Join(t.TempDir(), "branch-keys") },
		Open: func(_ context.Context, loc string) (keystore.Store, error) {
			return keystore.OpenFileStore(loc)
		},
		FutureSchema: func(t *testing.T, loc string) {
			for _, path := range fileDocuments(t, loc) {
				editFileDocument(t, path, func(doc map[string]any) { doc["schema"] = 4 })
			}
		},
	}
}

func TestFileStore(t *testing.T) { storetest.Run(t, fileBackend()) }

func TestFileStoreTwoProcesses(t *testing.T) {
	storetest.RunTwoProcesses(t, fileBackend(), "TestFileStoreChild")
}

// TestFileStoreChild is a child process of TestFileStoreTwoProcesses.
func TestFileStoreChild(t *testing.T) { storetest.Child(t, fileBackend()) }

// mustOpen opens the store of b at loc, closed after t.
func mustOpen(t *testing.T, b storetest.Backend, loc string) keystore.Store {
	t.Helper()
	s, err := b.Open(t.Context(), loc)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func fileDocuments(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	return paths
}

func editFileDocument(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	edit(doc)
	b, err = json.Marshal(doc)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

// TestFileStoreLayout pins what is on disk: private permissions, one
// document per branch key named by the SHA-256 of its id, the schema
// version first, and no temporary files left behind.
func TestFileStoreLayout(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "branch-keys")
	s, err := keystore.OpenFileStore(dir)
	require.NoError(t, err)
	defer s.Close()
	v0 := storetest.NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Create(ctx, v0))
	require.NoError(t, s.Rotate(ctx, "tenant", v0.Version, storetest.NewVersion("tenant", keystore.StateActive)))

	info, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), info.Mode().Perm())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sum := sha256.Sum256([]byte("tenant"))
	doc := hex.EncodeToString(sum[:]) + ".json"
	docs := fileDocuments(t, dir)
	require.Equal(t, []string{filepath.Join(dir, doc)}, docs)
	require.ElementsMatch(t, []string{".lock", doc}, names)
	info, err = os.Stat(docs[0])
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	b, err := os.ReadFile(docs[0])
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(b), "{\n\t\"schema\": 2,"), "the schema version comes first:\n%s", b)
	var parsed struct {
		BranchKeyID string `json:"branch_key_id"`
		Versions    []struct{ State string }
	}
	require.NoError(t, json.Unmarshal(b, &parsed))
	require.Equal(t, "tenant", parsed.BranchKeyID)
	require.Equal(t, "decrypt_only", parsed.Versions[0].State)
	require.Equal(t, "active", parsed.Versions[1].State)
}

func TestFileStoreRemovesStaleTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, ".tmp-123456")
	require.NoError(t, os.WriteFile(stale, []byte(`{"schema": 1, "trunc`), 0o600))
	other := filepath.Join(dir, "README")
	require.NoError(t, os.WriteFile(other, []byte("not ours"), 0o600))
	s, err := keystore.OpenFileStore(dir)
	require.NoError(t, err)
	defer s.Close()
	require.NoFileExists(t, stale)
	require.FileExists(t, other, "files that are not the store's are left alone")
	ids, err := s.IDs(t.Context())
	require.NoError(t, err)
	require.Empty(t, ids)
}

// TestFileStoreRefusesDamagedDocuments: a document that breaks an invariant
// every write keeps is refused with a clear error, never used.
func TestFileStoreRefusesDamagedDocuments(t *testing.T) {
	cases := map[string]struct {
		edit func(map[string]any)
		want string
	}{
		"two active versions": {func(d map[string]any) {
			d["versions"].([]any)[0].(map[string]any)["state"] = "active"
		}, "2 active versions"},
		"no active version": {func(d map[string]any) {
			d["versions"].([]any)[1].(map[string]any)["state"] = "retired"
		}, "0 active versions"},
		"no versions":      {func(d map[string]any) { d["versions"] = []any{} }, "no versions"},
		"another key's id": {func(d map[string]any) { d["branch_key_id"] = "someone-else" }, "does not match its file name"},
		"unknown field":    {func(d map[string]any) { d["extra"] = true }, "damaged"},
		"unknown state":    {func(d map[string]any) { d["versions"].([]any)[0].(map[string]any)["state"] = "destroyed" }, "damaged"},
		"duplicate version": {func(d map[string]any) {
			d["versions"].([]any)[0].(map[string]any)["version"] = d["versions"].([]any)[1].(map[string]any)["version"]
		}, "twice"},
		"no schema":      {func(d map[string]any) { delete(d, "schema") }, "not a phicrypt branch key document"},
		"negative usage": {func(d map[string]any) { d["versions"].([]any)[0].(map[string]any)["usage"] = -1 }, "damaged"},
		"usage past MaxUsage": {func(d map[string]any) {
			d["versions"].([]any)[0].(map[string]any)["usage"] = uint64(keystore.MaxUsage) + 1
		}, "usage is at most"},
		"usage in schema 1": {func(d map[string]any) {
			d["schema"] = 1
			d["versions"].([]any)[0].(map[string]any)["usage"] = 5
		}, "schema 1 has no usage"},
		"ciphertext too long": {func(d map[string]any) {
			d["versions"].([]any)[0].(map[string]any)["ciphertext"] = strings.Repeat("QUFB", 2049)
		}, "wrapped branch key is 1 to 6144 bytes"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			dir := t.TempDir()
			s, err := keystore.OpenFileStore(dir)
			require.NoError(t, err)
			defer s.Close()
			v0 := storetest.NewVersion("tenant", keystore.StateActive)
			require.NoError(t, s.Create(ctx, v0))
			v1 := storetest.NewVersion("tenant", keystore.StateActive)
			require.NoError(t, s.Rotate(ctx, "tenant", v0.Version, v1))
			editFileDocument(t, fileDocuments(t, dir)[0], c.edit)

			_, err = s.Active(ctx, "tenant")
			require.ErrorContains(t, err, c.want)
			_, err = s.IDs(ctx)
			require.ErrorContains(t, err, c.want)
			err = s.Rotate(ctx, "tenant", v1.Version, storetest.NewVersion("tenant", keystore.StateActive))
			require.ErrorContains(t, err, c.want, "a damaged document is not overwritten")
		})
	}
}

func TestFileStoreTruncatedDocument(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s, err := keystore.OpenFileStore(dir)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Create(ctx, storetest.NewVersion("tenant", keystore.StateActive)))
	path := fileDocuments(t, dir)[0]
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b[:len(b)/2], 0o600))
	_, err = s.Active(ctx, "tenant")
	require.ErrorContains(t, err, "not a phicrypt branch key document")
}

func TestFileStoreClosed(t *testing.T) {
	ctx := t.Context()
	s, err := keystore.OpenFileStore(t.TempDir())
	require.NoError(t, err)
	v := storetest.NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Create(ctx, v))
	require.NoError(t, s.Close())
	require.Error(t, s.Close())
	_, err = s.Active(ctx, "tenant")
	require.ErrorContains(t, err, "closed")
	require.ErrorContains(t, s.Rotate(ctx, "tenant", v.Version, storetest.NewVersion("tenant", keystore.StateActive)), "closed")
}

// TestFileStoreReadsSchema1: documents written before usage counters
// (schema 1, no "usage") are read with usage 0 and upgraded to schema 2 by
// the next write to them; others are left as they are.
func TestFileStoreReadsSchema1(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	var want []keystore.BranchKeyVersion
	for _, id := range []string{"tenant-a", "tenant-b"} {
		v0 := storetest.NewVersion(id, keystore.StateDecryptOnly)
		v1 := storetest.NewVersion(id, keystore.StateActive)
		want = append(want, v0, v1)
		var versions []map[string]any
		for _, v := range []keystore.BranchKeyVersion{v0, v1} {
			versions = append(versions, map[string]any{"version": v.Version, "kms_key_arn": v.KMSKeyARN,
				"ciphertext": v.Ciphertext, "created_at": v.CreatedAt.UTC().Truncate(time.Microsecond), "state": v.State})
		}
		b, err := json.Marshal(map[string]any{"schema": 1, "branch_key_id": id, "versions": versions})
		require.NoError(t, err)
		sum := sha256.Sum256([]byte(id))
		require.NoError(t, os.WriteFile(filepath.Join(dir, hex.EncodeToString(sum[:])+".json"), b, 0o600))
	}
	s, err := keystore.OpenFileStore(dir)
	require.NoError(t, err)
	defer s.Close()
	for i, id := range []string{"tenant-a", "tenant-b"} {
		vs := storetest.RequireOneActive(t, s, id)
		require.Len(t, vs, 2)
		storetest.RequireVersion(t, want[2*i], vs[0])
		storetest.RequireVersion(t, want[2*i+1], vs[1])
	}
	total, err := s.AddUsage(ctx, "tenant-a", want[1].Version, 9)
	require.NoError(t, err)
	require.EqualValues(t, 9, total)
	schemas := map[string]float64{}
	for _, path := range fileDocuments(t, dir) {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		var doc map[string]any
		require.NoError(t, json.Unmarshal(b, &doc))
		schemas[doc["branch_key_id"].(string)] = doc["schema"].(float64)
	}
	require.Equal(t, map[string]float64{"tenant-a": 2, "tenant-b": 1}, schemas)
	require.EqualValues(t, 9, usageOf(t, s, "tenant-a", want[1].Version))
	require.Zero(t, usageOf(t, s, "tenant-b", want[3].Version))
}

// A damaged document is named in errors by the branch key's short
// fingerprint, never by its file name (the id's full, guessable SHA-256).
func TestFileStoreErrorsNameFingerprints(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := keystore.OpenFileStore(dir)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Create(ctx, storetest.NewVersion("MRN-000777", keystore.StateActive)))
	sum := sha256.Sum256([]byte("MRN-000777"))
	full := hex.EncodeToString(sum[:])
	path := filepath.Join(dir, full+".json")
	for _, damage := range []string{`{"schema": 1, "trunc`, `not json`, `{"schema": 9}`, `{"schema": 2, "branch_key_id": "MRN-000777", "versions": []}`} {
		require.NoError(t, os.WriteFile(path, []byte(damage), 0o600))
		_, err := s.Active(ctx, "MRN-000777")
		require.Error(t, err, damage)
		require.NotContains(t, err.Error(), full)
		require.NotContains(t, err.Error(), "MRN-000777")
		require.Contains(t, err.Error(), "branch key #"+full[:8], damage)
	}
}

func usageOf(t *testing.T, s keystore.Store, id, version string) uint64 {
	t.Helper()
	v, err := s.Get(t.Context(), id, version)
	require.NoError(t, err)
	return v.Usage
}
