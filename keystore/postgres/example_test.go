package postgres_test

import (
	"context"
	"database/sql"
	"log"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the program's PostgreSQL driver, "pgx"
	"github.com/phicrypt/phicrypt/keystore/postgres"
)

// The store works on the application's own database handle (or a pgx pool
// through stdlib.OpenDBFromPool); closing the store leaves it open.
func ExampleNew() {
	db, err := sql.Open("pgx", os.Getenv("PHI_KEYSTORE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store, err := postgres.New(context.Background(), db)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
}

func TestNewRefusesANilHandle(t *testing.T) {
	if _, err := postgres.New(context.Background(), nil); err == nil {
		t.Fatal("a nil handle was accepted")
	}
}
