package keystore_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/storetest"
	"github.com/stretchr/testify/require"
)

// noVersionKindListing is a store that refuses to list the records of
// the per-version kinds, as a store holding more of them than
// MaxListedRecords does (ErrInvalid).
type noVersionKindListing struct {
	keystore.Store
	keystore.Records
	keystore.RecordKindLister
}

func (s noVersionKindListing) ListRecords(ctx context.Context, kind string) ([]keystore.Record, error) {
	if keystore.IsVersionRecordKind(kind) {
		return nil, errors.New("more records than MaxListedRecords")
	}
	return s.Records.ListRecords(ctx, kind)
}

func (s noVersionKindListing) Close() error { return s.Store.Close() }

// TestBackupCarriesVersionRecords: the per-version records (kinds
// beginning "version-", such as branch-key escrow copies) travel in a backup
// read version by version, never through ListRecords, which stops at
// MaxListedRecords while a store may hold one per version; they come back
// in Export's order beside the other kinds, and the restored store holds
// each under its name. A record of that kind naming no version is not
// carried.
func TestBackupCarriesVersionRecords(t *testing.T) {
	ctx := t.Context()
	const escrowKind, markKind = keystore.VersionRecordKindPrefix + "escrow", keystore.VersionRecordKindPrefix + "recovered"
	require.True(t, keystore.IsVersionRecordKind(escrowKind))
	require.False(t, keystore.IsVersionRecordKind("policy"))
	for _, tc := range []struct{ from, to storetest.Backend }{
		{fileBackend(), sqliteBackend()},
		{sqliteBackend(), fileBackend()},
	} {
		t.Run(tc.from.Name+"-to-"+tc.to.Name, func(t *testing.T) {
			src := recordsStore(t, tc.from)
			r := src.(keystore.Records)
			versions := allVersions(t, src)
			require.Len(t, versions, 4)
			// Three of the four versions have a record; the first's
			// value is a one-byte tombstone.
			for i, v := range versions[:3] {
				value := []byte{0x01, byte(i)}
				if i == 0 {
					value = []byte{0x00}
				}
				_, err := r.PutRecord(ctx, escrowKind, keystore.VersionRecordName(v.BranchKeyID, v.Version), value, 0)
				require.NoError(t, err)
			}
			_, err := r.PutRecord(ctx, markKind, keystore.VersionRecordName(versions[1].BranchKeyID, versions[1].Version), []byte{1}, 0)
			require.NoError(t, err)
			_, err = r.PutRecord(ctx, escrowKind, "not-a-version/tenant-a", []byte{9}, 0)
			require.NoError(t, err)

			wrapped := noVersionKindListing{Store: src, Records: r, RecordKindLister: src.(keystore.RecordKindLister)}
			var buf bytes.Buffer
			require.NoError(t, keystore.Export(ctx, wrapped, &buf))

			target := mustOpen(t, tc.to, tc.to.Fresh(t))
			require.NoError(t, keystore.Restore(ctx, target, bytes.NewReader(buf.Bytes())))
			got := allRecords(t, target)
			var kinds []string
			for _, rec := range got {
				kinds = append(kinds, rec.Kind)
			}
			require.Equal(t, []string{"applied-change", "policy", "policy", "policy", escrowKind, escrowKind, escrowKind, markKind}, kinds)
			for i, v := range versions[:3] {
				rec, err := target.(keystore.Records).GetRecord(ctx, escrowKind, keystore.VersionRecordName(v.BranchKeyID, v.Version))
				require.NoError(t, err, i)
				want := []byte{0x01, byte(i)}
				if i == 0 {
					want = []byte{0x00}
				}
				require.Equal(t, want, rec.Value, i)
			}
			_, err = target.(keystore.Records).GetRecord(ctx, escrowKind, keystore.VersionRecordName(versions[3].BranchKeyID, versions[3].Version))
			require.ErrorIs(t, err, keystore.ErrNotFound)
		})
	}
}
