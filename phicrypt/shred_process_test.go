package phicrypt_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/dynamodb"
	"github.com/phicrypt/phicrypt/keystore/postgres"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// Crypto-shredding across OS processes: this process (the custodian)
// destroys patient A's branch key in a store it shares with a child
// process (a service) that already holds A's branch key and data keys in
// its caches. The child must fail with keyring.ErrKeyDestroyed within its
// CacheTTL, with nothing telling it but the store, while patient B keeps
// working. Run over PostgreSQL and over DynamoDB (moto), with one kmsmock
// over HTTP that both processes call.

const (
	shredChildEnv   = "PHICRYPT_SHRED_CHILD" // the child's configuration file
	shredChildTTL   = time.Second
	shredChildSlack = time.Second // scheduling, a store read, a KMS call
)

// shredChildConfig is what the parent hands the child, as JSON.
type shredChildConfig struct {
	KMSURL   string            `json:"kms_url"`
	ARN      string            `json:"arn"`
	Backend  string            `json:"backend"` // "postgres" or "dynamodb"
	Location string            `json:"location"`
	Messages map[string][]byte `json:"messages"` // patient → message
}

func TestShredAcrossProcessesPostgres(t *testing.T) {
	base := os.Getenv("PHICRYPT_POSTGRES_URL")
	if base == "" {
		if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
			t.Fatal("the full suite must set PHICRYPT_POSTGRES_URL")
		}
		t.Skip("PHICRYPT_POSTGRES_URL is not set: shredding over PostgreSQL not tested")
	}
	runShredAcrossProcesses(t, "postgres", freshPostgresSchema(t, base))
}

func TestShredAcrossProcessesDynamoDB(t *testing.T) {
	if os.Getenv("PHICRYPT_MOTO_URL") == "" {
		if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
			t.Fatal("the full suite must set PHICRYPT_MOTO_URL")
		}
		t.Skip("PHICRYPT_MOTO_URL is not set: shredding over DynamoDB not tested")
	}
	table := "phicrypt-shred-" + randomHex(8)
	client := shredDynamoClient()
	_, err := dynamodb.CreateTable(t.Context(), client, table)
	require.NoError(t, err)
	t.Cleanup(func() { client.DeleteTable(context.Background(), &awsdynamodb.DeleteTableInput{TableName: &table}) })
	runShredAcrossProcesses(t, "dynamodb", table)
}

func runShredAcrossProcesses(t *testing.T, backend, loc string) {
	ctx := t.Context()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	client := l.Client("svc")
	key, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	cfg := shredChildConfig{KMSURL: l.URL, ARN: aws.ToString(key.KeyMetadata.Arn), Backend: backend, Location: loc, Messages: map[string][]byte{}}
	store, closeStore := openShredStore(t, cfg)
	defer closeStore()
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: client, KMSKeyARN: cfg.ARN, LogicalStoreName: "phicrypt-shred"})
	require.NoError(t, err)
	custodian, err := custody.NewBranchKeys(bk.Config())
	require.NoError(t, err)
	enc := shredEncryptor(t, bk)
	for _, p := range []string{"A", "B"} {
		_, err := custodian.CreateBranchKey(ctx, "patient-"+p)
		require.NoError(t, err)
		cfg.Messages[p], err = enc.Encrypt(ctx, []byte("record of patient "+p), patientEC(p))
		require.NoError(t, err)
	}
	path := filepath.Join(t.TempDir(), "child.json")
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestShredChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), shredChildEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(stdout)
	var out []string
	waitFor := func(prefix string) string {
		for lines.Scan() {
			out = append(out, lines.Text())
			if strings.HasPrefix(lines.Text(), prefix) {
				return lines.Text()
			}
		}
		t.Fatalf("the child ended without %q:\n%s", prefix, strings.Join(out, "\n"))
		return ""
	}
	waitFor("shred-child ready")

	// The custodian shreds patient A; the child is told only to start
	// watching the clock.
	require.NoError(t, custodian.DestroyKey(ctx, "patient-A"))
	_, err = io.WriteString(stdin, "destroyed\n")
	require.NoError(t, err)
	result := waitFor("shred-child ")
	io.Copy(io.Discard, stdout)
	require.NoError(t, cmd.Wait(), "child:\n%s", strings.Join(out, "\n"))
	require.True(t, strings.HasPrefix(result, "shred-child ok"), "child:\n%s", strings.Join(out, "\n"))
	t.Log(backend + ": " + result)

	// And this process, which never cached A's key, fails at once.
	_, _, err = shredEncryptor(t, bk).Decrypt(ctx, cfg.Messages["A"], patientEC("A"))
	require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
}

// TestShredChild is the service process of the tests above; in any other
// run it does nothing.
func TestShredChild(t *testing.T) {
	path := os.Getenv(shredChildEnv)
	if path == "" {
		return
	}
	ctx := t.Context()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var cfg shredChildConfig
	require.NoError(t, json.Unmarshal(b, &cfg))
	store, closeStore := openShredStore(t, cfg)
	defer closeStore()
	region := strings.Split(cfg.ARN, ":")[3]
	client := kmsmock.NewClient(cfg.KMSURL, region, "svc", "kmsmock-secret")
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: client, KMSKeyARN: cfg.ARN, LogicalStoreName: "phicrypt-shred"})
	require.NoError(t, err)
	enc := shredEncryptor(t, bk)
	decrypt := func(p string) error {
		pt, _, err := enc.Decrypt(ctx, cfg.Messages[p], patientEC(p))
		if err == nil && string(pt) != "record of patient "+p {
			return errors.New("wrong plaintext")
		}
		return err
	}
	// Warm: both patients' branch keys and data keys are cached.
	require.NoError(t, decrypt("A"))
	require.NoError(t, decrypt("B"))
	loaded := time.Now()
	fmt.Println("shred-child ready")
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "destroyed\n", line)

	deadline := loaded.Add(shredChildTTL + shredChildSlack)
	for {
		err := decrypt("A")
		if err != nil {
			require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
			require.NotContains(t, err.Error(), "patient-A")
			break
		}
		if time.Now().After(deadline) {
			fmt.Printf("shred-child failed: still decrypting %v after the cache was filled (CacheTTL %v)\n", time.Since(loaded), shredChildTTL)
			t.FailNow()
		}
		time.Sleep(20 * time.Millisecond)
	}
	after := time.Since(loaded)
	require.NoError(t, decrypt("B"), "patient B is untouched")
	_, err = enc.Encrypt(ctx, []byte("more for A"), patientEC("A"))
	require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
	fmt.Printf("shred-child ok: patient A failed %v after the cache was filled (CacheTTL %v)\n", after.Round(time.Millisecond), shredChildTTL)
}

// shredEncryptor is a service's encryptor: a hierarchical keyring with one
// branch key per patient, and a data-key cache whose own MaxAge is far
// beyond CacheTTL (the keyring's bound must be what ends its entries).
func shredEncryptor(t *testing.T, bk *keyring.BranchKeys) *phicrypt.Encryptor {
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, CacheTTL: shredChildTTL,
		BranchKeyIDSupplier: func(ec map[string]string) (string, error) { return "patient-" + ec["patient"], nil }})
	require.NoError(t, err)
	t.Cleanup(func() { kr.Close() })
	cache := newCache(t, phicrypt.CacheConfig{MaxAge: time.Hour})
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, Cache: cache})
	require.NoError(t, err)
	return enc
}

func openShredStore(t *testing.T, cfg shredChildConfig) (keystore.Store, func()) {
	switch cfg.Backend {
	case "postgres":
		db, err := sql.Open("pgx", cfg.Location)
		require.NoError(t, err)
		s, err := postgres.New(t.Context(), db)
		require.NoError(t, err)
		return s, func() { s.Close(); db.Close() }
	case "dynamodb":
		s, err := dynamodb.New(shredDynamoClient(), cfg.Location)
		require.NoError(t, err)
		return s, func() { s.Close() }
	}
	t.Fatalf("unknown backend %q", cfg.Backend)
	return nil, nil
}

func shredDynamoClient() *awsdynamodb.Client {
	return awsdynamodb.New(awsdynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(os.Getenv("PHICRYPT_MOTO_URL")),
		Credentials:  credentials.NewStaticCredentialsProvider("shred-test", "x", ""),
	})
}

// freshPostgresSchema makes a schema of its own in the database at base,
// dropped after t, and returns base with it as the search_path.
func freshPostgresSchema(t *testing.T, base string) string {
	schema := "phicrypt_shred_" + randomHex(8)
	admin, err := sql.Open("pgx", base)
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	_, err = admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() { admin.Exec("DROP SCHEMA " + schema + " CASCADE") })
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
