package suite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for the PostgreSQL store
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/dynamodb"
	"github.com/phicrypt/phicrypt/keystore/postgres"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// The branch key stores the store cases run over. The file store needs
// nothing and always runs, as the baseline of the other two.
const (
	StoreFile     = "file"
	StoreDynamoDB = "dynamodb"
	StorePostgres = "postgres"
)

// The environment variables that point cases at servers, as the main
// module's tests read them (scripts/test.sh exports them): moto_server's
// DynamoDB, PostgreSQL, and an S3 endpoint (whose credentials
// internal/s3test reads from PHICRYPT_S3_ACCESS_KEY and
// PHICRYPT_S3_SECRET_KEY).
const (
	EnvMoto     = "PHICRYPT_MOTO_URL"
	EnvPostgres = "PHICRYPT_POSTGRES_URL"
	EnvS3       = "PHICRYPT_S3_URL"
)

// servers are the cases that need a server, and the variable naming it.
var servers = []struct{ what, env string }{
	{"the DynamoDB store cases", EnvMoto},
	{"the PostgreSQL store cases", EnvPostgres},
	{"the S3 cases", EnvS3},
}

// Unavailable returns a line for each group of cases that Cases leaves
// out because the variable naming its server is unset; none when every
// server is given.
func Unavailable() []string {
	var out []string
	for _, s := range servers {
		if !given(s.env) {
			out = append(out, fmt.Sprintf("skipping %s: %s is not set", s.what, s.env))
		}
	}
	return out
}

// given says whether the server that variable names is given.
func given(variable string) bool { return os.Getenv(variable) != "" }

// storeKinds are the stores whose server is given.
func storeKinds() []string {
	kinds := []string{StoreFile}
	if given(EnvMoto) {
		kinds = append(kinds, StoreDynamoDB)
	}
	if given(EnvPostgres) {
		kinds = append(kinds, StorePostgres)
	}
	return kinds
}

// openStoreLocked opens an empty store of kind, removed again by Close: a
// directory under Dir, a fresh DynamoDB table, or a fresh PostgreSQL schema.
func (e *Env) openStoreLocked(kind string) (keystore.Store, error) {
	var store keystore.Store
	var drop func()
	var err error
	switch kind {
	case StoreFile:
		var dir string
		if dir, err = os.MkdirTemp(e.Dir, "store-"); err == nil {
			store, err = keystore.OpenFileStore(dir)
		}
	case StoreDynamoDB:
		store, drop, err = openDynamoDB(os.Getenv(EnvMoto))
	case StorePostgres:
		store, drop, err = openPostgres(os.Getenv(EnvPostgres))
	default:
		err = fmt.Errorf("suite: no store kind %q", kind)
	}
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() {
		store.Close()
		if drop != nil {
			drop()
		}
	})
	return store, nil
}

func randomName(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// openDynamoDB makes a table of AWS's branch key store layout in
// moto_server's DynamoDB at endpoint; drop deletes it.
func openDynamoDB(endpoint string) (keystore.Store, func(), error) {
	if endpoint == "" {
		return nil, nil, errors.New(EnvMoto + " is not set")
	}
	c := awsdynamodb.New(awsdynamodb.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("phibench", "x", ""),
	})
	table := randomName("phibench-")
	ctx := context.Background()
	if _, err := dynamodb.CreateTable(ctx, c, table); err != nil {
		return nil, nil, err
	}
	drop := func() { c.DeleteTable(context.Background(), &awsdynamodb.DeleteTableInput{TableName: &table}) }
	store, err := dynamodb.New(c, table)
	if err != nil {
		drop()
		return nil, nil, err
	}
	return store, drop, nil
}

// openPostgres makes a schema in the database at conn and the store's
// tables in it (through search_path); drop removes the schema.
func openPostgres(conn string) (keystore.Store, func(), error) {
	if conn == "" {
		return nil, nil, errors.New(EnvPostgres + " is not set")
	}
	ctx := context.Background()
	admin, err := sql.Open("pgx", conn)
	if err != nil {
		return nil, nil, err
	}
	schema := randomName("phibench_")
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		return nil, nil, err
	}
	db, err := sql.Open("pgx", withSearchPath(conn, schema))
	drop := func() {
		if db != nil {
			db.Close()
		}
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		admin.Close()
	}
	if err != nil {
		drop()
		return nil, nil, err
	}
	store, err := postgres.New(ctx, db)
	if err != nil {
		drop()
		return nil, nil, err
	}
	return store, drop, nil
}

// withSearchPath adds search_path to a URL or a key=value connection string.
func withSearchPath(conn, schema string) string {
	u, err := url.Parse(conn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return conn + " search_path=" + schema
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// storeCases are, for each store given, a 1 KiB message under the
// hierarchical keyring with its branch key cached and cold, and a read of
// the active version from the store. The record schema has no field that
// names a store, and a second message-encrypt 1KiB record would pass for
// the raw AES keyring's, so they show in the table only.
func storeCases(env *Env) []Case {
	var cs []Case
	for _, kind := range storeKinds() {
		cs = append(cs, hierEncrypt(env, kind, false), hierEncrypt(env, kind, true), storeRead(env, kind))
	}
	return cs
}

// hierEncrypt encrypts 1 KiB under a hierarchical keyring (an hour's
// CacheTTL) whose branch key lives in the store of kind: after the first
// message, no store read and no KMS call; or, cold, through coldKeyring.
func hierEncrypt(env *Env, kind string, cold bool) Case {
	variant := "hier-" + kind
	if cold {
		variant += "-cold"
	}
	return Case{
		Name: name(ImplPhicrypt, "message-encrypt", KiB, variant), Impl: ImplPhicrypt, Op: "message-encrypt",
		Suite: Suite0478, Size: KiB, Workers: 1, NoJSON: true,
		Bench: func(b *testing.B) {
			bk, counting, err := env.BranchKeys(kind)
			if err != nil {
				b.Fatal(err)
			}
			hier, err := newHierarchical(bk, time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { hier.Close() })
			var kr keyring.Keyring = hier
			if cold {
				kr = coldKeyring{hier}
			}
			enc := encryptor(b, env, phicrypt.Config{Keyring: kr})
			encryptLoop(b, enc, env.Plaintext(KiB), false, counting)
		},
	}
}

// coldKeyring is a hierarchical keyring that forgets its branch key before
// every message, so that each one finds it cold, as the first message of
// a process that has just started: a read of the active version from the
// store, a reservation of a block of uses (a store write), and a KMS
// Decrypt to unwrap it.
type coldKeyring struct{ *keyring.Hierarchical }

func (k coldKeyring) OnEncrypt(ctx context.Context, m *keyring.EncryptionMaterials) error {
	k.Forget(branchKeyID)
	return k.Hierarchical.OnEncrypt(ctx, m)
}

// storeRead reads the branch key's active version from the store of kind:
// what a cold hierarchical keyring does before it asks KMS to unwrap.
func storeRead(env *Env, kind string) Case {
	return Case{
		Name: ImplPhicrypt + "/store-read/" + kind, Impl: ImplPhicrypt, Op: "store-read", NoJSON: true,
		Bench: func(b *testing.B) {
			bk, _, err := env.BranchKeys(kind)
			if err != nil {
				b.Fatal(err)
			}
			store, ctx := bk.Config().Store, context.Background()
			measure(b, 0, nil, func() error {
				v, err := store.Active(ctx, branchKeyID)
				if err == nil && v.BranchKeyID != branchKeyID {
					err = errors.New("the store returned another branch key")
				}
				return err
			})
		},
	}
}
