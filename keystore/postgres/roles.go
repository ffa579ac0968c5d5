package postgres

import (
	"errors"
	"regexp"
	"strings"
)

// ErrPermissionDenied is wrapped by every error of a store operation that
// the database refused because the session's role lacks a privilege
// (SQLSTATE 42501): a service's role calling a custodian's operation, for
// example. The message names the operation; the driver's error stays in
// the chain (errors.As) and names the table.
var ErrPermissionDenied = errors.New("permission denied for this database role")

// Role is the duty a PostgreSQL role has towards the store's tables: what
// GrantStatements grants it. The zero Role is invalid.
//
// The role that created the tables (the first to open the store with New)
// owns them and is the only one that migrates the schema; give it to
// neither services nor custodians.
type Role int

const (
	// RoleService reads branch keys and their versions (Store.Active, Get,
	// List, IDs), counts uses (Store.AddUsage: UPDATE of the usage column
	// only), and reads and writes the per-version records
	// (keystore.IsVersionRecordKind, in phicrypt_version_records: the
	// escrow copy of each version it unwraps, with
	// keyring.HierarchicalConfig.Escrow): what keyring.BranchKeys and
	// keyring.Hierarchical need. It cannot
	// create, rotate, change the state of, rewrap or destroy a key, nor
	// read or write any other record (custody policies and requests, in
	// phicrypt_records, which no service reads).
	RoleService Role = iota + 1
	// RoleRotatingService is RoleService plus what Store.Rotate needs, for
	// a service that rotates a version at its usage cap
	// (keyring.HierarchicalConfig.MaxUsesPerVersion), where the signed
	// custody policy says ServiceMayRotate: it inserts versions and
	// changes their state column, so it can also retire or demote a
	// version (Store.SetState). It still cannot create, rewrap or destroy
	// a key (the wrapped key column is not writable, and a destroyed state
	// needs an empty one), nor touch records other than the per-version
	// ones. Grant it only where the policy allows the rotation.
	RoleRotatingService
	// RoleCustodian does everything custody does: create, rotate, change
	// state, rewrap and destroy versions and keys, and read and write
	// records of every kind (policies, requests, escrow copies and
	// recovery marks), so it also lists record kinds (Store.RecordKinds)
	// and exports backups. It does not count uses and cannot change the
	// schema, delete rows or truncate tables.
	RoleCustodian
)

// String returns the role's name: "service", "rotating-service" or
// "custodian".
func (r Role) String() string {
	switch r {
	case RoleService:
		return "service"
	case RoleRotatingService:
		return "rotating-service"
	case RoleCustodian:
		return "custodian"
	}
	return "invalid role"
}

// GrantConfig says which PostgreSQL role gets which duty over the store in
// which schema.
type GrantConfig struct {
	// Role is the duty (RoleService, RoleRotatingService, RoleCustodian).
	Role Role
	// Grantee is the PostgreSQL role (a login role or a group role its
	// logins are members of) that receives the privileges: a lowercase
	// identifier, letters a-z, digits and underscores, starting with a
	// letter or an underscore, at most 63 bytes, neither "public" nor
	// "none" nor starting with "pg_". It must not own the tables.
	Grantee string
	// Schema holds the store's tables: the schema the connection's
	// search_path selects when the store opens. Empty means "public". The
	// same rules as Grantee apply, except that "public" is allowed.
	Schema string
}

// The store's tables, in the order the statements name them.
const (
	tableMigrations = "phicrypt_schema_migrations"
	tableKeys       = "phicrypt_branch_keys"
	tableVersions   = "phicrypt_branch_key_versions"
	tableRecords    = "phicrypt_records"
	// tableVersionRecords keeps the per-version records
	// (keystore.IsVersionRecordKind), which services write.
	tableVersionRecords = "phicrypt_version_records"
)

// Columns of phicrypt_branch_key_versions a version's insert names (every
// column but seq, which the identity fills) and the records' columns.
const (
	versionInsertColumns = "branch_key_id, version, kms_key_arn, ciphertext, created_at_us, state, usage"
	recordInsertColumns  = "kind, name, value, revision, updated_at_us"
)

// identifier is what GrantStatements accepts as a role or schema name:
// lowercase, so it means the same quoted or not, and short enough that
// PostgreSQL does not truncate it (NAMEDATALEN 64).
var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// GrantStatements returns the SQL statements that give c.Grantee exactly
// the privileges c.Role needs on the store's tables in c.Schema, and no
// others. Run them in one transaction, as the role that owns the tables,
// after the store has been opened once with that role (which creates or
// migrates the tables); run them again after a phicrypt upgrade has
// migrated the schema. They start by revoking every privilege the grantee
// holds on the tables, so applying a narrower role to a grantee takes away
// what a wider one gave.
//
// The statements are the database's own access control: a service holds
// the same Store as a custodian and can call Store.DestroyKey, Rewrap or
// PutRecord (of a custody policy), and only the database can refuse them.
// Records of the per-version kinds (keystore.IsVersionRecordKind) are kept
// in a table of their own, which services may write: the escrow copies of
// the versions they unwrap. A refused operation fails with an error that
// wraps ErrPermissionDenied. See docs/OPERATIONS.md, "Database roles:
// services cannot administer keys".
//
// The store's open-time checks need no more: New reads the schema
// version and, when it is current, takes no lock and changes nothing.
// A role that cannot migrate fails to open a store whose schema is older
// than its phicrypt, with ErrPermissionDenied and advice.
//
// It returns an error for an invalid Role or an invalid name.
func GrantStatements(c GrantConfig) ([]string, error) {
	if c.Role < RoleService || c.Role > RoleCustodian {
		return nil, errors.New("keystore: postgres: GrantConfig.Role is not RoleService, RoleRotatingService or RoleCustodian")
	}
	if err := checkIdentifier(c.Grantee, "Grantee"); err != nil {
		return nil, err
	}
	if c.Grantee == "public" {
		return nil, errors.New(`keystore: postgres: GrantConfig.Grantee must not be "public", which grants to every role`)
	}
	schema := c.Schema
	if schema == "" {
		schema = "public"
	}
	if err := checkIdentifier(schema, "Schema"); err != nil {
		return nil, err
	}
	q := func(table string) string { return quote(schema) + "." + quote(table) }
	to := quote(c.Grantee)
	out := []string{
		"GRANT USAGE ON SCHEMA " + quote(schema) + " TO " + to,
		"REVOKE CREATE ON SCHEMA " + quote(schema) + " FROM " + to,
		"REVOKE ALL ON TABLE " + q(tableMigrations) + ", " + q(tableKeys) + ", " + q(tableVersions) + ", " + q(tableRecords) + ", " +
			q(tableVersionRecords) + " FROM " + to,
	}
	// Services keep the escrow copies of the versions they unwrap; every
	// other record is the custodians'.
	versionRecords := "GRANT SELECT, INSERT (" + recordInsertColumns + "), UPDATE (value, revision, updated_at_us) ON TABLE " +
		q(tableVersionRecords) + " TO " + to
	// Every role reads the schema version (New) and the branch keys.
	reads := q(tableMigrations) + ", " + q(tableKeys) + ", " + q(tableVersions)
	switch c.Role {
	case RoleService:
		out = append(out,
			"GRANT SELECT ON TABLE "+reads+" TO "+to,
			"GRANT UPDATE (usage) ON TABLE "+q(tableVersions)+" TO "+to,
			versionRecords,
		)
	case RoleRotatingService:
		// Store.Rotate locks the branch key's row (SELECT ... FOR UPDATE),
		// which PostgreSQL allows only with UPDATE on one of its columns;
		// the foreign key from every version refuses an actual change of a
		// key's id, and every key has a version.
		out = append(out,
			"GRANT SELECT ON TABLE "+reads+" TO "+to,
			"GRANT UPDATE (branch_key_id) ON TABLE "+q(tableKeys)+" TO "+to,
			"GRANT INSERT ("+versionInsertColumns+"), UPDATE (state, usage) ON TABLE "+q(tableVersions)+" TO "+to,
			versionRecords,
		)
	case RoleCustodian:
		out = append(out,
			"GRANT SELECT ON TABLE "+reads+", "+q(tableRecords)+", "+q(tableVersionRecords)+" TO "+to,
			"GRANT INSERT (branch_key_id), UPDATE (branch_key_id) ON TABLE "+q(tableKeys)+" TO "+to,
			"GRANT INSERT ("+versionInsertColumns+"), UPDATE (kms_key_arn, ciphertext, state) ON TABLE "+q(tableVersions)+" TO "+to,
			"GRANT INSERT ("+recordInsertColumns+"), UPDATE (value, revision, updated_at_us) ON TABLE "+q(tableRecords)+", "+
				q(tableVersionRecords)+" TO "+to,
		)
	}
	return out, nil
}

// checkIdentifier refuses a name GrantStatements cannot put in SQL safely,
// without repeating it (it may be anything, a password pasted by mistake).
func checkIdentifier(name, field string) error {
	if !identifier.MatchString(name) {
		return errors.New("keystore: postgres: GrantConfig." + field + " must be a lowercase identifier: a-z, 0-9 and _, not starting with a digit, 1 to 63 bytes")
	}
	if name == "none" || strings.HasPrefix(name, "pg_") {
		return errors.New(`keystore: postgres: GrantConfig.` + field + ` must not be "none" or start with "pg_", which PostgreSQL reserves`)
	}
	return nil
}

// quote makes a checked identifier a quoted one, so that a name that is
// also an SQL key word ("user", "order") stays a name.
func quote(name string) string { return `"` + name + `"` }

// postgresPermissionDenied reports SQLSTATE 42501, insufficient_privilege,
// from any driver whose errors tell their SQLSTATE.
func postgresPermissionDenied(err error) bool {
	var e interface{ SQLState() string }
	return errors.As(err, &e) && e.SQLState() == "42501"
}
