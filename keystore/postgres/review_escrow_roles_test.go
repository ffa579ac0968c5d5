package postgres_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore/postgres"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// TestReviewServiceRoleEscrows (a defect the review found, now fixed by
// phicrypt_version_records; the rest says how it was): docs/OPERATIONS.md "Break glass
// for branch keys" step 2 and keyring.HierarchicalConfig.Escrow say every
// service that writes needs "write access to the store's records" to
// escrow the versions it unwraps, while the same document's "Database
// roles" table, and postgres.GrantStatements (keystore/postgres/roles.go,
// RoleService and RoleRotatingService: "nor read or write records"), give
// services no access to phicrypt_records. So on PostgreSQL a service set
// up as documented cannot escrow at all: with Escrow set its keyring
// refuses every version (no message can be written or read), and without
// it no version is ever escrowed, so break-glass recovery of branch keys
// is impossible on the one store with documented least-privilege roles.
// Granting the service the records table instead would let it write the
// custody policy and request records the table keeps from it. The roles
// need a grant for the version-escrow record kind only (or escrow records
// kept in their own table).
func TestReviewServiceRoleEscrows(t *testing.T) {
	w := newRoleWorld(t)
	if w == nil {
		return
	}
	ctx := t.Context()
	cust, _ := w.storeAs(postgres.RoleCustodian)
	w.twoVersions(w.custodian(cust))
	escrowKey, err := keyring.GenerateHPKEEscrowKey()
	require.NoError(t, err)
	esc, err := keyring.NewHPKEEscrow("escrow-2026", escrowKey.PublicKey())
	require.NoError(t, err)
	for _, role := range []postgres.Role{postgres.RoleService, postgres.RoleRotatingService} {
		t.Run(role.String(), func(t *testing.T) {
			svc, _ := w.storeAs(role)
			h, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: w.branchKeys(svc, "svc"), BranchKeyID: roleTestKey,
				CacheTTL: time.Hour, PropagationWindow: time.Nanosecond, Escrow: esc})
			require.NoError(t, err)
			t.Cleanup(func() { h.Close() })
			enc, err := phicrypt.New(phicrypt.Config{Keyring: h})
			require.NoError(t, err)
			_, err = enc.Encrypt(ctx, []byte("synthetic lab result"), map[string]string{"ward": "3"})
			require.NoError(t, err, "a service with the documented role and Escrow set must be able to write")
		})
	}
}
