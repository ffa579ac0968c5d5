package kmsmock_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/phicrypt/phicrypt/kmsmock"
)

// The conformance table states AWS KMS's documented behaviour as SDK-level
// cases. It runs against the in-process kmsmock in every `go test`, and in the
// full suite (scripts/test.sh) also against the kmsmock binary
// (PHICRYPT_KMSMOCK_URL) and against moto_server (PHICRYPT_MOTO_URL), an
// independent implementation. Where moto is known to differ from AWS, the
// case says how, and moto's result is reported instead of failing the run;
// kmsmock's assertion is never weakened to match.

// target is one KMS implementation under test.
type target struct {
	name   string
	url    string
	region string
	moto   bool
	// advance moves the target's clock; nil when it has none.
	advance func(time.Duration) error
}

// env is what a case gets: clients per principal and the account.
type env struct {
	ctx     context.Context
	target  target
	account string
}

// client signs as principal (its access key id). It makes each request
// once, so that every documented error reaches the case as the server
// answered it, except that a connection the server closed under a request
// (moto's HTTP server drops idle keep-alive connections) is tried again: that
// is the test's network, not KMS behaviour.
func (e *env) client(principal string) *kms.Client {
	return kmsmock.NewClient(e.target.url, e.target.region, principal, "kmsmock-secret", func(o *kms.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 3
			so.Retryables = []retry.IsErrorRetryable{retry.RetryableConnectionError{}}
		})
	})
}

func (e *env) admin() *kms.Client { return e.client("admin") }

func (e *env) user(name string) string { return "arn:aws:iam::" + e.account + ":user/" + name }

type conformanceCase struct {
	name string
	ops  []string
	// moto, when set, is moto_server's known deviation from AWS.
	moto string
	// needsClock marks cases that advance time (kmsmock only).
	needsClock bool
	run        func(e *env) error
}

func TestConformanceInProcess(t *testing.T) {
	l := kmsmock.StartTest(t, kmsmock.Config{})
	runConformance(t, target{name: "kmsmock", url: l.URL, region: l.Region(), advance: func(d time.Duration) error {
		l.Advance(d)
		return nil
	}})
}

// TestConformanceExternal runs the table against the targets the full test
// suite starts: the kmsmock binary and moto_server.
func TestConformanceExternal(t *testing.T) {
	ran := false
	if url := os.Getenv("PHICRYPT_KMSMOCK_URL"); url != "" {
		ran = true
		t.Run("binary", func(t *testing.T) {
			runConformance(t, target{name: "kmsmock-binary", url: url, region: kmsmock.DefaultRegion, advance: adminAdvance(url)})
		})
	}
	if url := os.Getenv("PHICRYPT_MOTO_URL"); url != "" {
		ran = true
		t.Run("moto", func(t *testing.T) {
			runConformance(t, target{name: "moto", url: url, region: "us-east-1", moto: true})
		})
	}
	if !ran && os.Getenv("PHICRYPT_FULL_SUITE") != "" {
		t.Fatal("the full suite must set PHICRYPT_KMSMOCK_URL and PHICRYPT_MOTO_URL")
	}
}

func adminAdvance(url string) func(time.Duration) error {
	return func(d time.Duration) error {
		body := fmt.Sprintf(`{"advance": %q}`, d.String())
		resp, err := http.Post(url+"/_kmsmock/clock", "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("advancing the clock: %s", resp.Status)
		}
		return nil
	}
}

func runConformance(t *testing.T, tg target) {
	ctx := context.Background()
	e := &env{ctx: ctx, target: tg}
	probe, err := e.admin().CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("conformance probe")})
	if err != nil {
		t.Fatalf("%s: CreateKey: %v", tg.name, err)
	}
	e.account = aws.ToString(probe.KeyMetadata.AWSAccountId)
	deviations := 0
	for _, c := range conformanceCases() {
		t.Run(c.name, func(t *testing.T) {
			if c.needsClock && tg.advance == nil {
				if c.moto == "" {
					t.Fatalf("case %q needs a clock but %s has none and no deviation is recorded", c.name, tg.name)
				}
				deviations++
				t.Logf("known moto deviation, not run: %s", c.moto)
				return
			}
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			ce := *e
			ce.ctx = ctx
			err := c.run(&ce)
			if tg.moto && c.moto != "" {
				deviations++
				if err == nil {
					t.Logf("moto now behaves as AWS does here; the recorded deviation (%s) may be removed", c.moto)
				} else {
					t.Logf("known moto deviation: %s (got: %v)", c.moto, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	if tg.moto {
		t.Logf("moto: %d cases are recorded deviations from AWS", deviations)
	}
}

func TestConformanceCoversEveryOperation(t *testing.T) {
	cases := conformanceCases()
	if len(cases) < 40 {
		t.Fatalf("the conformance table has %d cases; it must have at least 40", len(cases))
	}
	covered := map[string]bool{}
	names := map[string]bool{}
	for _, c := range cases {
		if names[c.name] {
			t.Errorf("duplicate case name %q", c.name)
		}
		names[c.name] = true
		for _, op := range c.ops {
			covered[op] = true
		}
	}
	for _, op := range kmsmock.Operations() {
		if !covered[op] {
			t.Errorf("no conformance case exercises %s", op)
		}
	}
}

// --- helpers: each returns an error describing the deviation, or nil.

// expect checks that err is (or wraps) the SDK's typed error E.
func expect[E error](err error) error {
	var target E
	if errors.As(err, &target) {
		return nil
	}
	return fmt.Errorf("want %T, got %v", target, err)
}

// expectCode checks an error by its AWS error code, for exceptions the SDK
// does not model (ThrottlingException, MissingAuthenticationTokenException).
func expectCode(err error, code string) error {
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == code {
		return nil
	}
	return fmt.Errorf("want %s, got %v", code, err)
}

func check(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(format, args...)
}

func first(errs ...error) error { return errors.Join(errs...) }

func uniqueAlias() string {
	var b [6]byte
	rand.Read(b[:])
	return "alias/conformance-" + hex.EncodeToString(b[:])
}

// newKey creates a key as admin, optionally with a policy.
func (e *env) newKey(policy string) (*types.KeyMetadata, error) {
	in := &kms.CreateKeyInput{Description: aws.String("conformance")}
	if policy != "" {
		in.Policy = aws.String(policy)
	}
	out, err := e.admin().CreateKey(e.ctx, in)
	if err != nil {
		return nil, fmt.Errorf("CreateKey: %w", err)
	}
	return out.KeyMetadata, nil
}

func (e *env) newKeyWithAlias() (*types.KeyMetadata, string, error) {
	md, err := e.newKey("")
	if err != nil {
		return nil, "", err
	}
	name := uniqueAlias()
	_, err = e.admin().CreateAlias(e.ctx, &kms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: md.KeyId})
	if err != nil {
		return nil, "", fmt.Errorf("CreateAlias: %w", err)
	}
	return md, name, nil
}

func (e *env) encrypt(c *kms.Client, keyID string, pt []byte, ctx map[string]string) ([]byte, error) {
	out, err := c.Encrypt(e.ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: pt, EncryptionContext: ctx})
	if err != nil {
		return nil, err
	}
	return out.CiphertextBlob, nil
}

func (e *env) decrypt(c *kms.Client, blob []byte, ctx map[string]string) ([]byte, error) {
	out, err := c.Decrypt(e.ctx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: ctx})
	if err != nil {
		return nil, err
	}
	return out.Plaintext, nil
}

func (e *env) describe(keyID string) (*types.KeyMetadata, error) {
	out, err := e.admin().DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		return nil, err
	}
	return out.KeyMetadata, nil
}

var tenantA = map[string]string{"tenant": "a", "purpose": "phi"}

// separationPolicy is the separation-of-duty key policy the policy cases
// use: an administrator principal keeps full control (the lockout check
// requires someone to), a service may only use the key for tenant "a", and a
// custodian may only administer it.
func (e *env) separationPolicy() string {
	return `{"Version":"2012-10-17","Statement":[
 {"Sid":"Admin","Effect":"Allow","Principal":{"AWS":"` + e.user("admin") + `"},"Action":"kms:*","Resource":"*"},
 {"Sid":"ServiceUse","Effect":"Allow","Principal":{"AWS":["` + e.user("svc-tenant-a") + `"]},
  "Action":["kms:Encrypt","kms:Decrypt","kms:GenerateDataKey*"],"Resource":"*",
  "Condition":{"StringEquals":{"kms:EncryptionContext:tenant":"a"}}},
 {"Sid":"Custodian","Effect":"Allow","Principal":{"AWS":"` + e.user("custodian") + `"},
  "Action":["kms:Describe*","kms:Enable*","kms:Disable*","kms:Get*","kms:List*","kms:ScheduleKeyDeletion",
            "kms:CancelKeyDeletion","kms:RotateKeyOnDemand","kms:PutKeyPolicy"],"Resource":"*"}
]}`
}

const motoNoPolicy = "moto does not evaluate key policies"
const motoNoClock = "moto has no clock tests can advance"
