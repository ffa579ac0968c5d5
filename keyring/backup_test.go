package keyring_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/storetest"
	"github.com/stretchr/testify/require"
)

func exportBackup(t *testing.T, s keystore.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, keystore.Export(t.Context(), s, &buf))
	return buf.Bytes()
}

func emptyStore(t *testing.T, b storetest.Backend) keystore.Store {
	t.Helper()
	return mustOpen(t, b, b.Fresh(t))
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
	for _, tc := range []struct{ from, to storetest.Backend }{
		{fileBackend(), sqliteBackend()},
		{sqliteBackend(), fileBackend()},
	} {
		t.Run(tc.from.Name+"-to-"+tc.to.Name, func(t *testing.T) {
			e := newWrappedStoreEnv(t, tc.from, "")
			total := e.populate(3, "tenant-a", rewrapCanaryID, "tenant-c")
			backup := exportBackup(t, e.store)

			// Wrapped material only: no plaintext key in any encoding.
			for _, pt := range e.plaintext {
				require.NotContains(t, string(backup), base64.StdEncoding.EncodeToString(pt))
			}

			target := emptyStore(t, tc.to)
			require.NoError(t, keystore.Restore(t.Context(), target, bytes.NewReader(backup)))
			want, got := e.all(e.store), e.all(target)
			require.Len(t, got, total)
			require.Equal(t, want, got, "same versions, order, material, key, times and states")
			ids, err := target.IDs(t.Context())
			require.NoError(t, err)
			for _, id := range ids {
				storetest.RequireOneActive(t, target, id)
			}
			require.Equal(t, keystore.StateRetired, got[0].State)

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
	_, err := e.rewrap(custody.RewrapOptions{})
	require.NoError(t, err)
	e.disableOldKey()
	target := emptyStore(t, sqliteBackend())
	require.NoError(t, keystore.Restore(t.Context(), target, bytes.NewReader(exportBackup(t, e.store))))
	for _, v := range e.all(target) {
		require.Equal(t, e.newARN, v.KMSKeyARN)
	}
	e.requireReadable(target)
}

func TestBackupEmptyStore(t *testing.T) {
	src := emptyStore(t, fileBackend())
	target := emptyStore(t, sqliteBackend())
	require.NoError(t, keystore.Restore(t.Context(), target, bytes.NewReader(exportBackup(t, src))))
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
		{"truncated", backup[:len(backup)/2], keystore.ErrBackupCorrupt},
		{"truncated to nothing", nil, keystore.ErrBackupCorrupt},
		{"one ciphertext bit flipped", editBackup(t, backup, flipCiphertext), keystore.ErrBackupCorrupt},
		{"a state changed", editBackup(t, backup, func(doc map[string]any) {
			backupRecords(doc)[0].(map[string]any)["state"] = "decrypt_only"
		}), keystore.ErrBackupCorrupt},
		{"a creation time changed", editBackup(t, backup, func(doc map[string]any) {
			backupRecords(doc)[0].(map[string]any)["created_at"] = "2001-01-01T00:00:00Z"
		}), keystore.ErrBackupCorrupt},
		{"the last record dropped", editBackup(t, backup, func(doc map[string]any) {
			doc["records"] = backupRecords(doc)[:len(backupRecords(doc))-1]
		}), keystore.ErrBackupCorrupt},
		{"a record dropped and the count fixed", editBackup(t, backup, func(doc map[string]any) {
			doc["records"] = backupRecords(doc)[1:]
			doc["manifest"].(map[string]any)["records"] = len(backupRecords(doc))
		}), keystore.ErrBackupCorrupt},
		{"two records swapped", editBackup(t, backup, func(doc map[string]any) {
			r := backupRecords(doc)
			r[0], r[1] = r[1], r[0]
		}), keystore.ErrBackupCorrupt},
		{"manifest digest altered", editBackup(t, backup, func(doc map[string]any) {
			doc["manifest"].(map[string]any)["sha256"] = strings.Repeat("00", 32)
		}), keystore.ErrBackupCorrupt},
		{"manifest missing", editBackup(t, backup, func(doc map[string]any) { delete(doc, "manifest") }), keystore.ErrBackupCorrupt},
		{"unknown field", editBackup(t, backup, func(doc map[string]any) { doc["plaintext"] = "x" }), keystore.ErrBackupCorrupt},
		{"trailing data", append(bytes.Clone(backup), []byte(`{"format":"phicrypt-branch-key-backup"}`)...), keystore.ErrBackupCorrupt},
		{"not JSON", []byte("PK\x03\x04 a zip file"), keystore.ErrBackupCorrupt},
		{"newer format version", editBackup(t, backup, func(doc map[string]any) { doc["version"] = 4 }), keystore.ErrUnsupportedBackup},
		{"another format", editBackup(t, backup, func(doc map[string]any) { doc["format"] = "vault-transit-backup" }), keystore.ErrUnsupportedBackup},
		{"version missing", editBackup(t, backup, func(doc map[string]any) { delete(doc, "version") }), keystore.ErrUnsupportedBackup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := emptyStore(t, sqliteBackend())
			err := keystore.Restore(t.Context(), target, bytes.NewReader(tc.backup))
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
	for name, forged := range map[string][]keystore.BranchKeyVersion{
		"two active versions":      {withState(vs[0], keystore.StateActive), vs[1]},
		"no active version":        {vs[0], withState(vs[1], keystore.StateDecryptOnly)},
		"active is not the newest": {vs[1], vs[0]},
		"a version twice":          {vs[0], vs[0], vs[1]},
		"an invalid version id":    {withVersion(vs[0], strings.ToUpper(vs[0].Version)), vs[1]},
	} {
		t.Run(name, func(t *testing.T) {
			target := emptyStore(t, sqliteBackend())
			err := keystore.Restore(t.Context(), target, bytes.NewReader(forgeBackup(t, forged)))
			require.ErrorIs(t, err, keystore.ErrBackupCorrupt)
			requireNoKeyBytes(t, err, vs)
			ids, err := target.IDs(t.Context())
			require.NoError(t, err)
			require.Empty(t, ids, "nothing was written")
		})
	}
}

func withVersion(v keystore.BranchKeyVersion, version string) keystore.BranchKeyVersion {
	v.Version = version
	return v
}

func withState(v keystore.BranchKeyVersion, s keystore.State) keystore.BranchKeyVersion {
	v.State = s
	return v
}

// forgeBackup writes a backup of records no Store could hold, with valid
// digests, by exporting a fake store that lists them as given.
func forgeBackup(t *testing.T, vs []keystore.BranchKeyVersion) []byte {
	t.Helper()
	return exportBackup(t, listStore{vs: vs})
}

// listStore is a Store that lists fixed versions of one branch key; its
// other methods are not implemented.
type listStore struct {
	keystore.Store
	vs []keystore.BranchKeyVersion
}

func (s listStore) IDs(context.Context) ([]string, error) { return []string{s.vs[0].BranchKeyID}, nil }

func (s listStore) List(context.Context, string) ([]keystore.BranchKeyVersion, error) {
	return s.vs, nil
}

func TestRestoreRefusesNonEmptyStore(t *testing.T) {
	e := newWrappedStoreEnv(t, fileBackend(), "")
	e.populate(2, rewrapCanaryID)
	backup := exportBackup(t, e.store)
	target := emptyStore(t, sqliteBackend())
	existing := storetest.NewVersion("tenant-z", keystore.StateActive)
	require.NoError(t, target.Create(t.Context(), existing))

	err := keystore.Restore(t.Context(), target, bytes.NewReader(backup))
	require.ErrorIs(t, err, keystore.ErrStoreNotEmpty)
	requireNoKeyBytes(t, err, e.all(e.store))
	got := e.all(target)
	require.Len(t, got, 1)
	storetest.RequireVersion(t, existing, got[0])

	// Restoring into the store it came from is refused too.
	require.ErrorIs(t, keystore.Restore(t.Context(), e.store, bytes.NewReader(backup)), keystore.ErrStoreNotEmpty)
}

// usageStore is a file store with two branch keys whose versions have been
// counted, one of them retired.
func usageStore(t *testing.T) keystore.Store {
	ctx := t.Context()
	s := emptyStore(t, fileBackend())
	for i, id := range []string{"tenant-a", "tenant-b"} {
		v0 := storetest.NewVersion(id, keystore.StateActive)
		v0.Usage = uint64(1000 * (i + 1))
		require.NoError(t, s.Create(ctx, v0))
		v1 := storetest.NewVersion(id, keystore.StateActive)
		require.NoError(t, s.Rotate(ctx, id, v0.Version, v1))
		_, err := s.AddUsage(ctx, id, v1.Version, 77)
		require.NoError(t, err)
		_, err = s.AddUsage(ctx, id, v0.Version, 5)
		require.NoError(t, err)
		require.NoError(t, s.SetState(ctx, id, v0.Version, keystore.StateDecryptOnly, keystore.StateRetired))
	}
	return s
}

func listAll(t *testing.T, s keystore.Store) []keystore.BranchKeyVersion {
	ids, err := s.IDs(t.Context())
	require.NoError(t, err)
	var all []keystore.BranchKeyVersion
	for _, id := range ids {
		vs, err := s.List(t.Context(), id)
		require.NoError(t, err)
		all = append(all, vs...)
	}
	return all
}

// TestBackupKeepsUsage: a restore into an empty store keeps every usage
// counter, so it cannot reset how often a version has been used.
func TestBackupKeepsUsage(t *testing.T) {
	src := usageStore(t)
	backup := exportBackup(t, src)
	var head struct{ Version int }
	require.NoError(t, json.Unmarshal(backup, &head))
	require.Equal(t, 2, head.Version)
	target := emptyStore(t, sqliteBackend())
	require.NoError(t, keystore.Restore(t.Context(), target, bytes.NewReader(backup)))
	want, got := listAll(t, src), listAll(t, target)
	require.Equal(t, want, got)
	require.EqualValues(t, 1005, got[0].Usage)
	require.EqualValues(t, 77, got[1].Usage)
	require.Equal(t, keystore.StateRetired, got[0].State)
}

// toBackupV1 rewrites a version 2 backup as version 1 (no usage), with its
// digests recomputed as docs/FORMAT.md describes, independently of the
// package.
func toBackupV1(t *testing.T, backup []byte) []byte {
	return editBackup(t, backup, func(doc map[string]any) {
		doc["version"] = 1
		set := sha256.New()
		set.Write([]byte("phicrypt branch key backup v1 set\x00"))
		set.Write(binary.BigEndian.AppendUint64(nil, uint64(len(backupRecords(doc)))))
		for _, r := range backupRecords(doc) {
			rec := r.(map[string]any)
			delete(rec, "usage")
			ct, err := base64.StdEncoding.DecodeString(rec["ciphertext"].(string))
			require.NoError(t, err)
			created, err := time.Parse(time.RFC3339Nano, rec["created_at"].(string))
			require.NoError(t, err)
			h := sha256.New()
			h.Write([]byte("phicrypt branch key backup v1 record\x00"))
			for _, f := range [][]byte{[]byte(rec["branch_key_id"].(string)), []byte(rec["version"].(string)),
				[]byte(rec["kms_key_arn"].(string)), ct, []byte(created.UTC().Format(time.RFC3339Nano)), []byte(rec["state"].(string))} {
				h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(f))))
				h.Write(f)
			}
			d := h.Sum(nil)
			rec["sha256"] = hex.EncodeToString(d)
			set.Write(d)
		}
		doc["manifest"].(map[string]any)["sha256"] = hex.EncodeToString(set.Sum(nil))
	})
}

// TestRestoreBackupV1: a backup written before usage counters restores
// with every counter 0 and everything else intact.
func TestRestoreBackupV1(t *testing.T) {
	src := usageStore(t)
	v1 := toBackupV1(t, exportBackup(t, src))
	target := emptyStore(t, sqliteBackend())
	require.NoError(t, keystore.Restore(t.Context(), target, bytes.NewReader(v1)))
	want := listAll(t, src)
	for i := range want {
		want[i].Usage = 0
	}
	require.Equal(t, want, listAll(t, target))
}

func TestRestoreRefusesTamperedUsage(t *testing.T) {
	backup := exportBackup(t, usageStore(t))
	v1 := toBackupV1(t, backup)
	for name, bad := range map[string][]byte{
		"usage changed": editBackup(t, backup, func(doc map[string]any) {
			backupRecords(doc)[0].(map[string]any)["usage"] = 0
		}),
		"usage dropped from version 2": editBackup(t, backup, func(doc map[string]any) {
			delete(backupRecords(doc)[1].(map[string]any), "usage")
		}),
		"usage added to version 1": editBackup(t, v1, func(doc map[string]any) {
			backupRecords(doc)[1].(map[string]any)["usage"] = 0
		}),
		"version 2 relabelled 1": editBackup(t, backup, func(doc map[string]any) { doc["version"] = 1 }),
		"version 1 relabelled 2": editBackup(t, v1, func(doc map[string]any) { doc["version"] = 2 }),
	} {
		target := emptyStore(t, sqliteBackend())
		require.ErrorIs(t, keystore.Restore(t.Context(), target, bytes.NewReader(bad)), keystore.ErrBackupCorrupt, name)
		require.Empty(t, listAll(t, target), name)
	}
}
