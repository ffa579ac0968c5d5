package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/kmsmock"
)

// The tests run keyctl as a subprocess, as a custodian would, against the
// kmsmock binary (PHICRYPT_KMSMOCK_URL in the full suite, else one this
// test starts) and PostgreSQL (PHICRYPT_POSTGRES_URL, else SQLite).

// builtBinaries are keyctl and kmsmock, built once by TestMain.
var builtBinaries struct{ keyctl, kmsmock string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keyctl-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		exe := ""
		if runtime.GOOS == "windows" {
			exe = ".exe"
		}
		builtBinaries.keyctl = filepath.Join(dir, "keyctl"+exe)
		builtBinaries.kmsmock = filepath.Join(dir, "kmsmock"+exe)
		build := map[string]string{".": builtBinaries.keyctl}
		if os.Getenv("PHICRYPT_KMSMOCK_URL") == "" {
			build["../../kmsmock/cmd/kmsmock"] = builtBinaries.kmsmock
		}
		for pkg, out := range build {
			cmd := exec.Command("go", "build", "-o", out, pkg)
			cmd.Stderr = os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "building %s: %v\n", pkg, err)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// kmsmockURL is the full suite's kmsmock binary, or one started for t.
func kmsmockURL(t *testing.T) string {
	if u := os.Getenv("PHICRYPT_KMSMOCK_URL"); u != "" {
		return u
	}
	if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
		t.Fatal("the full suite must set PHICRYPT_KMSMOCK_URL")
	}
	cmd := exec.Command(builtBinaries.kmsmock, "-addr", "127.0.0.1:0", "-log-level", "warn")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "kmsmock printed no URL")
	return strings.TrimSpace(line)
}

// storeURL is a schema of its own in the full suite's PostgreSQL, or an
// SQLite database in dir.
func storeURL(t *testing.T, dir string) string {
	base := os.Getenv("PHICRYPT_POSTGRES_URL")
	if base == "" {
		if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
			t.Fatal("the full suite must set PHICRYPT_POSTGRES_URL")
		}
		return "sqlite:" + filepath.Join(dir, "keys.db")
	}
	var b [8]byte
	rand.Read(b[:])
	schema := "keyctl_test_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", base)
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	_, err = admin.Exec("CREATE SCHEMA " + schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		require.NoError(t, err)
	})
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		return "postgres:" + base + " search_path=" + schema
	}
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return "postgres:" + u.String()
}

// world is one custodian team's set-up: kmsmock, a KMS key whose policy
// refuses the custodian Decrypt, a store and keyctl's configuration.
type world struct {
	t       *testing.T
	dir     string
	kmsURL  string
	config  string
	keyARN  string
	store   string
	pubKeys map[string]string
	// sharedAuditLog puts the audit log in the store's PostgreSQL schema
	// when the store is there.
	sharedAuditLog bool
	// identity is the custodian identity keyctl runs as unless a command
	// gives --identity (KEYCTL_IDENTITY).
	asWho string
}

// Principals, as kmsmock names them from the access key id.
const (
	custodianPrincipal = "keyctl-test-custodian"
	servicePrincipal   = "keyctl-test-service"
)

func user(name string) string { return "arn:aws:iam::" + kmsmock.DefaultAccount + ":user/" + name }

// kmsClient signs as principal.
func kmsClient(endpoint, principal string) *kms.Client {
	return kms.New(kms.Options{
		Region:       kmsmock.DefaultRegion,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(principal, "secret", ""),
	})
}

// createKMSKey makes a KMS key under the policy keyctl policy generate
// writes (before init: no configuration yet): the custodian administers it
// and makes branch keys, the service unwraps them. Cross-key ReEncrypt is
// on, for the rewrap tests.
func (w *world) createKMSKey() string { return w.createKMSKeyWith(true) }

// createKMSKeyWith makes a KMS key under the generated policy, with
// cross-key ReEncrypt for custodians or without.
func (w *world) createKMSKeyWith(crossKey bool) string {
	t := w.t
	args := []string{"policy", "generate", "--account", kmsmock.DefaultAccount, "--logical-store-name", "phicrypt",
		"--custodian-arn", user(custodianPrincipal), "--service-arn", user(servicePrincipal)}
	if crossKey {
		args = append(args, "--allow-cross-key-reencrypt")
	}
	doc := w.ok(args...)
	out, err := kmsClient(w.kmsURL, custodianPrincipal).CreateKey(t.Context(), &kms.CreateKeyInput{
		Policy: aws.String(doc), Description: aws.String("keyctl test"),
	})
	require.NoError(t, err)
	return *out.KeyMetadata.Arn
}

func newWorld(t *testing.T) *world {
	dir := t.TempDir()
	w := &world{t: t, dir: dir, kmsURL: kmsmockURL(t), config: filepath.Join(dir, "keyctl", "config.json"), pubKeys: map[string]string{}}
	w.keyARN = w.createKMSKey()
	w.store = storeURL(t, dir)
	return w
}

// env is the environment keyctl runs in: the custodian's AWS credentials
// and nothing of the developer's.
func (w *world) env() []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + w.dir,
		"AWS_ACCESS_KEY_ID=" + custodianPrincipal,
		"AWS_SECRET_ACCESS_KEY=secret",
		"AWS_REGION=" + kmsmock.DefaultRegion,
		"AWS_CONFIG_FILE=" + filepath.Join(w.dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(w.dir, "no-aws-credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		"KEYCTL_CONFIG=" + w.config,
		"KEYCTL_IDENTITY=" + w.asWho,
	}
}

// run runs keyctl with args and returns its stdout, stderr and exit code.
func (w *world) run(args ...string) (string, string, int) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, builtBinaries.keyctl, args...)
	cmd.Env = w.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		w.t.Fatalf("keyctl %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// ok runs keyctl and fails the test unless it exits 0.
func (w *world) ok(args ...string) string {
	w.t.Helper()
	out, errOut, code := w.run(args...)
	if code != 0 {
		w.t.Fatalf("keyctl %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// fails runs keyctl, requires exit status code and one line on stderr
// containing want.
func (w *world) fails(code int, want string, args ...string) {
	w.t.Helper()
	_, errOut, got := w.run(args...)
	if got != code {
		w.t.Fatalf("keyctl %s: exit %d, want %d: %s", strings.Join(args, " "), got, code, errOut)
	}
	if !strings.HasPrefix(errOut, "keyctl: ") || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, want) {
		w.t.Fatalf("keyctl %s: stderr %q, want one line containing %q", strings.Join(args, " "), errOut, want)
	}
}

// okJSON runs keyctl with --json and decodes its output into v.
func (w *world) okJSON(v any, args ...string) {
	w.t.Helper()
	out := w.ok(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		w.t.Fatalf("keyctl %s --json printed no JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// identity makes a custodian identity and returns its file.
func (w *world) identity(name string) string {
	path := filepath.Join(w.dir, name+".key")
	out := w.ok("init", "identity", "--name", name, "--out", path)
	n, pub, ok := strings.Cut(strings.TrimSpace(out), "=")
	require.True(w.t, ok && n == name, "init identity printed %q", out)
	w.pubKeys[name] = pub
	fi, err := os.Stat(path)
	require.NoError(w.t, err)
	require.Equal(w.t, os.FileMode(0o600), fi.Mode().Perm(), "an identity file must be private")
	return path
}

// initTeam writes the configuration and installs the trust policy:
// alice, bob and carol are custodians, two of whom approve every change
// but create and rotate (one); svc is the service; mallory has an identity
// and no role. keyctl runs as alice unless told otherwise.
func (w *world) initTeam(extra ...string) map[string]string {
	ids := map[string]string{}
	for _, n := range []string{"alice", "bob", "carol", "mallory", "svc"} {
		ids[n] = w.identity(n)
	}
	args := []string{"init", "--store", w.store, "--kms-key", w.keyARN, "--kms-endpoint", w.kmsURL, "--region", kmsmock.DefaultRegion}
	if w.sharedAuditLog && strings.HasPrefix(w.store, "postgres:") {
		args = append(args, "--audit", w.store)
	}
	w.ok(args...)
	for _, f := range []string{"config.json", "audit-signer.key", "audit-hash.key"} {
		fi, err := os.Stat(filepath.Join(w.dir, "keyctl", f))
		require.NoError(w.t, err)
		require.Equal(w.t, os.FileMode(0o600), fi.Mode().Perm(), "%s must be private", f)
	}
	w.asWho = ids["alice"]
	req := filepath.Join(w.dir, "policy.json")
	w.ok(append([]string{"propose", "set-policy", "-o", req,
		"--custodian", "alice=" + w.pubKeys["alice"] + "@" + user(custodianPrincipal), "--custodian", "bob=" + w.pubKeys["bob"], "--custodian", "carol=" + w.pubKeys["carol"],
		"--service", "svc=" + w.pubKeys["svc"] + "@" + user(servicePrincipal),
		"--quorum", "2", "--quorum-for", "create=1", "--quorum-for", "rotate=1"}, extra...)...)
	w.ok("approve", req)
	w.ok("approve", req, "--identity", ids["bob"])
	w.ok("apply", req)
	return ids
}
