package keystore_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/storetest"
	"github.com/stretchr/testify/require"
)

func TestFileStoreRecords(t *testing.T) {
	storetest.RunRecords(t, fileBackend(), "TestFileStoreChild")
}

func recordFile(dir, kind, name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(dir, "records", kind, hex.EncodeToString(sum[:])+".json")
}

// TestFileStoreRecordLayout pins what is on disk: records/<kind>/<sha256
// of the name>.json, private permissions, the schema first, the value in
// base64, and no temporary files left behind.
func TestFileStoreRecordLayout(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "branch-keys")
	s, err := keystore.OpenFileStore(dir)
	require.NoError(t, err)
	defer s.Close()
	_, err = s.PutRecord(ctx, "policy", "MRN-000777", []byte("signed"), 0)
	require.NoError(t, err)
	_, err = s.PutRecord(ctx, "policy", "MRN-000777", []byte("signed again"), 1)
	require.NoError(t, err)

	for _, d := range []string{filepath.Join(dir, "records"), filepath.Join(dir, "records", "policy")} {
		info, err := os.Stat(d)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o700), info.Mode().Perm(), d)
	}
	path := recordFile(dir, "policy", "MRN-000777")
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, filepath.Base(path), entries[0].Name())
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	top, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range top {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{".lock", "records"}, names, "no temporary file left")

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(b), "{\n\t\"schema\": 1,"), "the schema version comes first:\n%s", b)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	require.Equal(t, "policy", doc["kind"])
	require.Equal(t, "MRN-000777", doc["name"])
	require.Equal(t, "c2lnbmVkIGFnYWlu", doc["value"], "base64 of the value")
	require.EqualValues(t, 2, doc["revision"])

	// A store with records is still a store: reopened, its branch keys
	// list nothing extra.
	require.NoError(t, s.Close())
	s, err = keystore.OpenFileStore(dir)
	require.NoError(t, err)
	ids, err := s.IDs(ctx)
	require.NoError(t, err)
	require.Empty(t, ids)
}

// TestFileStoreRecordListCap fills a kind's directory past
// MaxListedRecords with raw files (the cap is checked on the count, before
// any is read) and at it with valid ones.
func TestFileStoreRecordListCap(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s, err := keystore.OpenFileStore(dir)
	require.NoError(t, err)
	defer s.Close()
	_, err = s.PutRecord(ctx, "policy", "first", []byte("v"), 0)
	require.NoError(t, err)
	b, err := os.ReadFile(recordFile(dir, "policy", "first"))
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	for i := 1; i < keystore.MaxListedRecords; i++ {
		name := fmt.Sprintf("r%05d", i)
		doc["name"] = name
		b, err := json.Marshal(doc)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(recordFile(dir, "policy", name), b, 0o600))
	}
	// Files that are not records do not count.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "records", "policy", "README"), nil, 0o600))
	list, err := s.ListRecords(ctx, "policy")
	require.NoError(t, err)
	require.Len(t, list, keystore.MaxListedRecords)
	require.Equal(t, "first", list[0].Name)
	require.Equal(t, "r09999", list[len(list)-1].Name)

	require.NoError(t, os.WriteFile(recordFile(dir, "policy", "one too many"), nil, 0o600))
	_, err = s.ListRecords(ctx, "policy")
	require.ErrorIs(t, err, keystore.ErrInvalid)
	require.ErrorContains(t, err, "more than 10000 records of kind policy")
}

// TestFileStoreRefusesDamagedRecords: a record file that no write made is
// refused with a clear error naming the record by kind and fingerprint,
// and is not overwritten.
func TestFileStoreRefusesDamagedRecords(t *testing.T) {
	const name = "MRN-000777"
	sum := sha256.Sum256([]byte(name))
	ref := "record of kind policy #" + hex.EncodeToString(sum[:4])
	cases := map[string]struct {
		edit func(map[string]any)
		want string
	}{
		"future schema":   {func(d map[string]any) { d["schema"] = 2 }, "upgrade phicrypt"},
		"no schema":       {func(d map[string]any) { delete(d, "schema") }, "not a phicrypt record"},
		"another name":    {func(d map[string]any) { d["name"] = "MRN-000778" }, "does not match its path"},
		"another kind":    {func(d map[string]any) { d["kind"] = "other" }, "does not match its path"},
		"revision 0":      {func(d map[string]any) { d["revision"] = 0 }, "revision is at least 1"},
		"empty value":     {func(d map[string]any) { d["value"] = "" }, "record value is 1 to"},
		"unknown field":   {func(d map[string]any) { d["extra"] = true }, "damaged"},
		"no update time":  {func(d map[string]any) { delete(d, "updated_at") }, "update time"},
		"negative revisn": {func(d map[string]any) { d["revision"] = -1 }, "damaged"},
	}
	for what, c := range cases {
		t.Run(what, func(t *testing.T) {
			ctx := t.Context()
			dir := t.TempDir()
			s, err := keystore.OpenFileStore(dir)
			require.NoError(t, err)
			defer s.Close()
			_, err = s.PutRecord(ctx, "policy", name, []byte("v"), 0)
			require.NoError(t, err)
			editFileDocument(t, recordFile(dir, "policy", name), c.edit)

			_, err = s.GetRecord(ctx, "policy", name)
			require.ErrorContains(t, err, c.want)
			require.ErrorContains(t, err, ref)
			require.NotContains(t, err.Error(), name)
			require.NotContains(t, err.Error(), hex.EncodeToString(sum[:]))
			_, err = s.ListRecords(ctx, "policy")
			require.ErrorContains(t, err, c.want)
			_, err = s.PutRecord(ctx, "policy", name, []byte("w"), 1)
			require.ErrorContains(t, err, c.want, "a damaged record is not overwritten")
		})
	}
}

func TestFileStoreRecordsClosed(t *testing.T) {
	ctx := t.Context()
	s, err := keystore.OpenFileStore(t.TempDir())
	require.NoError(t, err)
	_, err = s.PutRecord(ctx, "policy", "p", []byte("v"), 0)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = s.GetRecord(ctx, "policy", "p")
	require.ErrorContains(t, err, "closed")
	_, err = s.PutRecord(ctx, "policy", "p", []byte("w"), 1)
	require.ErrorContains(t, err, "closed")
	_, err = s.ListRecords(ctx, "policy")
	require.ErrorContains(t, err, "closed")
}

// TestFileStoreRecordTimes: UpdatedAt is when the put ran, in UTC.
func TestFileStoreRecordTimes(t *testing.T) {
	ctx := t.Context()
	s, err := keystore.OpenFileStore(t.TempDir())
	require.NoError(t, err)
	defer s.Close()
	from := time.Now()
	_, err = s.PutRecord(ctx, "policy", "p", []byte("v"), 0)
	require.NoError(t, err)
	got, err := s.GetRecord(ctx, "policy", "p")
	require.NoError(t, err)
	storetest.RequireRecord(t, got, "policy", "p", []byte("v"), 1, from, time.Now())
}
