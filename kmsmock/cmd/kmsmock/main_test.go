package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/kmsmock"
)

const (
	startTimeout = 20 * time.Second // a -race binary loads slowly on a busy machine
	stopTimeout  = 5 * time.Second
	callTimeout  = 10 * time.Second
)

// binary is the kmsmock binary TestMain builds once for every test.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kmsmock-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "kmsmock test:", err)
		os.Exit(1)
	}
	binary, err = build(dir)
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "kmsmock test:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles this package into dir, with the race detector when the test
// binary has it, so the tests also check the binary for races.
func build(dir string) (string, error) {
	gobin, err := exec.LookPath("go") // go test puts GOROOT/bin first in PATH
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "kmsmock")
	args := []string{"build", "-o", out}
	if raceEnabled() {
		args = append(args, "-race")
	}
	cmd := exec.Command(gobin, append(args, ".")...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, msg)
	}
	return out, nil
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

// command returns an exec.Cmd for the binary. A -race binary normally
// sleeps a second before exiting; GORACE turns that off.
func command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	return cmd
}

// proc is a running kmsmock binary.
type proc struct {
	cmd    *exec.Cmd
	url    string
	stderr *lockedBuffer
	done   chan struct{} // closed once the process has exited
}

// lockedBuffer collects the child's stderr while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startKMS starts the binary with args on a free loopback port, waits for the
// URL on its first line of stdout, and kills it when the test ends.
func startKMS(t *testing.T, args ...string) *proc {
	t.Helper()
	return startKMSAt(t, "127.0.0.1:0", args...)
}

func startKMSAt(t *testing.T, addr string, args ...string) *proc {
	t.Helper()
	p := &proc{
		cmd:    command(context.Background(), append([]string{"-addr", addr}, args...)...),
		stderr: &lockedBuffer{},
		done:   make(chan struct{}),
	}
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() { p.kill(t) })
	firstLine := make(chan string, 1)
	go p.watch(stdout, firstLine)
	select {
	case line := <-firstLine:
		p.url = line
	case <-p.done:
		t.Fatalf("kmsmock exited with status %d before printing its URL; stderr:\n%s", p.cmd.ProcessState.ExitCode(), p.stderr)
	case <-time.After(startTimeout):
		t.Fatalf("kmsmock printed no URL within %v; stderr:\n%s", startTimeout, p.stderr)
	}
	require.Regexp(t, `^http://127\.0\.0\.1:[1-9][0-9]*$`, p.url, "first line of stdout; stderr:\n%s", p.stderr)
	return p
}

// watch sends the first line of stdout, drains the rest, then reaps the
// process (Wait must come after the last read from the pipe).
func (p *proc) watch(stdout io.Reader, firstLine chan<- string) {
	r := bufio.NewReader(stdout)
	line, err := r.ReadString('\n')
	if err == nil {
		firstLine <- strings.TrimSuffix(line, "\n")
	}
	io.Copy(io.Discard, r)
	p.cmd.Wait()
	close(p.done)
}

// stop sends SIGTERM and returns the exit status.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		t.Fatalf("kmsmock did not exit within %v of SIGTERM; stderr:\n%s", stopTimeout, p.stderr)
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) kill(t *testing.T) {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
	if t.Failed() {
		t.Logf("kmsmock stderr:\n%s", p.stderr)
	}
}

func (p *proc) client(optFns ...func(*kms.Options)) *kms.Client {
	return kmsmock.NewClient(p.url, "us-east-1", "admin", "x", optFns...)
}

// admin calls the admin endpoint and returns the response body.
func (p *proc) admin(t *testing.T, method, path, body string, wantStatus int) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, p.url+path, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, wantStatus, resp.StatusCode, "%s %s: %s", method, path, b)
	return b
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

func createKeyWithAlias(t *testing.T, c *kms.Client, alias string) string {
	t.Helper()
	ctx := callCtx(t)
	key, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("kmsmock binary test")})
	require.NoError(t, err)
	_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: key.KeyMetadata.KeyId})
	require.NoError(t, err)
	return aws.ToString(key.KeyMetadata.Arn)
}

func TestBinaryServesKMSAndAdmin(t *testing.T) {
	p := startKMS(t, "-log-level", "debug")
	c := p.client()
	ctx := callCtx(t)
	keyARN := createKeyWithAlias(t, c, "alias/phi")
	encCtx := map[string]string{"patient": "mrn-0042-secret"}

	dk, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId: aws.String("alias/phi"), KeySpec: types.DataKeySpecAes256, EncryptionContext: encCtx,
	})
	require.NoError(t, err)
	require.Equal(t, keyARN, aws.ToString(dk.KeyId))
	require.Len(t, dk.Plaintext, 32)
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: encCtx})
	require.NoError(t, err)
	require.Equal(t, dk.Plaintext, dec.Plaintext)
	require.Equal(t, keyARN, aws.ToString(dec.KeyId))
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: map[string]string{"patient": "other"}})
	var invalid *types.InvalidCiphertextException
	require.ErrorAs(t, err, &invalid, "decrypt under another encryption context")

	var counts map[string]int64
	require.NoError(t, json.Unmarshal(p.admin(t, "GET", "/_kmsmock/calls", "", http.StatusOK), &counts))
	require.Equal(t, map[string]int64{"CreateKey": 1, "CreateAlias": 1, "GenerateDataKey": 1, "Decrypt": 2}, counts)

	trail := p.admin(t, "GET", "/_kmsmock/trail", "", http.StatusOK)
	require.Contains(t, string(trail), `"operation":"GenerateDataKey"`)
	require.NotContains(t, string(trail), "mrn-0042-secret", "the trail must not hold context values")

	require.Equal(t, 0, p.stop(t))
	logs := p.stderr.String()
	require.Contains(t, logs, "op=GenerateDataKey", "debug logs name each request")
	require.NotContains(t, logs, "mrn-0042-secret", "logs must not hold context values")
}

func TestBinaryAdminClockDeletesScheduledKey(t *testing.T) {
	p := startKMS(t)
	c := p.client()
	ctx := callCtx(t)
	keyARN := createKeyWithAlias(t, c, "alias/doomed")

	sched, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyARN), PendingWindowInDays: aws.Int32(7)})
	require.NoError(t, err)
	require.Equal(t, types.KeyStatePendingDeletion, sched.KeyState)
	desc, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyARN)})
	require.NoError(t, err, "a key pending deletion still exists")
	require.Equal(t, types.KeyStatePendingDeletion, desc.KeyMetadata.KeyState)

	p.admin(t, "POST", "/_kmsmock/clock", `{"advance": "169h"}`, http.StatusOK)
	var notFound *types.NotFoundException
	_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyARN)})
	require.ErrorAs(t, err, &notFound)
	_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/doomed")})
	require.ErrorAs(t, err, &notFound, "the alias goes with its key")

	p.admin(t, "POST", "/_kmsmock/clock", `{"advance": "-1h"}`, http.StatusBadRequest)
	require.Equal(t, 0, p.stop(t))
}

func TestBinaryAdminOutage(t *testing.T) {
	p := startKMS(t)
	// Without retries, so the outage shows at once instead of after back-off.
	c := p.client(func(o *kms.Options) { o.Retryer = aws.NopRetryer{} })
	ctx := callCtx(t)
	keyARN := createKeyWithAlias(t, c, "alias/outage")

	p.admin(t, "PUT", "/_kmsmock/outage", `{"outage": true}`, http.StatusNoContent)
	_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyARN), Plaintext: []byte("x")})
	require.Error(t, err, "calls fail during an outage")
	var apiErr interface{ ErrorCode() string }
	require.False(t, errors.As(err, &apiErr), "an outage drops the connection instead of answering: %v", err)

	p.admin(t, "DELETE", "/_kmsmock/faults", "", http.StatusNoContent)
	_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyARN), Plaintext: []byte("x")})
	require.NoError(t, err, "calls succeed once the outage ends")
	require.Equal(t, 0, p.stop(t))
}

func TestBinaryStateSurvivesRestart(t *testing.T) {
	state := filepath.Join(t.TempDir(), "kms-state.json")
	encCtx := map[string]string{"table": "patients"}
	plaintext := []byte("wrapping test plaintext")

	p := startKMS(t, "-state", state)
	c := p.client()
	keyARN := createKeyWithAlias(t, c, "alias/kept")
	enc, err := c.Encrypt(callCtx(t), &kms.EncryptInput{KeyId: aws.String("alias/kept"), Plaintext: plaintext, EncryptionContext: encCtx})
	require.NoError(t, err)
	require.Equal(t, 0, p.stop(t))

	info, err := os.Stat(state)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the state file holds key material")

	p = startKMS(t, "-state", state)
	c = p.client()
	ctx := callCtx(t)
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: encCtx})
	require.NoError(t, err)
	require.Equal(t, plaintext, dec.Plaintext)
	require.Equal(t, keyARN, aws.ToString(dec.KeyId))
	desc, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/kept")})
	require.NoError(t, err)
	require.Equal(t, keyARN, aws.ToString(desc.KeyMetadata.Arn))
	require.Equal(t, 0, p.stop(t))
}

func TestBinarySeed(t *testing.T) {
	const id = "0b1c2d3e-4f50-4a61-8b72-93a4b5c6d7e8"
	seed := filepath.Join(t.TempDir(), "seed.json")
	require.NoError(t, os.WriteFile(seed, []byte(`{"keys": [{"id": "`+id+`",
		"description": "seeded PHI key", "aliases": ["alias/seeded"]}]}`), 0o600))

	p := startKMS(t, "-seed", seed)
	c := p.client()
	ctx := callCtx(t)
	desc, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/seeded")})
	require.NoError(t, err)
	wantARN := "arn:aws:kms:us-east-1:111122223333:key/" + id
	require.Equal(t, wantARN, aws.ToString(desc.KeyMetadata.Arn))
	require.Equal(t, id, aws.ToString(desc.KeyMetadata.KeyId))
	require.Equal(t, "seeded PHI key", aws.ToString(desc.KeyMetadata.Description))

	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/seeded"), Plaintext: []byte("hello")})
	require.NoError(t, err)
	require.Equal(t, wantARN, aws.ToString(enc.KeyId))
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	require.NoError(t, err)
	require.Equal(t, []byte("hello"), dec.Plaintext)
	require.Equal(t, 0, p.stop(t))
}

func TestBinaryAllowRemote(t *testing.T) {
	p := startKMSAt(t, "0.0.0.0:0", "-allow-remote") // startKMSAt checks for a 127.0.0.1 URL
	_, err := p.client().CreateKey(callCtx(t), &kms.CreateKeyInput{})
	require.NoError(t, err)
	require.Equal(t, 0, p.stop(t))
	require.Contains(t, p.stderr.String(), "remote clients", "a warning about the open admin endpoint")
}

func TestBinaryRefusesBadInvocations(t *testing.T) {
	badSeed := filepath.Join(t.TempDir(), "seed.json")
	require.NoError(t, os.WriteFile(badSeed, []byte(`{"keys": [{"idd": "typo"}]}`), 0o600))
	cases := []struct {
		name     string
		args     []string
		wantCode int
		wantMsg  string
	}{
		{"remote address", []string{"-addr", "0.0.0.0:0"}, 2, "loopback"},
		{"malformed address", []string{"-addr", "127.0.0.1"}, 2, "-addr"},
		{"unknown flag", []string{"-bogus"}, 2, "-bogus"},
		{"stray argument", []string{"-addr", "127.0.0.1:0", "serve"}, 2, `"serve"`},
		{"bad log level", []string{"-addr", "127.0.0.1:0", "-log-level", "loud"}, 2, "-log-level"},
		{"bad region", []string{"-addr", "127.0.0.1:0", "-region", "mars"}, 1, "region"},
		{"missing seed", []string{"-addr", "127.0.0.1:0", "-seed", filepath.Join(t.TempDir(), "none.json")}, 1, "seed"},
		{"unknown seed field", []string{"-addr", "127.0.0.1:0", "-seed", badSeed}, 1, "idd"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
			defer cancel()
			cmd := command(ctx, tc.args...) // killed if it serves by mistake
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "stderr: %s", stderr.String())
			require.Equal(t, tc.wantCode, exit.ExitCode(), "stderr: %s", stderr.String())
			require.Empty(t, stdout.String(), "no URL when it does not serve")
			require.Contains(t, stderr.String(), tc.wantMsg)
			require.NotContains(t, stderr.String(), "kmsmock: kmsmock:")
			require.Equal(t, 1, strings.Count(stderr.String(), "\n"), "a one-line message: %q", stderr.String())
		})
	}
}

func TestRunHelpExitsZero(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run(t.Context(), []string{"-h"}, &stdout, &stderr))
	require.Empty(t, stdout.String())
	require.Contains(t, stderr.String(), "-allow-remote")
}

// TestRunStopsWhenContextEnds runs the server in-process, as main does but
// with a context the test cancels instead of a signal.
func TestRunStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	var stderr lockedBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"-addr", "127.0.0.1:0", "-log-level", "warn"}, stdoutW, &stderr)
		stdoutW.Close()
	}()
	line, err := bufio.NewReader(stdoutR).ReadString('\n')
	require.NoError(t, err)
	url := strings.TrimSpace(line)
	require.True(t, regexp.MustCompile(`^http://127\.0\.0\.1:\d+$`).MatchString(url), url)

	c := kmsmock.NewClient(url, "us-east-1", "admin", "x")
	_, err = c.CreateKey(callCtx(t), &kms.CreateKeyInput{})
	require.NoError(t, err)

	cancel()
	select {
	case got := <-code:
		require.Equal(t, 0, got, "stderr: %s", stderr.String())
	case <-time.After(stopTimeout):
		t.Fatal("run did not return after its context ended")
	}
	require.Empty(t, stderr.String(), "nothing to log at warn level")
}
