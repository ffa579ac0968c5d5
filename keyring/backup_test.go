package keyring_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/stretchr/testify/require"
)

func exportBackup(t *testing.T, s keyring.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, keyring.Export(t.Context(), s, &buf))
	return buf.Bytes()
}

func emptyStore(t *testing.T, b storeBackend) keyring.Store {
	t.Helper()
	return b.open(t, b.fresh(t))
}

// editBackup rewrites a backup's JSON document, leaving its digests alone.
func editBackup(t *testing.T, backup []byte, edit func(doc map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(backup, &doc))
	edit(doc)
	b, err := json.Marshal(doc)
	require.NoError(t, err)
	return b
}

func backupRecords(doc map[string]any) []any { return doc["records"].([]any) }

func TestBackupRestoreAcrossStoreKinds(t *testing.T) {
	for _, tc := range []struct{ from, to storeBackend }{
		{fileBackend(), sqliteBackend()},
		{sqliteBackend(), fileBackend()},
	} {
		t.Run(tc.from.kind+"-to-"+tc.to.kind, func(t *testing.T) {
			e := newWrappedStoreEnv(t, tc.from, "")
			total := e.populate(3, "tenant-a", rewrapCanaryID, "tenant-c")
			backup := exportBackup(t, e.store)

			// Wrapped material only: no plaintext key in any encoding.
			for _, pt := range e.plaintext {
				require.NotContains(t, string(backup), base64.StdEncoding.EncodeToString(pt))
			}

			target := emptyStore(t, tc.to)
			require.NoError(t, keyring.Restore(t.Context(), target, bytes.NewReader(backup)))
			want, got := e.all(e.store), e.all(target)
			require.Len(t, got, total)
			require.Equal(t, want, got, "same versions, order, material, key, times and states")
			ids, err := target.IDs(t.Context())
			require.NoError(t, err)
			for _, id := range ids {
				requireOneActive(t, target, id)
			}
			require.Equal(t, keyring.StateRetired, got[0].State)

			// Old data stays readable: the restored material unwraps in KMS.
			e.requireReadable(target)
			// And a backup of the restored store is the same backup.
			require.Equal(t, backup, exportBackup(t, target))
		})
	}
}

// Rewrap then restore: the backup carries the new key's ARN and still
// unwraps with the old key disabled.
func TestBackupAfterRewrap(t *testing.T) {
	e := newWrappedStoreEnv(t, fileBackend(), "")
	e.populate(2, "tenant-a", "tenant-b")
	_, err := e.rewrap(keyring.RewrapOptions{})
	require.NoError(t, err)
	e.disableOldKey()
	target := emptyStore(t, sqliteBackend())
	require.NoError(t, keyring.Restore(t.Context(), target, bytes.NewReader(exportBackup(t, e.store))))
	for _, v := range e.all(target) {
		require.Equal(t, e.newARN, v.KMSKeyARN)
	}
	e.requireReadable(target)
}

func TestBackupEmptyStore(t *testing.T) {
	src := emptyStore(t, fileBackend())
	target := emptyStore(t, sqliteBackend())
	require.NoError(t, keyring.Restore(t.Context(), target, bytes.NewReader(exportBackup(t, src))))
	ids, err := target.IDs(t.Context())
	require.NoError(t, err)
	require.Empty(t, ids)
}

func TestRestoreRefusesDamagedBackups(t *testing.T) {
	e := newWrappedStoreEnv(t, fileBackend(), "")
	e.populate(3, "tenant-a", rewrapCanaryID)
	backup := exportBackup(t, e.store)
	versions := e.all(e.store)

	flipCiphertext := func(doc map[string]any) {
		rec := backupRecords(doc)[1].(map[string]any)
		ct, err := base64.StdEncoding.DecodeString(rec["ciphertext"].(string))
		require.NoError(t, err)
		ct[len(ct)/2] ^= 1
		rec["ciphertext"] = base64.StdEncoding.EncodeToString(ct)
	}
	for _, tc := range []struct {
		name   string
		backup []byte
		want   error
	}{
		{"truncated", backup[:len(backup)/2], keyring.ErrBackupCorrupt},
		{"truncated to nothing", nil, keyring.ErrBackupCorrupt},
		{"one ciphertext bit flipped", editBackup(t, backup, flipCiphertext), keyring.ErrBackupCorrupt},
		{"a state changed", editBackup(t, backup, func(doc map[string]any) {
			backupRecords(doc)[0].(map[string]any)["state"] = "decrypt_only"
		}), keyring.ErrBackupCorrupt},
		{"a creation time changed", editBackup(t, backup, func(doc map[string]any) {
			backupRecords(doc)[0].(map[string]any)["created_at"] = "2001-01-01T00:00:00Z"
		}), keyring.ErrBackupCorrupt},
		{"the last record dropped", editBackup(t, backup, func(doc map[string]any) {
			doc["records"] = backupRecords(doc)[:len(backupRecords(doc))-1]
		}), keyring.ErrBackupCorrupt},
		{"a record dropped and the count fixed", editBackup(t, backup, func(doc map[string]any) {
			doc["records"] = backupRecords(doc)[1:]
			doc["manifest"].(map[string]any)["records"] = len(backupRecords(doc))
		}), keyring.ErrBackupCorrupt},
		{"two records swapped", editBackup(t, backup, func(doc map[string]any) {
			r := backupRecords(doc)
			r[0], r[1] = r[1], r[0]
		}), keyring.ErrBackupCorrupt},
		{"manifest digest altered", editBackup(t, backup, func(doc map[string]any) {
			doc["manifest"].(map[string]any)["sha256"] = strings.Repeat("00", 32)
		}), keyring.ErrBackupCorrupt},
		{"manifest missing", editBackup(t, backup, func(doc map[string]any) { delete(doc, "manifest") }), keyring.ErrBackupCorrupt},
		{"unknown field", editBackup(t, backup, func(doc map[string]any) { doc["plaintext"] = "x" }), keyring.ErrBackupCorrupt},
		{"trailing data", append(bytes.Clone(backup), []byte(`{"format":"phicrypt-branch-key-backup"}`)...), keyring.ErrBackupCorrupt},
		{"not JSON", []byte("PK\x03\x04 a zip file"), keyring.ErrBackupCorrupt},
		{"newer format version", editBackup(t, backup, func(doc map[string]any) { doc["version"] = 3 }), keyring.ErrUnsupportedBackup},
		{"another format", editBackup(t, backup, func(doc map[string]any) { doc["format"] = "vault-transit-backup" }), keyring.ErrUnsupportedBackup},
		{"version missing", editBackup(t, backup, func(doc map[string]any) { delete(doc, "version") }), keyring.ErrUnsupportedBackup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := emptyStore(t, sqliteBackend())
			err := keyring.Restore(t.Context(), target, bytes.NewReader(tc.backup))
			require.ErrorIs(t, err, tc.want)
			requireNoKeyBytes(t, err, versions)
			ids, err := target.IDs(t.Context())
			require.NoError(t, err)
			require.Empty(t, ids, "nothing was written")
		})
	}
}

// A record whose digests were recomputed passes the manifest but is still
// checked for what a store can hold: one active version, the newest.
func TestRestoreRefusesImpossibleStates(t *testing.T) {
	e := newWrappedStoreEnv(t, fileBackend(), "")
	e.populate(2, rewrapCanaryID)
	vs := e.all(e.store)
	for name, forged := range map[string][]keyring.BranchKeyVersion{
		"two active versions":      {withState(vs[0], keyring.StateActive), vs[1]},
		"no active version":        {vs[0], withState(vs[1], keyring.StateDecryptOnly)},
		"active is not the newest": {vs[1], vs[0]},
		"a version twice":          {vs[0], vs[0], vs[1]},
		"an invalid version id":    {withVersion(vs[0], strings.ToUpper(vs[0].Version)), vs[1]},
	} {
		t.Run(name, func(t *testing.T) {
			target := emptyStore(t, sqliteBackend())
			err := keyring.Restore(t.Context(), target, bytes.NewReader(forgeBackup(t, forged)))
			require.ErrorIs(t, err, keyring.ErrBackupCorrupt)
			requireNoKeyBytes(t, err, vs)
			ids, err := target.IDs(t.Context())
			require.NoError(t, err)
			require.Empty(t, ids, "nothing was written")
		})
	}
}

func withVersion(v keyring.BranchKeyVersion, version string) keyring.BranchKeyVersion {
	v.Version = version
	return v
}

func withState(v keyring.BranchKeyVersion, s keyring.State) keyring.BranchKeyVersion {
	v.State = s
	return v
}

// forgeBackup writes a backup of records no Store could hold, with valid
// digests, by exporting a fake store that lists them as given.
func forgeBackup(t *testing.T, vs []keyring.BranchKeyVersion) []byte {
	t.Helper()
	return exportBackup(t, listStore{vs: vs})
}

// listStore is a Store that lists fixed versions of one branch key; its
// other methods are not implemented.
type listStore struct {
	keyring.Store
	vs []keyring.BranchKeyVersion
}

func (s listStore) IDs(context.Context) ([]string, error) { return []string{s.vs[0].BranchKeyID}, nil }

func (s listStore) List(context.Context, string) ([]keyring.BranchKeyVersion, error) {
	return s.vs, nil
}

func TestRestoreRefusesNonEmptyStore(t *testing.T) {
	e := newWrappedStoreEnv(t, fileBackend(), "")
	e.populate(2, rewrapCanaryID)
	backup := exportBackup(t, e.store)
	target := emptyStore(t, sqliteBackend())
	existing := newVersion("tenant-z", keyring.StateActive)
	require.NoError(t, target.Create(t.Context(), existing))

	err := keyring.Restore(t.Context(), target, bytes.NewReader(backup))
	require.ErrorIs(t, err, keyring.ErrStoreNotEmpty)
	requireNoKeyBytes(t, err, e.all(e.store))
	got := e.all(target)
	require.Len(t, got, 1)
	requireVersion(t, existing, got[0])

	// Restoring into the store it came from is refused too.
	require.ErrorIs(t, keyring.Restore(t.Context(), e.store, bytes.NewReader(backup)), keyring.ErrStoreNotEmpty)
}
