// Package depstest checks the module's import graph: what a service
// imports links no database driver, and the key store packages register
// none of their own.
package depstest

import (
	"os/exec"
	"strings"
	"testing"
)

// drivers are module paths of database drivers (and the DynamoDB client)
// that no service-side package may link.
var drivers = []string{
	"modernc.org/sqlite",
	"github.com/jackc/pgx",
	"github.com/lib/pq",
	"github.com/mattn/go-sqlite3",
	"github.com/go-sql-driver/mysql",
	"github.com/aws/aws-sdk-go-v2/service/dynamodb",
}

func deps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	args := append([]string{"list", "-deps"}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %v: %v", pkgs, err)
	}
	return strings.Fields(string(out))
}

func requireNoDriver(t *testing.T, pkgs ...string) {
	t.Helper()
	all := deps(t, pkgs...)
	if len(all) < 10 {
		t.Fatalf("go list -deps %v listed only %d packages", pkgs, len(all))
	}
	for _, d := range all {
		for _, drv := range drivers {
			if d == drv || strings.HasPrefix(d, drv+"/") {
				t.Errorf("%v links %s", pkgs, d)
			}
		}
	}
}

// Importing phicrypt, keyring or fieldenc links no database driver and no
// DynamoDB client: the SQL and DynamoDB stores are opt-in subpackages.
func TestServicePackagesLinkNoDriver(t *testing.T) {
	requireNoDriver(t, "./phicrypt", "./keyring", "./fieldenc", "./keystore")
}

// The SQL stores work on the application's *sql.DB: they link no driver
// either, so importing them registers nothing.
func TestSQLStoresLinkNoDriver(t *testing.T) {
	requireNoDriver(t, "./keystore/sqlite", "./keystore/postgres")
}

// The check itself sees drivers: the tests of the SQL stores do link one.
func TestTheCheckSeesADriver(t *testing.T) {
	all := deps(t, "-test", "./keystore")
	found := false
	for _, d := range all {
		if strings.HasPrefix(d, "modernc.org/sqlite") {
			found = true
		}
	}
	if !found {
		t.Fatal("go list -deps -test ./keystore shows no SQLite driver: the check could not see one")
	}
}

// Separation of duty shows in the import graph: nothing a service imports
// reaches the custodian's package.
func TestServicePackagesDoNotImportCustody(t *testing.T) {
	for _, d := range deps(t, "./phicrypt", "./keyring", "./fieldenc", "./keystore") {
		if d == "github.com/phicrypt/phicrypt/custody" {
			t.Fatal("a service package imports custody")
		}
	}
	found := false
	for _, d := range deps(t, "./custody") {
		found = found || d == "github.com/phicrypt/phicrypt/keyring"
	}
	if !found {
		t.Fatal("go list -deps ./custody does not show keyring: the check could not see an import")
	}
}

// The audit log is a leaf: the standard library, golang.org/x/mod's tlog
// and note, and this module's internal packages, nothing else (so an
// auditor's verifier links none of the key-handling code).
func TestAuditIsALeaf(t *testing.T) {
	for _, d := range deps(t, "./audit") {
		first := strings.SplitN(d, "/", 2)[0]
		switch {
		case !strings.Contains(first, "."), // the standard library
			strings.HasPrefix(d, "golang.org/x/mod/"),
			d == "github.com/phicrypt/phicrypt/audit",
			strings.HasPrefix(d, "github.com/phicrypt/phicrypt/internal/"):
		default:
			t.Errorf("audit links %s", d)
		}
	}
}
