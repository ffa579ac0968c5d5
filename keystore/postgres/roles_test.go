package postgres_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/audit"
	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/postgres"
	"github.com/phicrypt/phicrypt/keystore/storetest"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
)

// A branch key id that must never appear in an error.
const roleTestKey = "patient-4711-canary"

// TestGrantStatementsRefusesBadInput: names that are not plain lowercase
// identifiers, reserved names and invalid roles are refused, without the
// name in the error.
func TestGrantStatementsRefusesBadInput(t *testing.T) {
	for _, name := range []string{"", "Svc", "svc-1", "1svc", `svc"; DROP TABLE phicrypt_records; --`, "svc role",
		"public", "none", "pg_monitor", strings.Repeat("s", 64), "sv\u00e9"} {
		_, err := postgres.GrantStatements(postgres.GrantConfig{Role: postgres.RoleService, Grantee: name})
		require.Error(t, err, "grantee %q", name)
		if name != "" && name != "public" && name != "none" && !strings.HasPrefix(name, "pg_") {
			require.NotContains(t, err.Error(), name, "the name is not repeated")
		}
	}
	for _, schema := range []string{"Keys", "pg_catalog", "a.b", `x"y`, strings.Repeat("s", 64)} {
		_, err := postgres.GrantStatements(postgres.GrantConfig{Role: postgres.RoleService, Grantee: "svc", Schema: schema})
		require.Error(t, err, "schema %q", schema)
	}
	for _, r := range []postgres.Role{0, -1, postgres.RoleCustodian + 1} {
		_, err := postgres.GrantStatements(postgres.GrantConfig{Role: r, Grantee: "svc"})
		require.Error(t, err, "role %d", r)
		require.Equal(t, "invalid role", r.String())
	}
	got, err := postgres.GrantStatements(postgres.GrantConfig{Role: postgres.RoleService, Grantee: "user", Schema: strings.Repeat("s", 63)})
	require.NoError(t, err)
	require.Contains(t, got[0], `TO "user"`, "a key word stays a name, quoted")
	got, err = postgres.GrantStatements(postgres.GrantConfig{Role: postgres.RoleCustodian, Grantee: "c"})
	require.NoError(t, err)
	require.Equal(t, `GRANT USAGE ON SCHEMA "public" TO "c"`, got[0], "no schema means public")
}

// TestOperationsDocShowsGrantStatements: the SQL in docs/OPERATIONS.md is
// what GrantStatements returns for the example names, so the two cannot
// drift apart.
func TestOperationsDocShowsGrantStatements(t *testing.T) {
	doc, err := os.ReadFile("../../docs/OPERATIONS.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(doc), "\n## Database roles: services cannot administer keys\n")
	require.True(t, ok, "docs/OPERATIONS.md has no section \"Database roles: services cannot administer keys\"")
	section, _, _ = strings.Cut(section, "\n## ")
	var blocks []string
	for rest := section; ; {
		_, after, ok := strings.Cut(rest, "```sql\n")
		if !ok {
			break
		}
		block, tail, ok := strings.Cut(after, "```")
		require.True(t, ok, "an unterminated sql block")
		blocks = append(blocks, block)
		rest = tail
	}
	var want []string
	for _, g := range []postgres.GrantConfig{
		{Role: postgres.RoleService, Grantee: "phicrypt_service", Schema: "phicrypt"},
		{Role: postgres.RoleRotatingService, Grantee: "phicrypt_rotating_service", Schema: "phicrypt"},
		{Role: postgres.RoleCustodian, Grantee: "phicrypt_custodian", Schema: "phicrypt"},
	} {
		stmts, err := postgres.GrantStatements(g)
		require.NoError(t, err)
		want = append(want, "-- "+g.Role.String()+"\n"+strings.Join(stmts, ";\n")+";\n")
	}
	require.Equal(t, want, blocks, "regenerate the SQL blocks of docs/OPERATIONS.md from GrantStatements")
}

// roleWorld is a schema of its own in the PostgreSQL at
// PHICRYPT_POSTGRES_URL, the store's tables made there by the URL's role
// (the owner), and kmsmock with one KMS key.
type roleWorld struct {
	t      *testing.T
	base   *url.URL
	schema string
	owner  *sql.DB
	store  *postgres.Store // the owner's
	kms    *kmsmock.Local
	arn    string
}

// newRoleWorld returns nil when PHICRYPT_POSTGRES_URL is unset, outside
// the full suite (which fails instead), as the other PostgreSQL tests do.
func newRoleWorld(t *testing.T) *roleWorld {
	base := os.Getenv("PHICRYPT_POSTGRES_URL")
	if base == "" {
		if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
			t.Fatal("the full suite must set PHICRYPT_POSTGRES_URL (scripts/test.sh starts PostgreSQL with scripts/postgres.sh)")
		}
		return nil
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatal("PHICRYPT_POSTGRES_URL must be a postgres:// URL for the role tests")
	}
	w := &roleWorld{t: t, base: u, schema: "phicrypt_roles_" + randomHex(8)}
	admin, err := sql.Open("pgx", base)
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	_, err = admin.Exec("CREATE SCHEMA " + w.schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := admin.Exec("DROP SCHEMA " + w.schema + " CASCADE")
		require.NoError(t, err)
	})
	w.owner = w.open(u.User, w.schema)
	w.store, err = postgres.New(t.Context(), w.owner)
	require.NoError(t, err)
	w.kms = kmsmock.StartTest(t, kmsmock.Config{})
	key, err := w.kms.Client("custodian").CreateKey(t.Context(), &kms.CreateKeyInput{})
	require.NoError(t, err)
	w.arn = aws.ToString(key.KeyMetadata.Arn)
	return w
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// open connects as user with schema as search_path.
func (w *roleWorld) open(user *url.Userinfo, schema string) *sql.DB {
	u := *w.base
	u.User = user
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := sql.Open("pgx", u.String())
	require.NoError(w.t, err)
	w.t.Cleanup(func() { db.Close() })
	return db
}

// newRole makes a login role and returns its name and credentials; the
// role is dropped when the test ends.
func (w *roleWorld) newRole(kind string) (string, *url.Userinfo) {
	name, password := "phicrypt_test_"+kind+"_"+randomHex(6), randomHex(16)
	_, err := w.owner.Exec("CREATE ROLE " + name + " LOGIN PASSWORD '" + password + "'")
	require.NoError(w.t, err)
	w.t.Cleanup(func() {
		// After the role's handle (registered later) has closed.
		_, err := w.owner.Exec("DROP OWNED BY " + name)
		require.NoError(w.t, err)
		_, err = w.owner.Exec("DROP ROLE " + name)
		require.NoError(w.t, err)
	})
	return name, url.UserPassword(name, password)
}

// grant applies GrantStatements for role r to name, in one transaction as
// the owner.
func (w *roleWorld) grant(name string, r postgres.Role) {
	stmts, err := postgres.GrantStatements(postgres.GrantConfig{Role: r, Grantee: name, Schema: w.schema})
	require.NoError(w.t, err)
	tx, err := w.owner.BeginTx(w.t.Context(), nil)
	require.NoError(w.t, err)
	defer tx.Rollback()
	for _, s := range stmts {
		_, err := tx.Exec(s)
		require.NoError(w.t, err, s)
	}
	require.NoError(w.t, tx.Commit())
}

// storeAs makes a role with duty r, grants it, and opens the store as it.
func (w *roleWorld) storeAs(r postgres.Role) (*postgres.Store, string) {
	name, user := w.newRole(strings.ReplaceAll(r.String(), "-", "_"))
	w.grant(name, r)
	s, err := postgres.New(w.t.Context(), w.open(user, w.schema))
	require.NoError(w.t, err, "opening the store as a %v role", r)
	return s, name
}

// branchKeys is keyring.BranchKeys over store, signing KMS calls as
// principal.
func (w *roleWorld) branchKeys(store keystore.Store, principal string) *keyring.BranchKeys {
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: w.kms.Client(principal), KMSKeyARN: w.arn,
		LogicalStoreName: "phicrypt-roles-test"})
	require.NoError(w.t, err)
	return bk
}

// encryptor is a service's encryptor: the hierarchical keyring over bk
// for roleTestKey, counting uses up to maxUses (0: no cap). One process
// alone writes, so a new version is written under at once
// (PropagationWindow).
func (w *roleWorld) encryptor(bk *keyring.BranchKeys, maxUses uint64) (*phicrypt.Encryptor, *keyring.Hierarchical) {
	h, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: roleTestKey, CacheTTL: time.Hour,
		PropagationWindow: time.Nanosecond, MaxUsesPerVersion: maxUses, UsageBlock: min(maxUses, 1)})
	require.NoError(w.t, err)
	w.t.Cleanup(func() { h.Close() })
	enc, err := phicrypt.New(phicrypt.Config{Keyring: h})
	require.NoError(w.t, err)
	return enc, h
}

// snapshot is everything the store holds, read by the owner.
func (w *roleWorld) snapshot() map[string]any {
	ctx := w.t.Context()
	out := map[string]any{}
	ids, err := w.store.IDs(ctx)
	require.NoError(w.t, err)
	for _, id := range ids {
		vs, err := w.store.List(ctx, id)
		require.NoError(w.t, err)
		out["key "+id] = vs
	}
	kinds, err := w.store.RecordKinds(ctx)
	require.NoError(w.t, err)
	for _, k := range kinds {
		rs, err := w.store.ListRecords(ctx, k)
		require.NoError(w.t, err)
		out["records "+k] = rs
	}
	return out
}

// requireDenied checks that err is a permission failure that names the
// operation and not the branch key.
func requireDenied(t *testing.T, err error, op string) {
	t.Helper()
	require.ErrorIs(t, err, postgres.ErrPermissionDenied, op)
	var state interface{ SQLState() string }
	require.True(t, errors.As(err, &state), "the driver's error stays in the chain")
	require.Equal(t, "42501", state.SQLState())
	require.Contains(t, err.Error(), "permission denied")
	require.Contains(t, err.Error(), op)
	require.NotContains(t, err.Error(), roleTestKey)
}

// adminOp is a custodian's store operation and the words its refusal
// names.
type adminOp struct {
	op  string
	run func(ctx context.Context, s *postgres.Store) error
}

// adminOps are the custodians' operations on roleTestKey, whose versions
// are vs (oldest first; the last active, the others decrypt-only).
func adminOps(vs []keystore.BranchKeyVersion) []adminOp {
	old, active := vs[0], vs[len(vs)-1]
	return []adminOp{
		{"creating a branch key", func(ctx context.Context, s *postgres.Store) error {
			return s.Create(ctx, storetest.NewVersion(roleTestKey+"-2", keystore.StateActive))
		}},
		{"rotating a branch key", func(ctx context.Context, s *postgres.Store) error {
			return s.Rotate(ctx, roleTestKey, active.Version, storetest.NewVersion(roleTestKey, keystore.StateActive))
		}},
		{"changing a version's state", func(ctx context.Context, s *postgres.Store) error {
			return s.SetState(ctx, roleTestKey, old.Version, keystore.StateDecryptOnly, keystore.StateRetired)
		}},
		{"rewrapping a version", func(ctx context.Context, s *postgres.Store) error {
			return s.Rewrap(ctx, roleTestKey, active.Version, active.Ciphertext, active.KMSKeyARN, bytes.Repeat([]byte{1}, 184))
		}},
		{"destroying a version", func(ctx context.Context, s *postgres.Store) error {
			return s.Destroy(ctx, roleTestKey, old.Version)
		}},
		{"destroying a branch key", func(ctx context.Context, s *postgres.Store) error {
			return s.DestroyKey(ctx, roleTestKey)
		}},
		{"storing a record", func(ctx context.Context, s *postgres.Store) error {
			_, err := s.PutRecord(ctx, "policy", roleTestKey, []byte("a policy no quorum signed"), 0)
			return err
		}},
	}
}

// twoVersions makes roleTestKey through the custodian's handle and
// rotates it once.
func (w *roleWorld) twoVersions(custodian *custody.BranchKeys) []keystore.BranchKeyVersion {
	ctx := w.t.Context()
	_, err := custodian.CreateBranchKey(ctx, roleTestKey)
	require.NoError(w.t, err)
	_, err = custodian.Rotate(ctx, roleTestKey)
	require.NoError(w.t, err)
	vs, err := w.store.List(ctx, roleTestKey)
	require.NoError(w.t, err)
	require.Len(w.t, vs, 2)
	return vs
}

// TestRoles opens the store as a service's, a rotating service's and a
// custodian's role with exactly the privileges GrantStatements gives
// them: each does what its duty needs, and the database refuses the rest
// with a clear error, changing nothing.
func TestRoles(t *testing.T) {
	if newRoleWorld(t) == nil {
		return
	}
	t.Run("Service", testServiceRole)
	t.Run("RotatingService", testRotatingServiceRole)
	t.Run("Custodian", testCustodianRole)
	t.Run("CustodyThroughTheCustodianRole", testCustodyThroughCustodianRole)
	t.Run("OpenNeedsACurrentSchema", testOpenNeedsCurrentSchema)
}

func testServiceRole(t *testing.T) {
	ctx := t.Context()
	w := newRoleWorld(t)
	cust, _ := w.storeAs(postgres.RoleCustodian)
	vs := w.twoVersions(w.custodian(cust))
	svc, _ := w.storeAs(postgres.RoleService)

	// What the hierarchical keyring needs.
	active, err := svc.Active(ctx, roleTestKey)
	require.NoError(t, err)
	require.Equal(t, vs[1].Version, active.Version)
	got, err := svc.Get(ctx, roleTestKey, vs[0].Version)
	require.NoError(t, err)
	require.Equal(t, vs[0].Ciphertext, got.Ciphertext)
	list, err := svc.List(ctx, roleTestKey)
	require.NoError(t, err)
	require.Len(t, list, 2)
	ids, err := svc.IDs(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{roleTestKey}, ids)
	n, err := svc.AddUsage(ctx, roleTestKey, active.Version, 5)
	require.NoError(t, err)
	require.Equal(t, uint64(5), n)
	enc, _ := w.encryptor(w.branchKeys(svc, "svc"), 1000)
	msg, err := enc.Encrypt(ctx, []byte("synthetic lab result"), map[string]string{"ward": "3"})
	require.NoError(t, err)
	pt, _, err := enc.Decrypt(ctx, msg, map[string]string{"ward": "3"})
	require.NoError(t, err)
	require.Equal(t, "synthetic lab result", string(pt))
	now, err := w.store.Active(ctx, roleTestKey)
	require.NoError(t, err)
	require.Equal(t, uint64(5+1), now.Usage, "the keyring counted its use through the service's role")

	// What only custodians may do, and records, which no service reads.
	before := w.snapshot()
	for _, a := range adminOps(vs) {
		requireDenied(t, a.run(ctx, svc), a.op)
	}
	_, err = svc.GetRecord(ctx, "policy", "*")
	requireDenied(t, err, "reading a record")
	_, err = svc.ListRecords(ctx, "policy")
	requireDenied(t, err, "listing records")
	require.Equal(t, before, w.snapshot(), "a refused operation changes nothing")
	pt, _, err = enc.Decrypt(ctx, msg, map[string]string{"ward": "3"})
	require.NoError(t, err)
	require.Equal(t, "synthetic lab result", string(pt))
}

func testRotatingServiceRole(t *testing.T) {
	ctx := t.Context()
	w := newRoleWorld(t)
	cust, _ := w.storeAs(postgres.RoleCustodian)
	vs := w.twoVersions(w.custodian(cust))
	rot, name := w.storeAs(postgres.RoleRotatingService)

	// At its usage cap of 2, the service rotates the branch key itself.
	enc, _ := w.encryptor(w.branchKeys(rot, "svc"), 2)
	var msgs [][]byte
	for range 3 {
		msg, err := enc.Encrypt(ctx, []byte("synthetic note"), nil)
		require.NoError(t, err)
		msgs = append(msgs, msg)
	}
	list, err := w.store.List(ctx, roleTestKey)
	require.NoError(t, err)
	require.Len(t, list, 3, "the service rotated at the cap")
	require.Equal(t, keystore.StateDecryptOnly, list[1].State)
	require.Equal(t, keystore.StateActive, list[2].State)
	for _, msg := range msgs {
		_, _, err := enc.Decrypt(ctx, msg, nil)
		require.NoError(t, err)
	}

	// Still no creating, rewrapping, destroying or records.
	before := w.snapshot()
	for _, a := range adminOps(vs) {
		if a.op == "rotating a branch key" || a.op == "changing a version's state" {
			continue // what this role is for, and what it costs
		}
		requireDenied(t, a.run(ctx, rot), a.op)
	}
	require.Equal(t, before, w.snapshot())

	// Granting the plain service's role to the same grantee takes the
	// rotation away again.
	w.grant(name, postgres.RoleService)
	active, err := rot.Active(ctx, roleTestKey)
	require.NoError(t, err)
	err = rot.Rotate(ctx, roleTestKey, active.Version, storetest.NewVersion(roleTestKey, keystore.StateActive))
	requireDenied(t, err, "rotating a branch key")

	// A plain service at its cap cannot rotate: its encryption fails
	// once the version is used up, naming the refusal.
	svc, _ := w.storeAs(postgres.RoleService)
	enc, _ = w.encryptor(w.branchKeys(svc, "svc"), 2)
	var last error
	for range 3 {
		if _, last = enc.Encrypt(ctx, []byte("synthetic note"), nil); last != nil {
			break
		}
	}
	require.ErrorIs(t, last, keyring.ErrVersionExhausted)
	requireDenied(t, last, "rotating a branch key")
	require.Equal(t, list[2].Version, mustActive(t, w.store).Version, "nothing rotated")
}

func testCustodianRole(t *testing.T) {
	ctx := t.Context()
	w := newRoleWorld(t)
	cust, _ := w.storeAs(postgres.RoleCustodian)
	vs := w.twoVersions(w.custodian(cust))
	for _, a := range adminOps(vs) {
		require.NoError(t, a.run(ctx, cust), a.op)
	}
	// Each left its mark; the last, DestroyKey, destroyed every version.
	_, err := w.store.Active(ctx, "patient-4711-canary-2")
	require.NoError(t, err)
	list, err := w.store.List(ctx, roleTestKey)
	require.NoError(t, err)
	require.Len(t, list, 3, "rotated once more")
	for _, v := range list {
		require.Equal(t, keystore.StateDestroyed, v.State)
	}
	r, err := w.store.GetRecord(ctx, "policy", roleTestKey)
	require.NoError(t, err)
	require.Equal(t, uint64(1), r.Revision)
	_, err = cust.PutRecord(ctx, "policy", roleTestKey, []byte("revision two"), 1)
	require.NoError(t, err)
	kinds, err := cust.RecordKinds(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"policy"}, kinds)

	// Counting uses is the services' part.
	other, err := w.store.Active(ctx, "patient-4711-canary-2")
	require.NoError(t, err)
	_, err = cust.AddUsage(ctx, other.BranchKeyID, other.Version, 1)
	requireDenied(t, err, "counting a version's usage")
}

// The custody layer works through the custodian's role: a quorum installs
// a policy and destroys a key, and the service's role sees the key gone.
// The service's role cannot install a policy.
func testCustodyThroughCustodianRole(t *testing.T) {
	ctx := t.Context()
	w := newRoleWorld(t)
	cust, _ := w.storeAs(postgres.RoleCustodian)
	svc, _ := w.storeAs(postgres.RoleService)

	skey, _, err := note.GenerateKey(nil, "audit.test/roles")
	require.NoError(t, err)
	ns, err := note.NewSigner(skey)
	require.NoError(t, err)
	log, err := audit.NewLog(audit.Config{Sink: audit.NewMemorySink(), Signer: ns})
	require.NoError(t, err)
	hasher, err := audit.NewHasher(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	auth, err := custody.NewAuthority(custody.AuthorityConfig{Store: cust, Audit: log, Hasher: hasher})
	require.NoError(t, err)
	alice, bob := custodySigner(t, "alice"), custodySigner(t, "bob")
	policy := &custody.Policy{Scope: "patient-*", Custodians: []custody.Principal{alice.Principal(), bob.Principal()},
		Quorum: map[custody.Action]int{custody.ActionSetPolicy: 2, custody.ActionDestroyKey: 2}}

	// Installing the policy through the service's role fails.
	svcAuth, err := custody.NewAuthority(custody.AuthorityConfig{Store: svc, Audit: log, Hasher: hasher})
	require.NoError(t, err)
	err = installPolicy(ctx, svcAuth, policy, alice, bob)
	requireDenied(t, err, "record")

	require.NoError(t, installPolicy(ctx, auth, policy, alice, bob))
	keys := w.custodian(cust)
	enc, h := w.encryptor(w.branchKeys(svc, "svc"), 0)
	x, err := custody.NewExecutor(custody.ExecutorConfig{Authority: auth, Keys: keys, KMS: w.kms.Client("custodian"), AfterDestroy: h.Forget})
	require.NoError(t, err)
	apply := func(c custody.Change, signers ...*custody.Signer) error {
		r, err := auth.Propose(ctx, signers[0].Principal().Name, c, time.Hour)
		if err != nil {
			return err
		}
		_, err = x.Apply(ctx, r, approvals(t, r, signers...))
		return err
	}
	require.NoError(t, apply(custody.Change{Action: custody.ActionCreate, BranchKeyID: roleTestKey}, alice))
	msg, err := enc.Encrypt(ctx, []byte("synthetic discharge summary"), nil)
	require.NoError(t, err)
	require.NoError(t, apply(custody.Change{Action: custody.ActionDestroyKey, BranchKeyID: roleTestKey}, alice, bob))
	_, _, err = enc.Decrypt(ctx, msg, nil)
	require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
	_, err = svc.Active(ctx, roleTestKey)
	require.ErrorIs(t, err, keystore.ErrDestroyed)
}

func installPolicy(ctx context.Context, auth *custody.Authority, p *custody.Policy, signers ...*custody.Signer) error {
	r, err := auth.Propose(ctx, signers[0].Principal().Name, custody.Change{Action: custody.ActionSetPolicy, NewPolicy: p}, time.Hour)
	if err != nil {
		return err
	}
	var as []custody.Approval
	for _, s := range signers {
		a, err := s.Approve(r)
		if err != nil {
			return err
		}
		as = append(as, a)
	}
	_, err = auth.Authorize(ctx, r, as)
	return err
}

func custodySigner(t *testing.T, name string) *custody.Signer {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	s, err := custody.NewSigner(name, priv)
	require.NoError(t, err)
	return s
}

func approvals(t *testing.T, r *custody.Request, signers ...*custody.Signer) []custody.Approval {
	var out []custody.Approval
	for _, s := range signers {
		a, err := s.Approve(r)
		require.NoError(t, err)
		out = append(out, a)
	}
	return out
}

// A role that may not change the schema opens only a current one; on an
// older or missing one it fails with advice, and changes nothing.
func testOpenNeedsCurrentSchema(t *testing.T) {
	ctx := t.Context()
	w := newRoleWorld(t)
	name, user := w.newRole("service")
	w.grant(name, postgres.RoleService)
	db := w.open(user, w.schema)
	_, err := w.owner.Exec(`DELETE FROM phicrypt_schema_migrations WHERE version = (SELECT MAX(version) FROM phicrypt_schema_migrations)`)
	require.NoError(t, err)
	_, err = postgres.New(ctx, db)
	require.ErrorIs(t, err, postgres.ErrPermissionDenied)
	require.ErrorContains(t, err, "open it once with the role that owns its tables")
	var n int
	require.NoError(t, w.owner.QueryRow(`SELECT count(*) FROM phicrypt_schema_migrations`).Scan(&n))
	require.Equal(t, 4, n, "nothing migrated")

	// A future schema is refused as such, not as a permission failure.
	_, err = w.owner.Exec(`INSERT INTO phicrypt_schema_migrations (version, applied_at_us) VALUES (5, 0), (99, 0)`)
	require.NoError(t, err)
	_, err = postgres.New(ctx, db)
	require.ErrorIs(t, err, keystore.ErrUnsupportedSchema)
	require.NotErrorIs(t, err, postgres.ErrPermissionDenied)

	// An empty schema the role may use but not create in.
	empty := "phicrypt_roles_empty_" + randomHex(6)
	_, err = w.owner.Exec("CREATE SCHEMA " + empty)
	require.NoError(t, err)
	t.Cleanup(func() { w.owner.Exec("DROP SCHEMA " + empty + " CASCADE") })
	_, err = w.owner.Exec("GRANT USAGE ON SCHEMA " + empty + " TO " + name)
	require.NoError(t, err)
	_, err = postgres.New(ctx, w.open(user, empty))
	require.ErrorIs(t, err, postgres.ErrPermissionDenied)
	require.ErrorContains(t, err, "creating the migrations table")
}

// custodian is custody's handle over store, signing KMS calls as the
// principal "custodian".
func (w *roleWorld) custodian(store *postgres.Store) *custody.BranchKeys {
	c, err := custody.NewBranchKeys(w.branchKeys(store, "custodian").Config())
	require.NoError(w.t, err)
	return c
}

func mustActive(t *testing.T, s *postgres.Store) keystore.BranchKeyVersion {
	v, err := s.Active(t.Context(), roleTestKey)
	require.NoError(t, err)
	return v
}
