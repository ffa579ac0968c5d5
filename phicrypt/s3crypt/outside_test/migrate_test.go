package outside_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

// putS3ECv2 stores pt as the S3 Encryption Client's V2 format writes it
// (KMS kms+context wrapping; AES-256-GCM, random 12-byte IV, no AAD).
func putS3ECv2(t *testing.T, r *rig, key string, pt []byte, ec map[string]string) map[string]string {
	t.Helper()
	kec := copyMeta(ec)
	kec["aws:x-amz-cek-alg"] = "AES/GCM/NoPadding"
	dk, err := r.kms.GenerateDataKey(context.Background(), &kms.GenerateDataKeyInput{KeyId: aws.String(r.keyARN), KeySpec: kmstypes.DataKeySpecAes256, EncryptionContext: kec})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(dk.Plaintext)
	aead, _ := cipher.NewGCM(block)
	iv := rnd(12)
	md, _ := json.Marshal(kec)
	meta := map[string]string{
		"x-amz-key-v2":                     base64.StdEncoding.EncodeToString(dk.CiphertextBlob),
		"x-amz-iv":                         base64.StdEncoding.EncodeToString(iv),
		"x-amz-matdesc":                    string(md),
		"x-amz-wrap-alg":                   "kms+context",
		"x-amz-cek-alg":                    "AES/GCM/NoPadding",
		"x-amz-tag-len":                    "128",
		"x-amz-unencrypted-content-length": strconv.Itoa(len(pt)),
	}
	r.rawPut(t, key, aead.Seal(nil, iv, pt, nil), meta)
	return meta
}

// TestMigrateLegacy: a V2 object reads with Config.Legacy, ranged reads
// refuse it, Migrate rewrites it as a phicrypt object that a Client
// without Legacy reads (whole and ranged) under the same context; bad
// extras, tampering and size caps are refused and change nothing; no error
// holds a context value.
func TestMigrateLegacy(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env, 4096)
	lc := r.another(t, func(c *s3crypt.Config) {
		c.Legacy = &s3crypt.LegacyConfig{KMS: r.kms, KeyIDs: []string{r.keyARN}, MaxObjectBytes: 1 << 20}
	})
	ctx := context.Background()
	ec := map[string]string{"tenant": ctxSecret}
	pt := rnd(70_000)
	meta := putS3ECv2(t, r, "leg", pt, ec)
	got, err := r.getAll(ctx, lc, "leg", nil)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Get of a V2 object: %v", err)
	}
	if _, err := lc.GetRange(ctx, r.bucket, "leg", 0, 10, nil); err == nil {
		t.Error("GetRange of a V2 object: no error")
	}
	var errs []error
	// Tampered body, altered matdesc, oversized object.
	body, _, _ := r.rawGet(t, "leg")
	r.rawPut(t, "leg-t", flip(body, 100), meta)
	_, err = r.getAll(ctx, lc, "leg-t", nil)
	if !errors.Is(err, s3crypt.ErrLegacyAuthentication) {
		t.Errorf("Get of a tampered V2 object: %v", err)
	}
	errs = append(errs, err)
	_, err = lc.Migrate(ctx, r.bucket, "leg-t", nil, nil)
	if !errors.Is(err, s3crypt.ErrLegacyAuthentication) {
		t.Errorf("Migrate of a tampered V2 object: %v", err)
	}
	errs = append(errs, err)
	bad := with(meta, "x-amz-matdesc", fmt.Sprintf(`{"aws:x-amz-cek-alg":"AES/GCM/NoPadding","tenant":%q}`, ctxSecret2))
	r.rawPut(t, "leg-md", body, bad)
	_, err = r.getAll(ctx, lc, "leg-md", nil)
	if !errors.Is(err, s3crypt.ErrLegacyKey) {
		t.Errorf("Get of a V2 object with an altered matdesc: %v", err)
	}
	errs = append(errs, err)
	putS3ECv2(t, r, "leg-big", rnd(1<<20+1), ec)
	_, err = r.getAll(ctx, lc, "leg-big", nil)
	if !errors.Is(err, s3crypt.ErrLegacyTooLarge) {
		t.Errorf("Get of a V2 object over MaxObjectBytes: %v", err)
	}
	// Migrate with an extra pair overriding the context.
	_, _, etag := r.rawGet(t, "leg")
	_, err = lc.Migrate(ctx, r.bucket, "leg", nil, map[string]string{"tenant": ctxSecret2})
	if err == nil {
		t.Error("Migrate with an extra pair overriding the context: no error")
	}
	errs = append(errs, err)
	if _, _, now := r.rawGet(t, "leg"); now != etag {
		t.Error("a refused Migrate changed the object")
	}
	// An extra pair may not put back a reserved key the S3EC's context
	// held (with another value, the new object would claim a content
	// algorithm it was not written with): refused like an override.
	for _, reserved := range []string{"aws-crypto-public-key", "aws:x-amz-cek-alg"} {
		if _, err := lc.Migrate(ctx, r.bucket, "leg", nil, map[string]string{reserved: ctxSecret2}); err == nil {
			t.Errorf("Migrate with the reserved extra key %q: no error", reserved)
			putS3ECv2(t, r, "leg", pt, ec)
		} else {
			errs = append(errs, err)
		}
	}
	for i, err := range errs {
		if l := leaks(fmt.Sprintf("%v", err)); l != nil {
			t.Errorf("legacy error %d leaks %v: %v", i, l, err)
		}
	}
	// Migrate, then read without Legacy.
	res, err := lc.Migrate(ctx, r.bucket, "leg", nil, map[string]string{"source": "s3ec"})
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if res.Size != int64(len(pt)) {
		t.Errorf("MigrateResult.Size %d", res.Size)
	}
	want := map[string]string{"tenant": ctxSecret, "source": "s3ec"}
	rd, err := r.c.Get(ctx, r.bucket, "leg", want)
	if err != nil {
		t.Fatalf("Get after Migrate: %v", err)
	}
	defer rd.Close()
	if got := rd.EncryptionContext(); len(got) != 2 || got["tenant"] != ctxSecret || got["source"] != "s3ec" {
		t.Errorf("context after Migrate has keys %v, want tenant and source only", keysOf(got))
	}
	b, err := r.c.GetRange(ctx, r.bucket, "leg", 65000, 10000, want)
	if err != nil || !bytes.Equal(b, pt[65000:]) {
		t.Errorf("GetRange after Migrate: %v", err)
	}
	if _, err := lc.Migrate(ctx, r.bucket, "leg", nil, nil); err == nil {
		t.Error("Migrate of an object already migrated: no error")
	}
	_, hm, _ := r.rawGet(t, "leg")
	if l := leaks(fmt.Sprint(hm)); l != nil {
		t.Errorf("metadata after Migrate leaks %v", l)
	}
	for k := range hm {
		if len(k) > 5 && k[:5] == "x-amz" {
			t.Errorf("migrated object keeps S3EC metadata %q", k)
		}
	}
	_ = phicrypt.ErrContext
}
