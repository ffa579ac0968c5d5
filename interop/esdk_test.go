//go:build interop

package interop

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// job is one request to the JS harness's batch mode (interop/js/README.md).
type job struct {
	Op       string         `json:"op"`
	Args     map[string]any `json:"args"`
	InputB64 string         `json:"inputB64"`
}

type result struct {
	OK        bool   `json:"ok"`
	OutputB64 string `json:"outputB64"`
	Error     string `json:"error"`
	Header    struct {
		Version           int               `json:"version"`
		SuiteID           string            `json:"suiteId"`
		EncryptionContext map[string]string `json:"encryptionContext"`
		FrameLength       int               `json:"frameLength"`
	} `json:"header"`
}

func (r result) output(t *testing.T) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(r.OutputB64)
	if err != nil {
		t.Fatalf("harness output is not base64: %v", err)
	}
	return b
}

// runJS runs a batch through node and returns one result per job.
func runJS(t *testing.T, jobs []job) []result {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "js", "esdk.mjs")
	if _, err := os.Stat(filepath.Join(filepath.Dir(file), "js", "node_modules", "@aws-crypto", "client-node")); err != nil {
		t.Fatalf("the JS ESDK is not installed: run `npm ci --prefix interop/js` (scripts/test.sh does)")
	}
	in, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", script, "batch")
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node esdk.mjs batch: %v\n%s", err, stderr.String())
	}
	var out []result
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || len(out) != len(jobs) {
		t.Fatalf("harness answered %d results for %d jobs (%v)", len(out), len(jobs), err)
	}
	return out
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// rawArgs are the harness flags for the raw AES keyring the Go side uses too.
func rawArgs(key []byte, extra map[string]any) map[string]any {
	a := map[string]any{"raw-aes-key-hex": hex.EncodeToString(key), "key-namespace": rawNamespace, "key-name": rawName}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

const (
	rawNamespace = "phicrypt-interop"
	rawName      = "wrapping-key-1"
)

func suiteHex(s uint16) string { return fmt.Sprintf("0x%04x", s) }

func contextJSON(ec map[string]string) string {
	if ec == nil {
		ec = map[string]string{}
	}
	b, _ := json.Marshal(ec)
	return string(b)
}
