package postgres_test

import (
	"bytes"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/postgres"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

// rawAs makes a role with duty r, grants it, and returns its own database
// handle (for raw SQL) and the store opened on it.
func (w *roleWorld) rawAs(r postgres.Role) (*sql.DB, *postgres.Store) {
	name, user := w.newRole(strings.ReplaceAll(r.String(), "-", "_"))
	w.grant(name, r)
	db := w.open(user, w.schema)
	s, err := postgres.New(w.t.Context(), db)
	require.NoError(w.t, err, "opening the store as a %v role", r)
	return db, s
}

// requireNoDelete checks that db's role can neither delete nor truncate
// the rows of either records table.
func requireNoDelete(t *testing.T, db *sql.DB) {
	t.Helper()
	for _, table := range []string{"phicrypt_records", "phicrypt_version_records"} {
		for _, stmt := range []string{"DELETE FROM " + table, "TRUNCATE " + table} {
			_, err := db.Exec(stmt)
			require.ErrorContains(t, err, "permission denied", stmt)
			require.ErrorContains(t, err, "SQLSTATE 42501", stmt)
		}
	}
}

// TestServiceRolesKeepVersionRecords: a service's and a rotating
// service's roles read and write the per-version records (the escrow
// copies their keyrings make, in phicrypt_version_records), and still
// cannot read, write or list any other record (phicrypt_records: the
// custody policies), nor delete any; the custodian's role reads and writes
// both tables and lists the kinds of both, and deletes nothing either.
func TestServiceRolesKeepVersionRecords(t *testing.T) {
	w := newRoleWorld(t)
	if w == nil {
		return
	}
	ctx := t.Context()
	custDB, cust := w.rawAs(postgres.RoleCustodian)
	vs := w.twoVersions(w.custodian(cust))
	old, active := vs[0], vs[1]
	_, err := cust.PutRecord(ctx, "policy", "patient-*", []byte("a signed policy"), 0)
	require.NoError(t, err)
	escrowKey, err := keyring.GenerateHPKEEscrowKey()
	require.NoError(t, err)
	esc, err := keyring.NewHPKEEscrow("escrow-2026", escrowKey.PublicKey())
	require.NoError(t, err)

	for i, role := range []postgres.Role{postgres.RoleService, postgres.RoleRotatingService} {
		t.Run(role.String(), func(t *testing.T) {
			db, svc := w.rawAs(role)

			// The keyring escrows the version it uses; a backfill the
			// other; the custodian's side sees both copies.
			bk := w.branchKeys(svc, "svc")
			h, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: roleTestKey,
				CacheTTL: time.Hour, PropagationWindow: time.Nanosecond, Escrow: esc})
			require.NoError(t, err)
			t.Cleanup(func() { h.Close() })
			enc, err := phicrypt.New(phicrypt.Config{Keyring: h})
			require.NoError(t, err)
			msg, err := enc.Encrypt(ctx, []byte("synthetic lab result"), nil)
			require.NoError(t, err)
			pt, _, err := enc.Decrypt(ctx, msg, nil)
			require.NoError(t, err)
			require.Equal(t, "synthetic lab result", string(pt))
			custKeys := w.branchKeys(cust, "custodian")
			has, err := custKeys.EscrowStatus(ctx, active, esc.KeyDigest())
			require.NoError(t, err)
			require.True(t, has, "the service escrowed the active version")
			if i == 0 {
				has, err = custKeys.EscrowStatus(ctx, old, esc.KeyDigest())
				require.NoError(t, err)
				require.False(t, has, "no backfill yet")
			}
			_, err = bk.Escrow(ctx, esc, roleTestKey)
			require.NoError(t, err)
			has, err = custKeys.EscrowStatus(ctx, old, esc.KeyDigest())
			require.NoError(t, err)
			require.True(t, has, "the backfill escrowed the older version")

			// Per-version records directly: put, compare-and-swap, get, list.
			name := keystore.VersionRecordName(roleTestKey, keystore.NewBranchKeyVersion())
			rev, err := svc.PutRecord(ctx, "version-escrow", name, []byte("one"), 0)
			require.NoError(t, err)
			require.EqualValues(t, 1, rev)
			rev, err = svc.PutRecord(ctx, "version-escrow", name, []byte("two"), 1)
			require.NoError(t, err)
			require.EqualValues(t, 2, rev)
			_, err = svc.PutRecord(ctx, "version-escrow", name, []byte("stale"), 1)
			require.ErrorIs(t, err, keystore.ErrConflict)
			got, err := svc.GetRecord(ctx, "version-escrow", name)
			require.NoError(t, err)
			require.Equal(t, []byte("two"), got.Value)
			list, err := svc.ListRecords(ctx, "version-escrow")
			require.NoError(t, err)
			require.Len(t, list, 3+i, "two versions' copies and the direct ones")
			got, err = cust.GetRecord(ctx, "version-escrow", name)
			require.NoError(t, err, "the custodian reads what the service wrote")
			require.Equal(t, []byte("two"), got.Value)

			// Nothing of phicrypt_records, and no deleting.
			before := w.snapshot()
			_, err = svc.PutRecord(ctx, "policy", "patient-*", []byte("a policy no quorum signed"), 1)
			requireDenied(t, err, "storing a record")
			_, err = svc.PutRecord(ctx, "policy", roleTestKey, []byte("a policy no quorum signed"), 0)
			requireDenied(t, err, "storing a record")
			_, err = svc.PutRecord(ctx, "version", roleTestKey, []byte("a kind without the prefix's hyphen"), 0)
			requireDenied(t, err, "storing a record")
			_, err = svc.GetRecord(ctx, "policy", "patient-*")
			requireDenied(t, err, "reading a record")
			_, err = svc.ListRecords(ctx, "policy")
			requireDenied(t, err, "listing records")
			_, err = svc.RecordKinds(ctx)
			requireDenied(t, err, "listing record kinds")
			requireNoDelete(t, db)
			_, err = db.Exec(`UPDATE phicrypt_version_records SET kind = 'version-recovered' WHERE name = $1`, name)
			require.ErrorContains(t, err, "permission denied", "a record's key cannot be changed")
			require.Equal(t, before, w.snapshot(), "a refused operation changes nothing")
		})
	}

	// The custodian: both tables, every kind listed, nothing deleted.
	mark := keystore.VersionRecordName(roleTestKey, old.Version)
	_, err = cust.PutRecord(ctx, "version-recovered", mark, []byte{1}, 0)
	require.NoError(t, err)
	rec, err := cust.GetRecord(ctx, "version-recovered", mark)
	require.NoError(t, err)
	require.Equal(t, []byte{1}, rec.Value)
	_, err = cust.PutRecord(ctx, "policy", "patient-*", []byte("the next signed policy"), 1)
	require.NoError(t, err)
	kinds, err := cust.RecordKinds(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"policy", "version-escrow", "version-recovered"}, kinds)
	requireNoDelete(t, custDB)

	// A backup the custodian exports carries the records of both tables
	// (of the per-version kinds, those of the backup's versions).
	var buf bytes.Buffer
	require.NoError(t, keystore.Export(ctx, cust, &buf))
	restored, err := keystore.OpenFileStore(t.TempDir())
	require.NoError(t, err)
	require.NoError(t, keystore.Restore(ctx, restored, &buf))
	kinds, err = restored.RecordKinds(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"policy", "version-escrow", "version-recovered"}, kinds)
	for kind, names := range map[string][]string{
		"policy":            {"patient-*"},
		"version-escrow":    {keystore.VersionRecordName(roleTestKey, old.Version), keystore.VersionRecordName(roleTestKey, active.Version)},
		"version-recovered": {mark},
	} {
		got, err := restored.ListRecords(ctx, kind)
		require.NoError(t, err)
		require.Len(t, got, len(names), kind)
		for _, name := range names {
			want, err := cust.GetRecord(ctx, kind, name)
			require.NoError(t, err)
			r, err := restored.GetRecord(ctx, kind, name)
			require.NoError(t, err)
			require.Equal(t, want.Value, r.Value)
		}
	}
}
