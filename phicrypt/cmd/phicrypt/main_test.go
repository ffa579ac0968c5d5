package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// result is one in-process run of the command.
type result struct {
	code           int
	stdout, stderr []byte
}

func runCLI(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, bytes.NewReader(stdin), &out, &errOut)
	return result{code, out.Bytes(), errOut.Bytes()}
}

// mustRun runs the command and fails the test unless it exits 0.
func mustRun(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	r := runCLI(t, stdin, args...)
	if r.code != exitOK {
		t.Fatalf("phicrypt %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	if len(r.stderr) != 0 {
		t.Errorf("phicrypt %s: stderr on success: %s", strings.Join(args, " "), r.stderr)
	}
	return r.stdout
}

// expectFailure checks an exit status, a one-line "phicrypt: " error, and
// an empty stdout.
func expectFailure(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d; stderr: %s", r.code, code, r.stderr)
	}
	msg := string(r.stderr)
	if !strings.HasPrefix(msg, "phicrypt: ") || strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, "\n") {
		t.Errorf("stderr is not one line starting \"phicrypt: \": %q", msg)
	}
	if len(r.stdout) != 0 {
		t.Errorf("%d bytes on stdout after a failure", len(r.stdout))
	}
}

// rawKey writes a fresh 32-byte key to a private file and returns the file
// and the key.
func rawKey(t *testing.T) (string, []byte) {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, key
}

func rawArgs(path string) []string {
	return []string{"--raw-aes-key", path, "--key-namespace", "phicrypt-test", "--key-name", "key-1"}
}

func args(cmd string, groups ...[]string) []string {
	out := []string{cmd}
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestRawAESRoundTrip(t *testing.T) {
	path, _ := rawKey(t)
	for _, suite := range []string{"0x0478", "0x0578"} {
		for _, size := range []int{0, 1, 70000} {
			pt := randomBytes(size)
			msg := mustRun(t, pt, args("encrypt", rawArgs(path), []string{"--frame-length", "4096", "--suite", suite})...)
			got := mustRun(t, msg, args("decrypt", rawArgs(path))...)
			if !bytes.Equal(got, pt) {
				t.Errorf("suite %s, %d bytes: the round trip changed the plaintext", suite, size)
			}
		}
	}
}

func TestRoundTripWorkers(t *testing.T) {
	path, _ := rawKey(t)
	pt := randomBytes(100_000)
	msg := mustRun(t, pt, args("encrypt", rawArgs(path), []string{"--frame-length", "1000", "--workers", "4"})...)
	if got := mustRun(t, msg, args("decrypt", rawArgs(path))...); !bytes.Equal(got, pt) {
		t.Error("the round trip with --workers 4 changed the plaintext")
	}
}

func TestContextEnforced(t *testing.T) {
	path, _ := rawKey(t)
	pt := []byte("patient record")
	msg := mustRun(t, pt, args("encrypt", rawArgs(path), []string{"--context", "tenant=general", "--context", "purpose=billing"})...)

	got := mustRun(t, msg, args("decrypt", rawArgs(path), []string{"--context", "tenant=general"})...)
	if !bytes.Equal(got, pt) {
		t.Error("decrypt with a matching context changed the plaintext")
	}
	for _, ctx := range []string{"tenant=other", "missing=pair"} {
		r := runCLI(t, msg, args("decrypt", rawArgs(path), []string{"--context", ctx})...)
		expectFailure(t, r, exitFailure)
		if strings.Contains(string(r.stderr), "general") || strings.Contains(string(r.stderr), "other") {
			t.Errorf("the error names a context value: %s", r.stderr)
		}
	}
}

func TestTamperedMessage(t *testing.T) {
	path, _ := rawKey(t)
	for _, suite := range []string{"0x0478", "0x0578"} {
		msg := mustRun(t, randomBytes(10000), args("encrypt", rawArgs(path), []string{"--frame-length", "4096", "--suite", suite})...)
		for _, at := range []int{10, len(msg) / 2, len(msg) - 1} {
			bad := bytes.Clone(msg)
			bad[at] ^= 1
			expectFailure(t, runCLI(t, bad, args("decrypt", rawArgs(path))...), exitFailure)
		}
		expectFailure(t, runCLI(t, msg[:len(msg)-1], args("decrypt", rawArgs(path))...), exitFailure)
		expectFailure(t, runCLI(t, append(bytes.Clone(msg), 0), args("decrypt", rawArgs(path))...), exitFailure)
	}
}

func TestWrongKey(t *testing.T) {
	path, _ := rawKey(t)
	other, _ := rawKey(t)
	msg := mustRun(t, []byte("x"), args("encrypt", rawArgs(path))...)
	expectFailure(t, runCLI(t, msg, args("decrypt", rawArgs(other))...), exitFailure)
	wrongName := []string{"--raw-aes-key", path, "--key-namespace", "phicrypt-test", "--key-name", "key-2"}
	expectFailure(t, runCLI(t, msg, args("decrypt", wrongName)...), exitFailure)
}

// A large message is streamed: a failure in a late frame comes after the
// plaintext of earlier frames, and the error says to discard it.
func TestStreamedDecryptFailure(t *testing.T) {
	t.Parallel()
	path, _ := rawKey(t)
	pt := randomBytes(wholeLimit + 1<<20)
	msg := mustRun(t, pt, args("encrypt", rawArgs(path), []string{"--frame-length", "1048576"})...)
	if got := mustRun(t, msg, args("decrypt", rawArgs(path))...); !bytes.Equal(got, pt) {
		t.Fatal("the streamed round trip changed the plaintext")
	}
	bad := bytes.Clone(msg)
	bad[len(bad)-100] ^= 1
	r := runCLI(t, bad, args("decrypt", rawArgs(path))...)
	if r.code != exitFailure || !strings.Contains(string(r.stderr), "discard") {
		t.Fatalf("exit %d, stderr %q; want 1 and a warning to discard the output", r.code, r.stderr)
	}
	if len(r.stdout) == 0 || len(r.stdout) >= len(pt) || !bytes.Equal(r.stdout, pt[:len(r.stdout)]) {
		t.Errorf("streamed %d bytes before failing; want a proper prefix of the plaintext", len(r.stdout))
	}
}

func TestUsageErrors(t *testing.T) {
	path, _ := rawKey(t)
	raw := rawArgs(path)
	tests := []struct {
		name string
		args []string
	}{
		{"no command", nil},
		{"unknown command", []string{"seal"}},
		{"no keyring", []string{"encrypt"}},
		{"no keyring on decrypt", []string{"decrypt", "--context", "a=b"}},
		{"unknown flag", args("encrypt", raw, []string{"--frobnicate"})},
		{"encrypt-only flag on decrypt", args("decrypt", raw, []string{"--suite", "0x0478"})},
		{"discovery on encrypt", args("encrypt", []string{"--kms-discovery"})},
		{"discovery with keys", []string{"decrypt", "--kms-discovery", "--kms-key", "arn:aws:kms:us-east-1:111122223333:key/k"}},
		{"bad suite", args("encrypt", raw, []string{"--suite", "0x0178"})},
		{"suite not a number", args("encrypt", raw, []string{"--suite", "fast"})},
		{"bad context syntax", args("encrypt", raw, []string{"--context", "tenant"})},
		{"empty context key", args("encrypt", raw, []string{"--context", "=v"})},
		{"duplicate context key", args("encrypt", raw, []string{"--context", "a=1", "--context", "a=2"})},
		{"reserved context key", args("encrypt", raw, []string{"--context", "aws-crypto-public-key=x"})},
		{"bad commitment policy", args("decrypt", raw, []string{"--commitment-policy", "lax"})},
		{"forbid policy on encrypt", args("encrypt", raw, []string{"--commitment-policy", "forbid-encrypt-allow-decrypt"})},
		{"frame length zero", args("encrypt", raw, []string{"--frame-length", "0"})},
		{"frame length too large", args("encrypt", raw, []string{"--frame-length", "4194305"})},
		{"frame length not a number", args("encrypt", raw, []string{"--frame-length", "4k"})},
		{"workers zero", args("encrypt", raw, []string{"--workers", "0"})},
		{"max edks zero", args("decrypt", raw, []string{"--max-edks", "0"})},
		{"namespace without key", []string{"encrypt", "--key-namespace", "ns", "--key-name", "n", "--kms-key", "arn:aws:kms:us-east-1:111122223333:key/k"}},
		{"key without name", []string{"encrypt", "--raw-aes-key", path, "--key-namespace", "ns"}},
		{"reserved namespace", []string{"encrypt", "--raw-aes-key", path, "--key-namespace", "aws-kms", "--key-name", "n"}},
		{"stray argument", args("encrypt", raw, []string{"input.txt"})},
		{"empty kms key", []string{"encrypt", "--kms-key", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectFailure(t, runCLI(t, []byte("plaintext"), tt.args...), exitUsage)
		})
	}
}

func TestSecretsNotInErrors(t *testing.T) {
	path, _ := rawKey(t)
	r := runCLI(t, nil, args("encrypt", rawArgs(path), []string{"--context", "JaneDoe-MRN-12345"})...)
	expectFailure(t, r, exitUsage)
	if strings.Contains(string(r.stderr), "JaneDoe") {
		t.Errorf("a usage error echoes a --context argument: %s", r.stderr)
	}
}

func TestRawKeyFileChecks(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, n int, perm os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, randomBytes(n), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, perm); err != nil { // umask may have narrowed it
			t.Fatal(err)
		}
		return p
	}
	// Like /tmp, a directory that every user may read.
	openDir := filepath.Join(dir, "keys")
	if err := os.Mkdir(openDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(openDir, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"short", write("short", 16, 0o600), "exactly 32"},
		{"hex text", write("hex", 65, 0o600), "holds more"},
		{"world-readable", write("open", 32, 0o644), "chmod 600"},
		{"world-writable", write("writable", 32, 0o602), "chmod 600"},
		{"missing", filepath.Join(dir, "none"), "no such file"},
		{"directory", openDir, "is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, []byte("x"), args("encrypt", rawArgs(tt.path))...)
			expectFailure(t, r, exitUsage)
			if !strings.Contains(string(r.stderr), tt.want) {
				t.Errorf("stderr %q does not say %q", r.stderr, tt.want)
			}
			if tt.want != "chmod 600" && strings.Contains(string(r.stderr), "every user") {
				t.Errorf("stderr %q blames permissions", r.stderr)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, a := range [][]string{{"-h"}, {"--help"}, {"help"}, {"encrypt", "-h"}, {"decrypt", "--help"}} {
		r := runCLI(t, nil, a...)
		if r.code != exitOK || !strings.Contains(string(r.stderr), "usage: phicrypt") || len(r.stdout) != 0 {
			t.Errorf("phicrypt %v: exit %d, stdout %d bytes, stderr %.40q", a, r.code, len(r.stdout), r.stderr)
		}
	}
}

// Every flag either command accepts is documented in the help.
func TestHelpNamesEveryFlag(t *testing.T) {
	for _, cmd := range []string{"encrypt", "decrypt"} {
		newFlagSet(&options{command: cmd}).VisitAll(func(f *flag.Flag) {
			if !strings.Contains(usageText, "--"+f.Name+" ") {
				t.Errorf("the help does not document --%s", f.Name)
			}
		})
	}
}

// createKMSKey creates a key in kmsmock and returns its ARN.
func createKMSKey(t *testing.T, l *kmsmock.Local) string {
	t.Helper()
	out, err := l.Client("cli").CreateKey(context.Background(), &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	return *out.KeyMetadata.Arn
}

func TestKMSRoundTrip(t *testing.T) {
	l := kmsmock.StartTest(t, kmsmock.Config{})
	arn, arn2 := createKMSKey(t, l), createKMSKey(t, l)
	kmsArgs := func(keys ...string) []string {
		a := []string{"--kms-endpoint", l.URL}
		for _, k := range keys {
			a = append(a, "--kms-key", k)
		}
		return a
	}
	pt := randomBytes(5000)
	ec := []string{"--context", "tenant=general"}
	msg := mustRun(t, pt, args("encrypt", kmsArgs(arn, arn2), ec)...)

	decrypts := map[string][]string{
		"generator":    kmsArgs(arn),
		"second key":   kmsArgs(arn2),
		"discovery":    {"--kms-endpoint", l.URL, "--kms-discovery"},
		"with context": append(kmsArgs(arn), ec...),
	}
	for name, a := range decrypts {
		if got := mustRun(t, msg, args("decrypt", a)...); !bytes.Equal(got, pt) {
			t.Errorf("%s: the round trip changed the plaintext", name)
		}
	}
	expectFailure(t, runCLI(t, msg, args("decrypt", kmsArgs(arn), []string{"--context", "tenant=other"})...), exitFailure)

	other := createKMSKey(t, l)
	expectFailure(t, runCLI(t, msg, args("decrypt", kmsArgs(other))...), exitFailure)
}

// A key named by key id, alias name or alias ARN decrypts what it
// encrypted: decrypt resolves it to the key ARN the message names.
func TestKMSKeyIDAndAliasRoundTrip(t *testing.T) {
	l := kmsmock.StartTest(t, kmsmock.Config{})
	arn := createKMSKey(t, l)
	keyID := arn[strings.LastIndex(arn, "/")+1:]
	if _, err := l.Client("cli").CreateAlias(context.Background(), &kms.CreateAliasInput{
		AliasName: aws.String("alias/patients"), TargetKeyId: aws.String(keyID),
	}); err != nil {
		t.Fatal(err)
	}
	aliasARN := strings.Replace(arn, ":key/"+keyID, ":alias/patients", 1)
	pt := []byte("patient record")
	ec := []string{"--context", "tenant=general"}
	for name, key := range map[string]string{"key id": keyID, "alias": "alias/patients", "alias ARN": aliasARN} {
		t.Run(name, func(t *testing.T) {
			kmsArgs := []string{"--kms-endpoint", l.URL, "--kms-key", key}
			msg := mustRun(t, pt, args("encrypt", kmsArgs, ec)...)
			if got := mustRun(t, msg, args("decrypt", kmsArgs, ec)...); !bytes.Equal(got, pt) {
				t.Error("the round trip changed the plaintext")
			}
			// The same message decrypts with the key ARN, and the other
			// way round.
			if got := mustRun(t, msg, args("decrypt", []string{"--kms-endpoint", l.URL, "--kms-key", arn})...); !bytes.Equal(got, pt) {
				t.Error("decrypting with the key ARN changed the plaintext")
			}
		})
	}

	// A key the message was not written for still fails, named any way.
	other := createKMSKey(t, l)
	msg := mustRun(t, pt, args("encrypt", []string{"--kms-endpoint", l.URL, "--kms-key", other})...)
	expectFailure(t, runCLI(t, msg, args("decrypt", []string{"--kms-endpoint", l.URL, "--kms-key", "alias/patients"})...), exitFailure)

	// An alias that names no key fails clearly, before anything is read.
	r := runCLI(t, msg, args("decrypt", []string{"--kms-endpoint", l.URL, "--kms-key", "alias/none"})...)
	expectFailure(t, r, exitFailure)
	if !strings.Contains(string(r.stderr), "alias/none") || !strings.Contains(string(r.stderr), "DescribeKey") {
		t.Errorf("stderr %q does not say which --kms-key could not be resolved", r.stderr)
	}
}

func TestIsKeyARN(t *testing.T) {
	tests := map[string]bool{
		"arn:aws:kms:eu-west-1:111122223333:key/abc":       true,
		"arn:aws-cn:kms:cn-north-1:111122223333:alias/app": false,
		"alias/app":                            false,
		"1234abcd-12ab-34cd-56ef-1234567890ab": false,
		"arn:aws:s3:::bucket":                  false,
	}
	for id, want := range tests {
		if got := isKeyARN(id); got != want {
			t.Errorf("isKeyARN(%q) = %v, want %v", id, got, want)
		}
	}
}

// expectStepsNamedOnce checks a failure's one line names "phicrypt:" once
// and "keyring:" at most once.
func expectStepsNamedOnce(t *testing.T, r result) {
	t.Helper()
	expectFailure(t, r, exitFailure)
	msg := string(r.stderr)
	if strings.Count(msg, "phicrypt:") != 1 || strings.Count(msg, "keyring:") > 1 || strings.Count(msg, "unwrap") > 1 {
		t.Errorf("stderr repeats a step: %q", msg)
	}
}

// Real failures (a disabled KMS key in kmsmock, a wrong raw AES key, both)
// name each step once.
func TestErrorsNameEachStepOnce(t *testing.T) {
	l := kmsmock.StartTest(t, kmsmock.Config{})
	arn := createKMSKey(t, l)
	path, _ := rawKey(t)
	wrong, _ := rawKey(t)
	kmsArgs := []string{"--kms-endpoint", l.URL, "--kms-key", arn}
	msg := mustRun(t, []byte("record"), args("encrypt", kmsArgs, rawArgs(path))...)
	if _, err := l.Client("cli").DisableKey(context.Background(), &kms.DisableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string][]string{
		"encrypt, KMS key disabled": args("encrypt", kmsArgs),
		"decrypt, KMS key disabled": args("decrypt", kmsArgs),
		"decrypt, wrong raw key":    args("decrypt", rawArgs(wrong)),
		"decrypt, both fail":        args("decrypt", rawArgs(wrong), kmsArgs),
	} {
		t.Run(name, func(t *testing.T) {
			in := msg
			if a[0] == "encrypt" {
				in = []byte("record")
			}
			expectStepsNamedOnce(t, runCLI(t, in, a...))
		})
	}
}

// An error wrapped with the CLI's step loses its own "phicrypt: ", so the
// line says it once.
func TestStepErrorPrefix(t *testing.T) {
	var stderr bytes.Buffer
	report(&stderr, &stepError{step: "encrypting", err: phicrypt.ErrLimit, advice: "discard the output"})
	want := "phicrypt: encrypting: message exceeds a configured limit; discard the output\n"
	if stderr.String() != want {
		t.Errorf("report printed %q, want %q", stderr.String(), want)
	}
}

// With raw AES and KMS together, KMS makes the data key and either keyring
// alone decrypts.
func TestRawAESAndKMS(t *testing.T) {
	l := kmsmock.StartTest(t, kmsmock.Config{})
	arn := createKMSKey(t, l)
	path, _ := rawKey(t)
	kmsArgs := []string{"--kms-endpoint", l.URL, "--kms-key", arn}
	pt := []byte("both keyrings")
	msg := mustRun(t, pt, args("encrypt", rawArgs(path), kmsArgs)...)
	for name, a := range map[string][]string{"raw": rawArgs(path), "kms": kmsArgs} {
		if got := mustRun(t, msg, args("decrypt", a)...); !bytes.Equal(got, pt) {
			t.Errorf("%s alone: the round trip changed the plaintext", name)
		}
	}
	// KMS made the data key: it is first among the wrapped keys.
	if !bytes.Contains(msg, []byte(arn)) {
		t.Error("the message does not name the KMS key")
	}
}

func TestKMSUnreachable(t *testing.T) {
	t.Parallel()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	arn := createKMSKey(t, l)
	url := l.URL
	l.Close()
	r := runCLI(t, []byte("x"), "encrypt", "--kms-endpoint", url, "--kms-key", arn)
	expectFailure(t, r, exitFailure)
}

func TestKeyRegion(t *testing.T) {
	tests := map[string]string{
		"arn:aws:kms:eu-west-1:111122223333:key/abc":       "eu-west-1",
		"arn:aws-cn:kms:cn-north-1:111122223333:alias/app": "cn-north-1",
		"alias/app":                            "fallback",
		"1234abcd-12ab-34cd-56ef-1234567890ab": "fallback",
		"arn:aws:s3:::bucket":                  "fallback",
	}
	for id, want := range tests {
		if got := keyRegion(id, "fallback"); got != want {
			t.Errorf("keyRegion(%q) = %q, want %q", id, got, want)
		}
	}
}

// The CLI and the library read each other's messages.
func TestLibraryInterop(t *testing.T) {
	path, key := rawKey(t)
	kr, err := keyring.NewRawAES("phicrypt-test", "key-1", key)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pt := randomBytes(9000)

	msg := mustRun(t, pt, args("encrypt", rawArgs(path), []string{"--suite", "0x0578", "--frame-length", "4096", "--context", "tenant=general"})...)
	got, ec, err := enc.Decrypt(ctx, msg, map[string]string{"tenant": "general"})
	if err != nil {
		t.Fatalf("the library does not decrypt the CLI's message: %v", err)
	}
	if !bytes.Equal(got, pt) || ec["tenant"] != "general" {
		t.Error("the library read a different plaintext or context")
	}

	msg, err = enc.Encrypt(ctx, pt, map[string]string{"tenant": "general"})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustRun(t, msg, args("decrypt", rawArgs(path), []string{"--context", "tenant=general"})...); !bytes.Equal(got, pt) {
		t.Error("the CLI read a different plaintext from the library's message")
	}
}

// TestBinaryPipes builds the command and runs encrypt | decrypt through
// real pipes, then checks the exit statuses main gives.
func TestBinaryPipes(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	path, _ := rawKey(t)
	pt := randomBytes(300_000)

	enc := command(bin, args("encrypt", rawArgs(path), []string{"--frame-length", "4096"})...)
	dec := command(bin, args("decrypt", rawArgs(path))...)
	enc.Stdin = bytes.NewReader(pt)
	pipe, err := enc.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	dec.Stdin = pipe
	var out, encErr, decErr bytes.Buffer
	dec.Stdout, enc.Stderr, dec.Stderr = &out, &encErr, &decErr
	if err := enc.Start(); err != nil {
		t.Fatal(err)
	}
	if err := dec.Start(); err != nil {
		t.Fatal(err)
	}
	if err := enc.Wait(); err != nil {
		t.Fatalf("encrypt: %v: %s", err, encErr.Bytes())
	}
	if err := dec.Wait(); err != nil {
		t.Fatalf("decrypt: %v: %s", err, decErr.Bytes())
	}
	if !bytes.Equal(out.Bytes(), pt) {
		t.Errorf("encrypt | decrypt gave %d bytes, not the %d-byte plaintext", out.Len(), len(pt))
	}

	checkExit(t, command(bin, "encrypt", "--frobnicate"), nil, exitUsage)
	checkExit(t, command(bin, args("decrypt", rawArgs(path))...), []byte("not a message"), exitFailure)
}

// Without --kms-endpoint and with no AWS credentials anywhere, the one line
// on stderr is phicrypt's, saying what to set: no SDK log line (such as its
// IMDSv1 fallback warning) comes before it, and it does not read as a
// failed KMS call. The environment is empty but for HOME (an empty
// directory: no shared config files) and the instance metadata endpoint,
// which points at a loopback stand-in that answers 404 as some container
// networks do, so that no request leaves the machine.
func TestNoCredentials(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	var imdsRequests atomic.Int32
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		imdsRequests.Add(1)
		http.NotFound(w, r)
	}))
	defer imds.Close()
	env := []string{
		"HOME=" + t.TempDir(),
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + imds.URL,
		"GORACE=atexit_sleep_ms=0",
	}
	for _, a := range [][]string{
		{"encrypt", "--kms-key", "arn:aws:kms:us-east-1:111122223333:key/k"},
		{"decrypt", "--kms-key", "alias/patients"},
		{"decrypt", "--kms-discovery"},
	} {
		cmd := exec.Command(bin, a...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader("x")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		msg := stderr.String()
		if code := cmd.ProcessState.ExitCode(); code != exitFailure || stdout.Len() != 0 {
			t.Errorf("%v: exit %d, %d bytes on stdout; want 1 and none", a, code, stdout.Len())
		}
		if !strings.HasPrefix(msg, "phicrypt: no usable AWS credentials") || strings.Count(msg, "\n") != 1 {
			t.Errorf("%v: stderr is not one line of phicrypt's saying that credentials are missing: %q", a, msg)
		}
		for _, noise := range []string{"WARN", "SDK ", "GenerateDataKey", "DescribeKey", "keyring:"} {
			if strings.Contains(msg, noise) {
				t.Errorf("%v: stderr has %q: %q", a, noise, msg)
			}
		}
	}
	if imdsRequests.Load() == 0 {
		t.Error("the SDK never asked the instance metadata stand-in: the test did not exercise the IMDS path")
	}

	// A raw AES key decrypts without KMS, so decrypt with a raw key and a
	// KMS key ARN does not insist on credentials.
	path, _ := rawKey(t)
	msg := mustRun(t, []byte("x"), args("encrypt", rawArgs(path))...)
	cmd := exec.Command(bin, args("decrypt", rawArgs(path), []string{"--kms-key", "arn:aws:kms:us-east-1:111122223333:key/k"})...)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(msg)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stdout.String() != "x" || stderr.Len() != 0 {
		t.Errorf("decrypt with a raw key and no AWS credentials: %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
}

func checkExit(t *testing.T, cmd *exec.Cmd, stdin []byte, want int) {
	t.Helper()
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Run()
	if got := cmd.ProcessState.ExitCode(); got != want || stdout.Len() != 0 || !strings.HasPrefix(stderr.String(), "phicrypt: ") {
		t.Errorf("%v: exit %d (want %d), %d bytes on stdout, stderr %q", cmd.Args[1:], got, want, stdout.Len(), stderr.String())
	}
}

// buildBinary compiles this package, with the race detector when the test
// binary has it.
func buildBinary(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go") // go test puts GOROOT/bin first in PATH
	if err != nil {
		t.Skip("no go command:", err)
	}
	out := filepath.Join(t.TempDir(), "phicrypt")
	a := []string{"build", "-o", out}
	if raceEnabled() {
		a = append(a, "-race")
	}
	if msg, err := exec.Command(gobin, append(a, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, msg)
	}
	return out
}

func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// command runs the binary; a -race binary otherwise sleeps a second before
// exiting.
func command(bin string, a ...string) *exec.Cmd {
	cmd := exec.Command(bin, a...)
	cmd.Env = append(os.Environ(), "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	return cmd
}
