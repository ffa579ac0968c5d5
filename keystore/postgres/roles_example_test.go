package postgres_test

import (
	"fmt"
	"log"

	"github.com/phicrypt/phicrypt/keystore/postgres"
)

// A service's database role reads branch keys and counts their uses, and
// nothing more: run the statements as the tables' owner, in one
// transaction, and the service's calls of Store.DestroyKey, Rewrap or
// PutRecord fail with postgres.ErrPermissionDenied.
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
	// REVOKE ALL ON TABLE "keys"."phicrypt_schema_migrations", "keys"."phicrypt_branch_keys", "keys"."phicrypt_branch_key_versions", "keys"."phicrypt_records" FROM "billing_svc";
	// GRANT SELECT ON TABLE "keys"."phicrypt_schema_migrations", "keys"."phicrypt_branch_keys", "keys"."phicrypt_branch_key_versions" TO "billing_svc";
	// GRANT UPDATE (usage) ON TABLE "keys"."phicrypt_branch_key_versions" TO "billing_svc";
}
