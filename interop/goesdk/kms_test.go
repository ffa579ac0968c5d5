package goesdk

import (
	"context"
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

const kmsRegion = "us-east-1"

// kmsTarget is a KMS endpoint both SDKs call through one aws-sdk-go-v2
// client, with one symmetric key on it.
type kmsTarget struct {
	name    string
	client  *kms.Client
	keyARN  string
	account string
}

// kmsTargets starts kmsmock over HTTP and, when PHICRYPT_MOTO_URL is set,
// adds moto_server, an independent KMS emulator. The full suite
// (PHICRYPT_FULL_SUITE=1) must run against both.
func kmsTargets(t *testing.T) []kmsTarget {
	t.Helper()
	l := kmsmock.StartTest(t, kmsmock.Config{Region: kmsRegion})
	targets := []kmsTarget{newKMSTarget(t, "kmsmock", l.Client("goesdk-interop"))}
	if url := os.Getenv("PHICRYPT_MOTO_URL"); url != "" {
		targets = append(targets, newKMSTarget(t, "moto", kmsmock.NewClient(url, kmsRegion, "goesdk-interop", "x")))
	} else if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
		t.Fatal("the full suite must set PHICRYPT_MOTO_URL: KMS interop with the Go ESDK runs against moto_server too")
	} else {
		t.Log("PHICRYPT_MOTO_URL is not set: KMS interop against moto_server not run")
	}
	return targets
}

func newKMSTarget(t *testing.T, name string, c *kms.Client) kmsTarget {
	t.Helper()
	out, err := c.CreateKey(context.Background(), &kms.CreateKeyInput{Description: aws.String("phicrypt Go ESDK interop")})
	if err != nil {
		t.Fatalf("%s: CreateKey: %v", name, err)
	}
	arn := aws.ToString(out.KeyMetadata.Arn)
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "kms" {
		t.Fatalf("%s: CreateKey returned %q, not a key ARN", name, arn)
	}
	return kmsTarget{name: name, client: c, keyARN: arn, account: parts[4]}
}

// kmsMatrix is smaller than the raw AES one (every message costs KMS
// calls): both suites at frame 4096, sizes 0, 1, frame+1 and a few frames,
// each with every context.
func kmsMatrix() []vector {
	var vs []vector
	for _, suite := range suites {
		for _, size := range []int{0, 1, 4097, 3*4096 + 5} {
			for ci, ec := range contexts {
				vs = append(vs, vector{
					name:  fmt.Sprintf("%v/size%d/ctx%d", suite, size, ci),
					suite: suite, frame: 4096, pt: randomBytes(size), ec: ec,
				})
			}
		}
	}
	return vs
}

// phicryptKMSDecryptors are phicrypt's keyrings that must read a message
// made for tg.keyARN: strict on the key, and discovery filtered to the
// key's account.
func phicryptKMSDecryptors(t *testing.T, tg kmsTarget) map[string]*phicrypt.Encryptor {
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
	return map[string]*phicrypt.Encryptor{
		"strict":    newEncryptor(t, phicrypt.Config{Keyring: strict}),
		"discovery": newEncryptor(t, phicrypt.Config{Keyring: discovery}),
	}
}

func TestKMSGoESDKEncryptsPhicryptDecrypts(t *testing.T) {
	p := newGoESDK(t)
	for _, tg := range kmsTargets(t) {
		m := withKeyring(p.kmsStrict(t, tg.client, tg.keyARN))
		decs := phicryptKMSDecryptors(t, tg)
		for _, v := range kmsMatrix() {
			t.Run(tg.name+"/"+v.name, func(t *testing.T) {
				msg, err := p.encrypt(m, v.suite, v.frame, v.pt, v.ec)
				if err != nil {
					t.Fatalf("ESDK encrypt with KMS: %v", err)
				}
				l := checkHeader(t, msg, v)
				if len(l.edkCipher) != 1 {
					t.Fatalf("the ESDK wrote %d encrypted data keys, want 1", len(l.edkCipher))
				}
				for name, enc := range decs {
					t.Run(name, func(t *testing.T) { phicryptReads(t, enc, msg, v) })
				}
			})
		}
	}
}

func TestKMSPhicryptEncryptsGoESDKDecrypts(t *testing.T) {
	p := newGoESDK(t)
	for _, tg := range kmsTargets(t) {
		kr, err := keyring.NewKMS(keyring.KMSConfig{Client: tg.client, Generator: tg.keyARN})
		if err != nil {
			t.Fatal(err)
		}
		readers := map[string]materials{
			"strict":    withKeyring(p.kmsStrict(t, tg.client, tg.keyARN)),
			"discovery": withKeyring(p.kmsDiscovery(t, tg.client, tg.account)),
		}
		for _, v := range kmsMatrix() {
			t.Run(tg.name+"/"+v.name, func(t *testing.T) {
				enc := newEncryptor(t, phicrypt.Config{Keyring: kr, Suite: v.suite, FrameLength: v.frame})
				msg, err := enc.Encrypt(t.Context(), v.pt, v.ec)
				if err != nil {
					t.Fatalf("phicrypt encrypt with KMS: %v", err)
				}
				for name, m := range readers {
					t.Run(name, func(t *testing.T) { esdkReads(t, p, m, msg, v) })
				}
			})
		}
	}
}

// A message made for one KMS key is refused, on both sides, by a strict
// keyring on another key and by a discovery keyring for another account.
func TestKMSOtherKeysRefuse(t *testing.T) {
	p := newGoESDK(t)
	ec := contexts[1]
	for _, tg := range kmsTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			other := newKMSTarget(t, tg.name, tg.client)
			fromESDK, err := p.encrypt(withKeyring(p.kmsStrict(t, tg.client, tg.keyARN)), phicrypt.SuiteCommitted, 4096, []byte("phi"), ec)
			if err != nil {
				t.Fatalf("ESDK encrypt with KMS: %v", err)
			}
			kr, _ := keyring.NewKMS(keyring.KMSConfig{Client: tg.client, Generator: tg.keyARN})
			fromPhicrypt, err := newEncryptor(t, phicrypt.Config{Keyring: kr}).Encrypt(t.Context(), []byte("phi"), ec)
			if err != nil {
				t.Fatalf("phicrypt encrypt with KMS: %v", err)
			}

			strict, _ := keyring.NewKMS(keyring.KMSConfig{Client: tg.client, Generator: other.keyARN})
			filtered, _ := keyring.NewKMSDiscovery(keyring.KMSDiscoveryConfig{Client: tg.client,
				Filter: &keyring.DiscoveryFilter{Partition: "aws", AccountIDs: []string{"000000000000"}}})
			for name, kr := range map[string]keyring.Keyring{"strict on another key": strict, "discovery for another account": filtered} {
				_, _, err := newEncryptor(t, phicrypt.Config{Keyring: kr}).Decrypt(t.Context(), fromESDK, ec)
				if !errors.Is(err, phicrypt.ErrNoKey) || !errors.Is(err, keyring.ErrNoMatchingKey) {
					t.Fatalf("phicrypt %s read the ESDK's message: got %v, want ErrNoKey wrapping ErrNoMatchingKey", name, err)
				}
				crossChecked()
			}
			for name, m := range map[string]materials{
				"strict on another key":         withKeyring(p.kmsStrict(t, tg.client, other.keyARN)),
				"discovery for another account": withKeyring(p.kmsDiscovery(t, tg.client, "000000000000")),
			} {
				if _, err := p.decrypt(m, fromPhicrypt, ec); err == nil {
					t.Fatalf("the ESDK's %s keyring read phicrypt's message", name)
				}
				crossChecked()
			}
		})
	}
}
