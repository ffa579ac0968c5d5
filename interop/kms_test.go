//go:build interop

package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// kmsTarget is a KMS endpoint both SDKs talk to, with one key on it.
type kmsTarget struct {
	name    string
	url     string
	client  *kms.Client // signs as "interop", the harness's default access key
	keyARN  string
	account string
}

const kmsRegion = "us-east-1"

// kmsTargets starts an in-process kmsmock and, when PHICRYPT_MOTO_URL is
// set, adds moto_server (an independent KMS emulator). The full suite must
// run against both.
func kmsTargets(t *testing.T) []kmsTarget {
	t.Helper()
	l := kmsmock.StartTest(t, kmsmock.Config{Region: kmsRegion})
	targets := []kmsTarget{newKMSTarget(t, "kmsmock", l.URL, l.Client("interop"))}
	if url := os.Getenv("PHICRYPT_MOTO_URL"); url != "" {
		targets = append(targets, newKMSTarget(t, "moto", url, kmsmock.NewClient(url, kmsRegion, "interop", "x")))
	} else if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
		t.Fatal("the full suite must set PHICRYPT_MOTO_URL: KMS interop runs against moto_server too")
	} else {
		t.Log("PHICRYPT_MOTO_URL is not set: KMS interop against moto_server not run")
	}
	return targets
}

func newKMSTarget(t *testing.T, name, url string, c *kms.Client) kmsTarget {
	t.Helper()
	out, err := c.CreateKey(context.Background(), &kms.CreateKeyInput{Description: aws.String("phicrypt KMS interop")})
	if err != nil {
		t.Fatalf("%s: CreateKey: %v", name, err)
	}
	arn := aws.ToString(out.KeyMetadata.Arn)
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "kms" {
		t.Fatalf("%s: CreateKey returned %q, not a key ARN", name, arn)
	}
	return kmsTarget{name: name, url: url, client: c, keyARN: arn, account: parts[4]}
}

// args are the harness flags for this target's endpoint, plus extra.
func (tg kmsTarget) args(extra map[string]any) map[string]any {
	a := map[string]any{"kms-endpoint": tg.url, "region": kmsRegion}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

// decryptors are the Go keyrings that must read a message made for
// tg.keyARN: strict on the key ARN, and discovery filtered to the key's
// account.
func (tg kmsTarget) decryptors(t *testing.T) map[string]*phicrypt.Encryptor {
	t.Helper()
	strict, err := keyring.NewKMS(keyring.KMSConfig{Client: tg.client, Generator: tg.keyARN})
	if err != nil {
		t.Fatal(err)
	}
	discovery, err := keyring.NewKMSDiscovery(keyring.KMSDiscoveryConfig{Client: tg.client,
		Filter: &keyring.DiscoveryFilter{Partition: "aws", AccountIDs: []string{tg.account}}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*phicrypt.Encryptor{}
	for name, kr := range map[string]keyring.Keyring{"strict": strict, "discovery": discovery} {
		enc, err := phicrypt.New(phicrypt.Config{Keyring: kr})
		if err != nil {
			t.Fatal(err)
		}
		out[name] = enc
	}
	return out
}

// kmsMatrix: sizes 0, 1, frame and frame*16+1 at frame length 4096, both
// committing suites, an empty and a several-pair context.
func kmsMatrix() []vector {
	const frame = 4096
	contexts := []map[string]string{
		nil,
		{"tenant": "general-hospital", "table": "patients", "column": "notes", "purpose": "kms-interop"},
	}
	var vs []vector
	for _, suite := range []phicrypt.Suite{phicrypt.SuiteCommitted, phicrypt.SuiteCommittedSigned} {
		for _, size := range []int{0, 1, 4096, 65537} {
			for i, ec := range contexts {
				pt := make([]byte, size)
				rand.Read(pt)
				vs = append(vs, vector{fmt.Sprintf("%v/size%d/ctx%d", suite, size, i), suite, frame, pt, ec})
			}
		}
	}
	return vs
}

// requireContext checks that every expected pair is in got.
func requireContext(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("context key %q: got %q, want %q", k, got[k], v)
		}
	}
}

func TestKMSJSEncryptsGoDecrypts(t *testing.T) {
	targets := kmsTargets(t)
	vs := kmsMatrix()
	var jobs []job
	for _, tg := range targets {
		for _, v := range vs {
			jobs = append(jobs, job{Op: "encrypt", InputB64: b64(v.pt), Args: tg.args(map[string]any{
				"kms-key": tg.keyARN, "suite": suiteHex(uint16(v.suite)), "frame-length": v.frame, "context": contextJSON(v.ec)})})
		}
	}
	res := runJS(t, jobs)
	ctx := context.Background()
	for ti, tg := range targets {
		decs := tg.decryptors(t)
		for vi, v := range vs {
			r := res[ti*len(vs)+vi]
			t.Run(tg.name+"/"+v.name, func(t *testing.T) {
				if !r.OK {
					t.Fatalf("JS encrypt with KMS failed: %s", r.Error)
				}
				if r.Header.SuiteID != suiteHex(uint16(v.suite)) || r.Header.FrameLength != v.frame {
					t.Fatalf("JS wrote suite %s frame %d", r.Header.SuiteID, r.Header.FrameLength)
				}
				msg := r.output(t)
				for name, enc := range decs {
					got, ec, err := enc.Decrypt(ctx, msg, v.ec)
					if err != nil {
						t.Fatalf("%s keyring cannot decrypt the JS message: %v", name, err)
					}
					if !bytes.Equal(got, v.pt) {
						t.Fatalf("%s keyring: plaintext differs", name)
					}
					requireContext(t, ec, v.ec)
				}
			})
		}
	}
}

func TestKMSGoEncryptsJSDecrypts(t *testing.T) {
	targets := kmsTargets(t)
	vs := kmsMatrix()
	ctx := context.Background()
	var jobs []job
	for _, tg := range targets {
		kr, err := keyring.NewKMS(keyring.KMSConfig{Client: tg.client, Generator: tg.keyARN})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, Suite: v.suite, FrameLength: v.frame})
			if err != nil {
				t.Fatal(err)
			}
			msg, err := enc.Encrypt(ctx, v.pt, v.ec)
			if err != nil {
				t.Fatalf("%s: phicrypt encrypt with KMS: %v", tg.name, err)
			}
			jobs = append(jobs,
				job{Op: "decrypt", InputB64: b64(msg), Args: tg.args(map[string]any{"kms-key": tg.keyARN, "context": contextJSON(v.ec)})},
				job{Op: "decrypt", InputB64: b64(msg), Args: tg.args(map[string]any{"kms-discovery": true, "context": contextJSON(v.ec)})})
		}
	}
	res := runJS(t, jobs)
	for ti, tg := range targets {
		for vi, v := range vs {
			t.Run(tg.name+"/"+v.name, func(t *testing.T) {
				base := (ti*len(vs) + vi) * 2
				for i, mode := range []string{"--kms-key", "--kms-discovery"} {
					r := res[base+i]
					if !r.OK {
						t.Fatalf("JS (%s) cannot decrypt the phicrypt message: %s", mode, r.Error)
					}
					if !bytes.Equal(r.output(t), v.pt) {
						t.Fatalf("JS (%s): plaintext differs", mode)
					}
					if r.Header.SuiteID != suiteHex(uint16(v.suite)) || r.Header.FrameLength != v.frame {
						t.Fatalf("JS (%s) read suite %s frame %d", mode, r.Header.SuiteID, r.Header.FrameLength)
					}
					requireContext(t, r.Header.EncryptionContext, v.ec)
				}
			})
		}
	}
}

// A JS message is refused by a discovery filter for another account and by
// a strict keyring for another key, at the encrypted-data-key stage.
func TestKMSJSMessageRefusedByOtherKeys(t *testing.T) {
	targets := kmsTargets(t)
	ec := map[string]string{"tenant": "general-hospital"}
	var jobs []job
	for _, tg := range targets {
		jobs = append(jobs, job{Op: "encrypt", InputB64: b64([]byte("phi")), Args: tg.args(map[string]any{"kms-key": tg.keyARN, "context": contextJSON(ec)})})
	}
	res := runJS(t, jobs)
	ctx := context.Background()
	for i, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			if !res[i].OK {
				t.Fatalf("JS encrypt with KMS failed: %s", res[i].Error)
			}
			msg := res[i].output(t)
			other := newKMSTarget(t, tg.name, tg.url, tg.client).keyARN
			strict, _ := keyring.NewKMS(keyring.KMSConfig{Client: tg.client, Generator: other})
			filtered, _ := keyring.NewKMSDiscovery(keyring.KMSDiscoveryConfig{Client: tg.client,
				Filter: &keyring.DiscoveryFilter{Partition: "aws", AccountIDs: []string{"000000000000"}}})
			for name, kr := range map[string]keyring.Keyring{"strict on another key": strict, "discovery for another account": filtered} {
				enc, err := phicrypt.New(phicrypt.Config{Keyring: kr})
				if err != nil {
					t.Fatal(err)
				}
				_, _, err = enc.Decrypt(ctx, msg, ec)
				if !errors.Is(err, phicrypt.ErrNoKey) || !errors.Is(err, keyring.ErrNoMatchingKey) {
					t.Fatalf("%s: got %v, want ErrNoKey wrapping ErrNoMatchingKey", name, err)
				}
			}
		})
	}
}
