package keystore_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/storetest"
	"github.com/stretchr/testify/require"
)

// recordsStore makes a store of b with two branch keys and records of two
// kinds, one of them put three times.
func recordsStore(t *testing.T, b storetest.Backend) keystore.Store {
	ctx := t.Context()
	s := mustOpen(t, b, b.Fresh(t))
	for _, id := range []string{"tenant-a", "tenant-b"} {
		v0 := storetest.NewVersion(id, keystore.StateActive)
		require.NoError(t, s.Create(ctx, v0))
		require.NoError(t, s.Rotate(ctx, id, v0.Version, storetest.NewVersion(id, keystore.StateActive)))
	}
	r := s.(keystore.Records)
	for i, name := range []string{"tenant-b", "tenant-a", "global"} {
		_, err := r.PutRecord(ctx, "policy", name, []byte("policy "+name), 0)
		require.NoError(t, err, i)
	}
	for rev := uint64(1); rev < 3; rev++ {
		_, err := r.PutRecord(ctx, "policy", "global", []byte(fmt.Sprintf("policy global v%d", rev+1)), rev)
		require.NoError(t, err)
	}
	_, err := r.PutRecord(ctx, "applied-change", "cr-0001", []byte{0, 0xff, 1}, 0)
	require.NoError(t, err)
	return s
}

func export(t *testing.T, s keystore.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, keystore.Export(t.Context(), s, &buf))
	return buf.Bytes()
}

func allRecords(t *testing.T, s keystore.Store) []keystore.Record {
	t.Helper()
	kinds, err := s.(keystore.RecordKindLister).RecordKinds(t.Context())
	require.NoError(t, err)
	var out []keystore.Record
	for _, kind := range kinds {
		list, err := s.(keystore.Records).ListRecords(t.Context(), kind)
		require.NoError(t, err)
		out = append(out, list...)
	}
	return out
}

func allVersions(t *testing.T, s keystore.Store) []keystore.BranchKeyVersion {
	t.Helper()
	ids, err := s.IDs(t.Context())
	require.NoError(t, err)
	var out []keystore.BranchKeyVersion
	for _, id := range ids {
		vs, err := s.List(t.Context(), id)
		require.NoError(t, err)
		out = append(out, vs...)
	}
	return out
}

// TestBackupCarriesRecords: a backup of a store with records is version 3
// and carries every record of every kind; Restore puts them back (at
// revision 1) beside the branch keys, across store kinds.
func TestBackupCarriesRecords(t *testing.T) {
	for _, tc := range []struct{ from, to storetest.Backend }{
		{fileBackend(), sqliteBackend()},
		{sqliteBackend(), fileBackend()},
	} {
		t.Run(tc.from.Name+"-to-"+tc.to.Name, func(t *testing.T) {
			src := recordsStore(t, tc.from)
			backup := export(t, src)
			var head struct {
				Version  int
				Manifest struct {
					NamedRecords int `json:"named_records"`
				}
			}
			require.NoError(t, json.Unmarshal(backup, &head))
			require.Equal(t, 3, head.Version)
			require.Equal(t, 4, head.Manifest.NamedRecords)

			target := mustOpen(t, tc.to, tc.to.Fresh(t))
			from := time.Now()
			require.NoError(t, keystore.Restore(t.Context(), target, bytes.NewReader(backup)))
			to := time.Now()
			require.Equal(t, allVersions(t, src), allVersions(t, target))
			want, got := allRecords(t, src), allRecords(t, target)
			require.Len(t, got, 4)
			for i := range want {
				storetest.RequireRecord(t, got[i], want[i].Kind, want[i].Name, want[i].Value, 1, from, to)
			}
			require.Equal(t, "applied-change", got[0].Kind, "kinds in order")
			require.Equal(t, []byte("policy global v3"), got[1].Value)
		})
	}
}

// TestBackupWithoutRecordsIsVersion2: a store with no records is backed up
// as version 2, which a phicrypt that predates records restores.
func TestBackupWithoutRecordsIsVersion2(t *testing.T) {
	s := mustOpen(t, fileBackend(), fileBackend().Fresh(t))
	require.NoError(t, s.Create(t.Context(), storetest.NewVersion("tenant", keystore.StateActive)))
	backup := export(t, s)
	require.Contains(t, string(backup), `"version": 2,`)
	require.NotContains(t, string(backup), "named_records")
}

// TestBackupRecordDigests recomputes the named records' digests and the
// manifest's as docs/FORMAT.md describes, independently of the package.
func TestBackupRecordDigests(t *testing.T) {
	backup := export(t, recordsStore(t, fileBackend()))
	var doc struct {
		Records []struct {
			SHA256 string `json:"sha256"`
		} `json:"records"`
		NamedRecords []struct {
			Kind, Name, Value, SHA256 string
			Revision                  uint64
			UpdatedAt                 time.Time `json:"updated_at"`
		} `json:"named_records"`
		Manifest struct{ SHA256 string }
	}
	require.NoError(t, json.Unmarshal(backup, &doc))
	set := sha256.New()
	set.Write([]byte("phicrypt branch key backup v3 set\x00"))
	set.Write(binary.BigEndian.AppendUint64(nil, uint64(len(doc.Records))))
	for _, r := range doc.Records {
		d, err := hex.DecodeString(r.SHA256)
		require.NoError(t, err)
		set.Write(d)
	}
	set.Write(binary.BigEndian.AppendUint64(nil, uint64(len(doc.NamedRecords))))
	for _, r := range doc.NamedRecords {
		value, err := base64.StdEncoding.DecodeString(r.Value)
		require.NoError(t, err)
		h := sha256.New()
		h.Write([]byte("phicrypt branch key backup v3 named record\x00"))
		for _, f := range [][]byte{[]byte(r.Kind), []byte(r.Name), value, binary.BigEndian.AppendUint64(nil, r.Revision),
			[]byte(r.UpdatedAt.UTC().Format(time.RFC3339Nano))} {
			h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(f))))
			h.Write(f)
		}
		d := h.Sum(nil)
		require.Equal(t, hex.EncodeToString(d), r.SHA256, "%s/%s", r.Kind, r.Name)
		set.Write(d)
	}
	require.Equal(t, hex.EncodeToString(set.Sum(nil)), doc.Manifest.SHA256)
	require.Equal(t, "global", doc.NamedRecords[1].Name)
	require.EqualValues(t, 3, doc.NamedRecords[1].Revision)
}

func editJSON(t *testing.T, backup []byte, edit func(doc map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(backup, &doc))
	edit(doc)
	b, err := json.Marshal(doc)
	require.NoError(t, err)
	return b
}

func named(doc map[string]any) []any { return doc["named_records"].([]any) }

// TestRestoreRefusesDamagedRecords: every change to the records of a
// backup that its digests do not match is refused before anything is
// written.
func TestRestoreRefusesDamagedRecords(t *testing.T) {
	backup := export(t, recordsStore(t, fileBackend()))
	for name, bad := range map[string][]byte{
		"a value changed": editJSON(t, backup, func(doc map[string]any) {
			named(doc)[1].(map[string]any)["value"] = base64.StdEncoding.EncodeToString([]byte("policy: anyone may destroy"))
		}),
		"a revision changed": editJSON(t, backup, func(doc map[string]any) { named(doc)[1].(map[string]any)["revision"] = 9 }),
		"a name changed":     editJSON(t, backup, func(doc map[string]any) { named(doc)[1].(map[string]any)["name"] = "globa1" }),
		"a kind changed":     editJSON(t, backup, func(doc map[string]any) { named(doc)[0].(map[string]any)["kind"] = "policy" }),
		"a record dropped": editJSON(t, backup, func(doc map[string]any) {
			doc["named_records"] = named(doc)[1:]
			doc["manifest"].(map[string]any)["named_records"] = 3
		}),
		"the count changed": editJSON(t, backup, func(doc map[string]any) { doc["manifest"].(map[string]any)["named_records"] = 3 }),
		"two swapped": editJSON(t, backup, func(doc map[string]any) {
			r := named(doc)
			r[1], r[2] = r[2], r[1]
		}),
		"a record twice": editJSON(t, backup, func(doc map[string]any) {
			doc["named_records"] = append(named(doc), named(doc)[3])
			doc["manifest"].(map[string]any)["named_records"] = 5
		}),
		"relabelled version 2": editJSON(t, backup, func(doc map[string]any) { doc["version"] = 2 }),
		"an invalid kind":      editJSON(t, backup, func(doc map[string]any) { named(doc)[0].(map[string]any)["kind"] = "Applied" }),
		"revision 0":           editJSON(t, backup, func(doc map[string]any) { named(doc)[0].(map[string]any)["revision"] = 0 }),
		"an unknown field":     editJSON(t, backup, func(doc map[string]any) { named(doc)[0].(map[string]any)["signer"] = "x" }),
	} {
		t.Run(name, func(t *testing.T) {
			target := mustOpen(t, sqliteBackend(), sqliteBackend().Fresh(t))
			err := keystore.Restore(t.Context(), target, bytes.NewReader(bad))
			require.ErrorIs(t, err, keystore.ErrBackupCorrupt)
			require.NotContains(t, err.Error(), "tenant")
			require.NotContains(t, err.Error(), "global")
			require.Empty(t, allVersions(t, target), "nothing was written")
			require.Empty(t, allRecords(t, target), "nothing was written")
		})
	}
}

// TestRestoreRefusesTargetWithRecords: a target that holds a record of a
// kind the backup holds is not empty; records of other kinds are no bar.
func TestRestoreRefusesTargetWithRecords(t *testing.T) {
	ctx := t.Context()
	backup := export(t, recordsStore(t, fileBackend()))
	target := mustOpen(t, sqliteBackend(), sqliteBackend().Fresh(t))
	_, err := target.(keystore.Records).PutRecord(ctx, "applied-change", "cr-0999", []byte("x"), 0)
	require.NoError(t, err)
	err = keystore.Restore(ctx, target, bytes.NewReader(backup))
	require.ErrorIs(t, err, keystore.ErrStoreNotEmpty)
	require.Empty(t, allVersions(t, target))
	require.Len(t, allRecords(t, target), 1)

	other := mustOpen(t, sqliteBackend(), sqliteBackend().Fresh(t))
	_, err = other.(keystore.Records).PutRecord(ctx, "unrelated", "x", []byte("x"), 0)
	require.NoError(t, err)
	require.NoError(t, keystore.Restore(ctx, other, bytes.NewReader(backup)))
	require.Len(t, allRecords(t, other), 5)
}

// storeOnly hides every method of a store but Store's.
type storeOnly struct{ keystore.Store }

// recordsNoKinds keeps records but cannot list their kinds.
type recordsNoKinds struct {
	keystore.Store
	keystore.Records
}

func (s recordsNoKinds) Close() error { return s.Store.Close() }

// TestBackupRecordsNeedTheInterfaces: a backup with records is not
// restored into a store without Records (nothing written), and a store
// with Records that cannot list its kinds is not exported (its records
// would be left out).
func TestBackupRecordsNeedTheInterfaces(t *testing.T) {
	src := recordsStore(t, fileBackend())
	backup := export(t, src)
	target := mustOpen(t, fileBackend(), fileBackend().Fresh(t))
	err := keystore.Restore(t.Context(), storeOnly{target}, bytes.NewReader(backup))
	require.ErrorContains(t, err, "does not keep records")
	require.Empty(t, allVersions(t, target))

	err = keystore.Export(t.Context(), recordsNoKinds{src, src.(keystore.Records)}, &bytes.Buffer{})
	require.ErrorContains(t, err, "cannot list their kinds")

	// A store without Records exports its branch keys (version 2).
	var buf bytes.Buffer
	require.NoError(t, keystore.Export(t.Context(), storeOnly{src}, &buf))
	require.True(t, strings.Contains(buf.String(), `"version": 2,`))
}
