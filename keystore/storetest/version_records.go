package storetest

import (
	"testing"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/stretchr/testify/require"
)

// testVersionRecordKinds: records of the per-version kinds
// (keystore.IsVersionRecordKind), which a store may keep apart from the
// others (the SQL stores keep them in a table of their own), behave as
// every record does: kept, compared and swapped, listed by kind, their
// kinds listed with the others, and kept across a reopen. A kind that
// only looks like one ("version", "versions") is an ordinary kind, and a
// record's name is its own within each kind.
func testVersionRecordKinds(t *testing.T, b Backend) {
	ctx := t.Context()
	loc := b.Fresh(t)
	s := b.open(t, loc)
	r := asRecords(t, s)
	v0 := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Create(ctx, v0))
	v1 := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Rotate(ctx, "tenant", v0.Version, v1))
	n0, n1 := keystore.VersionRecordName("tenant", v0.Version), keystore.VersionRecordName("tenant", v1.Version)
	require.True(t, keystore.IsVersionRecordKind("version-escrow"))
	require.False(t, keystore.IsVersionRecordKind("version"))

	puts := []struct{ kind, name, value string }{
		{"version-escrow", n1, "copy of v1"},
		{"version-escrow", n0, "copy of v0"},
		{"version-recovered", n0, "mark"},
		{"policy", n0, "a policy that happens to share the name"},
		{"version", n0, "an ordinary kind"},
		{"versions", n0, "another ordinary kind"},
	}
	for _, p := range puts {
		rev, err := r.PutRecord(ctx, p.kind, p.name, []byte(p.value), 0)
		require.NoError(t, err, p.kind)
		require.EqualValues(t, 1, rev)
	}
	check := func(s keystore.Store) {
		t.Helper()
		r := asRecords(t, s)
		for _, p := range puts {
			got, err := r.GetRecord(ctx, p.kind, p.name)
			require.NoError(t, err, p.kind)
			require.Equal(t, p.value, string(got.Value), p.kind)
			require.Equal(t, p.kind, got.Kind)
		}
		want := []string{n0, n1}
		if n1 < n0 {
			want = []string{n1, n0}
		}
		list, err := r.ListRecords(ctx, "version-escrow")
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, want, []string{list[0].Name, list[1].Name}, "bytewise order")
		for _, kind := range []string{"version-recovered", "policy", "version", "versions"} {
			list, err := r.ListRecords(ctx, kind)
			require.NoError(t, err)
			require.Len(t, list, 1, "kind %s lists its own records only", kind)
			require.Equal(t, n0, list[0].Name)
		}
		list, err = r.ListRecords(ctx, "version-other")
		require.NoError(t, err)
		require.Empty(t, list)
		kinds, err := s.(keystore.RecordKindLister).RecordKinds(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"policy", "version", "version-escrow", "version-recovered", "versions"}, kinds)
	}
	check(s)

	// Compare-and-swap, and each way it fails, on a per-version kind.
	rev, err := r.PutRecord(ctx, "version-escrow", n0, []byte("copy of v0"), 1)
	require.NoError(t, err)
	require.EqualValues(t, 2, rev)
	_, err = r.PutRecord(ctx, "version-escrow", n0, []byte("stale"), 1)
	require.ErrorIs(t, err, keystore.ErrConflict)
	_, err = r.PutRecord(ctx, "version-escrow", n1, []byte("again"), 0)
	require.ErrorIs(t, err, keystore.ErrExists)
	absent := keystore.VersionRecordName("tenant", keystore.NewBranchKeyVersion())
	_, err = r.PutRecord(ctx, "version-escrow", absent, []byte("x"), 1)
	require.ErrorIs(t, err, keystore.ErrNotFound)
	_, err = r.GetRecord(ctx, "version-escrow", absent)
	require.ErrorIs(t, err, keystore.ErrNotFound)
	_, err = r.GetRecord(ctx, "version-recovered", n1)
	require.ErrorIs(t, err, keystore.ErrNotFound, "a name kept in one per-version kind is not in another")
	got, err := r.GetRecord(ctx, "version-escrow", n0)
	require.NoError(t, err)
	require.EqualValues(t, 2, got.Revision)
	got, err = r.GetRecord(ctx, "policy", n0)
	require.NoError(t, err)
	require.EqualValues(t, 1, got.Revision, "a put of another kind left it alone")

	check(b.open(t, loc))
}
