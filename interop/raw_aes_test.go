//go:build interop

package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

type vector struct {
	name  string
	suite phicrypt.Suite
	frame int
	pt    []byte
	ec    map[string]string
}

// matrix is the interop matrix: sizes 0, 1, frame-1, frame,
// frame+1, several frames and a tail, and 1 MiB; frame lengths 4096 and
// 65536; both suites; empty, several-pair and non-ASCII contexts.
func matrix() []vector {
	contexts := []map[string]string{
		nil,
		{"tenant": "general-hospital", "table": "patients", "column": "notes", "purpose": "interop"},
		{"pacienta": "José Núñez", "病院": "総合病院", "emoji": "🩺"},
	}
	var vs []vector
	for _, suite := range []phicrypt.Suite{phicrypt.SuiteCommitted, phicrypt.SuiteCommittedSigned} {
		for _, frame := range []int{4096, 65536} {
			for i, size := range []int{0, 1, frame - 1, frame, frame + 1, 3*frame + 123, 1 << 20} {
				ec := contexts[i%len(contexts)]
				pt := make([]byte, size)
				rand.Read(pt)
				vs = append(vs, vector{fmt.Sprintf("%v/frame%d/size%d/ctx%d", suite, frame, size, i%len(contexts)), suite, frame, pt, ec})
			}
		}
	}
	return vs
}

func wrappingKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

func TestJSEncryptsGoDecrypts(t *testing.T) {
	key := wrappingKey()
	vs := matrix()
	jobs := make([]job, len(vs))
	for i, v := range vs {
		jobs[i] = job{Op: "encrypt", InputB64: b64(v.pt), Args: rawArgs(key, map[string]any{
			"suite": suiteHex(uint16(v.suite)), "frame-length": v.frame, "context": contextJSON(v.ec)})}
	}
	res := runJS(t, jobs)
	kr, err := keyring.NewRawAES(rawNamespace, rawName, key)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			if !res[i].OK {
				t.Fatalf("JS encrypt failed: %s", res[i].Error)
			}
			got, ec, err := enc.Decrypt(context.Background(), res[i].output(t), v.ec)
			if err != nil {
				t.Fatalf("phicrypt cannot decrypt the JS message: %v", err)
			}
			if !bytes.Equal(got, v.pt) {
				t.Fatal("plaintext differs")
			}
			if len(ec) != len(v.ec) {
				t.Fatalf("context has %d pairs, want %d", len(ec), len(v.ec))
			}
		})
	}
}

func TestGoEncryptsJSDecrypts(t *testing.T) {
	key := wrappingKey()
	kr, err := keyring.NewRawAES(rawNamespace, rawName, key)
	if err != nil {
		t.Fatal(err)
	}
	vs := matrix()
	jobs := make([]job, len(vs))
	for i, v := range vs {
		enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, Suite: v.suite, FrameLength: v.frame})
		if err != nil {
			t.Fatal(err)
		}
		msg, err := enc.Encrypt(context.Background(), v.pt, v.ec)
		if err != nil {
			t.Fatal(err)
		}
		jobs[i] = job{Op: "decrypt", InputB64: b64(msg), Args: rawArgs(key, map[string]any{"context": contextJSON(v.ec)})}
	}
	res := runJS(t, jobs)
	for i, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			if !res[i].OK {
				t.Fatalf("JS cannot decrypt the phicrypt message: %s", res[i].Error)
			}
			if !bytes.Equal(res[i].output(t), v.pt) {
				t.Fatal("plaintext differs")
			}
			if res[i].Header.SuiteID != suiteHex(uint16(v.suite)) || res[i].Header.FrameLength != v.frame {
				t.Fatalf("JS read suite %s frame %d", res[i].Header.SuiteID, res[i].Header.FrameLength)
			}
		})
	}
}

// Legacy (version 1) messages made by the JS SDK are refused under the
// default policy and read under require-encrypt-allow-decrypt.
func TestLegacyMessagesFollowCommitmentPolicy(t *testing.T) {
	key := wrappingKey()
	pt := []byte("a legacy record")
	ec := map[string]string{"tenant": "general-hospital"}
	var jobs []job
	suites := []phicrypt.Suite{phicrypt.SuiteLegacy, phicrypt.SuiteLegacySigned}
	for _, s := range suites {
		jobs = append(jobs, job{Op: "encrypt", InputB64: b64(pt), Args: rawArgs(key, map[string]any{
			"suite": suiteHex(uint16(s)), "commitment-policy": "forbid-encrypt-allow-decrypt", "context": contextJSON(ec), "frame-length": 7})})
	}
	res := runJS(t, jobs)
	kr, err := keyring.NewRawAES(rawNamespace, rawName, key)
	if err != nil {
		t.Fatal(err)
	}
	strict, _ := phicrypt.New(phicrypt.Config{Keyring: kr})
	lenient, _ := phicrypt.New(phicrypt.Config{Keyring: kr, CommitmentPolicy: phicrypt.RequireEncryptAllowDecrypt})
	for i, s := range suites {
		t.Run(s.String(), func(t *testing.T) {
			if !res[i].OK || res[i].Header.Version != 1 {
				t.Fatalf("JS did not make a version 1 message: %s", res[i].Error)
			}
			msg := res[i].output(t)
			if _, _, err := strict.Decrypt(context.Background(), msg, nil); !errors.Is(err, phicrypt.ErrCommitmentPolicy) {
				t.Fatalf("the default policy must refuse a legacy message, got %v", err)
			}
			got, _, err := lenient.Decrypt(context.Background(), msg, ec)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("require-encrypt-allow-decrypt must read it: %v", err)
			}
		})
	}
}

var _ = base64.StdEncoding
