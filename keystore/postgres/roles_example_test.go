package postgres_test

import (
	"fmt"
	"log"

	"github.com/phicrypt/phicrypt/keystore/postgres"
)

// A service's database role reads branch keys, counts their uses and
// keeps the escrow copies of their versions (the per-version records),
// and nothing more: run the statements as the tables' owner, in one
// transaction, and the service's calls of Store.DestroyKey, Rewrap or
// PutRecord of a custody policy fail with postgres.ErrPermissionDenied.
func ExampleGrantStatements() {
	stmts, err := postgres.GrantStatements(postgres.GrantConfig{Role: postgres.RoleService, Grantee: "billing_svc", Schema: "keys"})
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range stmts {
		fmt.Println(s + ";")
	}
	// Output:
	// GRANT USAGE ON SCHEMA "keys" TO "billing_svc";
	// REVOKE CREATE ON SCHEMA "keys" FROM "billing_svc";
	// REVOKE ALL ON TABLE "keys"."phicrypt_schema_migrations", "keys"."phicrypt_branch_keys", "keys"."phicrypt_branch_key_versions", "keys"."phicrypt_records", "keys"."phicrypt_version_records" FROM "billing_svc";
	// GRANT SELECT ON TABLE "keys"."phicrypt_schema_migrations", "keys"."phicrypt_branch_keys", "keys"."phicrypt_branch_key_versions" TO "billing_svc";
	// GRANT UPDATE (usage) ON TABLE "keys"."phicrypt_branch_key_versions" TO "billing_svc";
	// GRANT SELECT, INSERT (kind, name, value, revision, updated_at_us), UPDATE (value, revision, updated_at_us) ON TABLE "keys"."phicrypt_version_records" TO "billing_svc";
}
