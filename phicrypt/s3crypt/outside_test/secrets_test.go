package outside_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

const (
	ctxSecret  = "CTXVALUE-mrn-0042-77"
	ctxSecret2 = "CTXVALUE-expected-other-99"
	ptSecret   = "PHI-PLAINTEXT-diagnosis-XYZZY"
	credAccess = "AKIAREVIEWLEAKCHECK1"
	credSecret = "SECRETREVIEWLEAKCHECK-do-not-print"
	kmsAccess  = "AKIAKMSLEAKCHECK0001"
	kmsSecret  = "KMSSECRETLEAKCHECK-do-not-print"
	sessToken  = "SESSIONTOKENLEAKCHECK"
)

func leaks(s string) []string {
	var out []string
	secrets := []string{ctxSecret, ctxSecret2, ptSecret, credAccess, credSecret, kmsAccess, kmsSecret, sessToken}
	if v := os.Getenv("PHICRYPT_S3_SECRET_KEY"); v != "" {
		secrets = append(secrets, v)
	}
	for _, x := range secrets {
		if strings.Contains(s, x) {
			out = append(out, x)
		}
	}
	return out
}

// TestNoSecretsInErrorsOrOutput: errors of many failures, and fmt and slog
// output of every s3crypt type, hold no context value, plaintext or
// credential.
func TestNoSecretsInErrorsOrOutput(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env, 4096)
	ctx := context.Background()
	ec := map[string]string{"tenant": ctxSecret}
	pt := bytes.Repeat([]byte(ptSecret), 500)
	res := r.put(t, "s", pt, ec)

	var errs []error
	add := func(_ any, err error) {
		if err == nil {
			t.Errorf("expected an error (call %d)", len(errs))
		}
		errs = append(errs, err)
	}
	wrong := map[string]string{"tenant": ctxSecret2}
	add(r.c.GetRange(ctx, r.bucket, "s", 0, 10, wrong))
	add(r.c.Open(ctx, r.bucket, "s", wrong))
	add(r.getAll(ctx, r.c, "s", wrong))
	add(r.another(t).GetRange(ctx, r.bucket, "s", 0, 10, map[string]string{"tenant": ctxSecret, "x": ctxSecret2}))
	k1, _, _ := rawAES(t, "k1")
	add(r.c.Rewrap(ctx, r.bucket, "s", k1, wrong))
	// Put with a reserved context key, and with a required key missing.
	add(r.c.Put(ctx, r.bucket, "p", strings.NewReader(ptSecret), map[string]string{"aws-crypto-public-key": ctxSecret}, nil))
	encReq, err := phicrypt.New(phicrypt.Config{Keyring: r.kr, RequiredContextKeys: []string{"patient"}})
	if err != nil {
		t.Fatal(err)
	}
	creq, _ := s3crypt.New(s3crypt.Config{S3: r.raw, Encryptor: encReq})
	add(creq.Put(ctx, r.bucket, "p", strings.NewReader(ptSecret), ec, nil))
	add(creq.GetRange(ctx, r.bucket, "s", 0, 10, ec))
	add(r.c.Put(ctx, r.bucket, "p", strings.NewReader(ptSecret), ec, &s3crypt.PutOptions{Size: 3, SizeKnown: true}))
	// Tampered frame.
	body, meta, _ := r.rawGet(t, "s")
	r.rawPut(t, "t", flip(body, len(body)-40), meta)
	add(r.another(t).GetRange(ctx, r.bucket, "t", 0, 1<<20, ec))
	add(r.getAll(ctx, r.c, "t", ec))
	// Migrate with an extra pair overriding (a legacy client on a
	// phicrypt object).
	lc := r.another(t, func(c *s3crypt.Config) {
		c.Legacy = &s3crypt.LegacyConfig{KMS: r.kms, KeyIDs: []string{r.keyARN}}
	})
	add(lc.Migrate(ctx, r.bucket, "s", nil, map[string]string{"tenant": ctxSecret2}))
	// Bad S3 credentials.
	bad := env.Client(func(o *s3.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(credAccess, credSecret, sessToken)
	})
	cbad, _ := s3crypt.New(s3crypt.Config{S3: bad, Encryptor: r.enc})
	if env.Real { // the in-process S3 checks no signatures
		add(cbad.Put(ctx, r.bucket, "b", strings.NewReader(ptSecret), ec, nil))
		add(cbad.GetRange(ctx, r.bucket, "s", 0, 10, ec))
		add(cbad.Get(ctx, r.bucket, "s", ec))
	}
	for i, err := range errs {
		if err == nil {
			continue
		}
		for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if l := leaks(s); l != nil {
				t.Errorf("error %d leaks %v: %.300s", i, l, s)
			}
		}
	}

	// Values of every s3crypt type.
	o, err := r.c.Open(ctx, r.bucket, "s", ec)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := r.c.Get(ctx, r.bucket, "s", ec)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	kc := kms.New(kms.Options{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(kmsAccess, kmsSecret, sessToken)})
	lcfg := s3crypt.LegacyConfig{KMS: kc, KeyIDs: []string{"alias/x"}}
	cfg := s3crypt.Config{S3: bad, Encryptor: r.enc, Legacy: &lcfg}
	rw := &s3crypt.RewrapResult{ETag: res.ETag}
	values := []any{r.c, *r.c, cfg, &cfg, o, *o, rd, *rd, lcfg, &lcfg, res, *res, rw, &s3crypt.MigrateResult{PutResult: *res},
		&s3crypt.PutOptions{ContentType: "x"}, struct{ C s3crypt.Config }{cfg}, []any{o, rd}}
	for i, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			if l := leaks(fmt.Sprintf(verb, v)); l != nil {
				t.Errorf("value %d (%T) with %s leaks %v", i, v, verb, l)
			}
		}
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "v", v)
		slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "v", v)
		if l := leaks(buf.String()); l != nil {
			t.Errorf("value %d (%T) in slog leaks %v: %.300s", i, v, l, buf.String())
		}
	}
	// Object metadata never holds a context value, after Put and Rewrap.
	_, m1, _ := r.rawGet(t, "s")
	if l := leaks(fmt.Sprint(m1)); l != nil {
		t.Errorf("metadata after Put leaks %v", l)
	}
	r.put(t, "rw", pt, ec)
	if _, err := r.c.Rewrap(ctx, r.bucket, "rw", k1, ec); err != nil {
		t.Fatal(err)
	}
	out, err := r.raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(r.bucket), Key: aws.String("rw")})
	if err != nil {
		t.Fatal(err)
	}
	if l := leaks(fmt.Sprint(out.Metadata)); l != nil {
		t.Errorf("metadata after Rewrap leaks %v", l)
	}
}
