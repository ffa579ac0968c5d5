//go:build interop

package interop

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestJSMessageDecryptsWithCLI: a message the JS ESDK makes decrypts with the
// phicrypt command, and a message the command makes decrypts with the JS
// ESDK, through real pipes.
func TestJSMessageDecryptsWithCLI(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "phicrypt")
	if out, err := exec.Command("go", "build", "-o", bin, "../phicrypt/cmd/phicrypt").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	key := wrappingKey()
	keyFile := filepath.Join(dir, "wrapping.key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	pt := make([]byte, 100_000)
	rand.Read(pt)
	ec := map[string]string{"tenant": "general-hospital", "table": "imaging"}
	res := runJS(t, []job{{Op: "encrypt", InputB64: b64(pt), Args: rawArgs(key, map[string]any{
		"suite": "0x0578", "frame-length": 4096, "context": contextJSON(ec)})}})
	if !res[0].OK {
		t.Fatalf("JS encrypt: %s", res[0].Error)
	}
	cli := func(stdin []byte, args ...string) ([]byte, error) {
		cmd := exec.Command(bin, args...)
		cmd.Stdin = bytes.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Logf("phicrypt %v: %s", args[0], stderr.String())
		}
		return out, err
	}
	keyArgs := []string{"--raw-aes-key", keyFile, "--key-namespace", rawNamespace, "--key-name", rawName}
	got, err := cli(res[0].output(t), append([]string{"decrypt", "--context", "tenant=general-hospital"}, keyArgs...)...)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("the CLI did not decrypt the JS message: %v", err)
	}
	msg, err := cli(pt, append([]string{"encrypt", "--context", "tenant=general-hospital", "--frame-length", "4096"}, keyArgs...)...)
	if err != nil {
		t.Fatal(err)
	}
	back := runJS(t, []job{{Op: "decrypt", InputB64: b64(msg), Args: rawArgs(key, map[string]any{"context": `{"tenant":"general-hospital"}`})}})
	if !back[0].OK || !bytes.Equal(back[0].output(t), pt) {
		t.Fatalf("JS did not decrypt the CLI message: %s", back[0].Error)
	}
}
