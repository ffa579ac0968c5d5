package outside_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

func s3ecV2Meta() map[string]string {
	return map[string]string{
		"x-amz-key-v2":   base64.StdEncoding.EncodeToString(rnd(184)),
		"x-amz-iv":       base64.StdEncoding.EncodeToString(rnd(12)),
		"x-amz-matdesc":  `{"aws:x-amz-cek-alg":"AES/GCM/NoPadding"}`,
		"x-amz-wrap-alg": "kms+context",
		"x-amz-cek-alg":  "AES/GCM/NoPadding",
		"x-amz-tag-len":  "128",
	}
}

// TestLegacyWithoutConfig: an object that looks like the S3 Encryption
// Client's is refused with ErrLegacyNotAllowed by Get, GetRange, Open and
// Migrate when Config.Legacy is nil.
func TestLegacyWithoutConfig(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env, 4096)
	ctx := context.Background()
	r.rawPut(t, "s3ec", rnd(1000), s3ecV2Meta())
	if _, err := r.getAll(ctx, r.c, "s3ec", nil); !errors.Is(err, s3crypt.ErrLegacyNotAllowed) {
		t.Errorf("Get: %v, want ErrLegacyNotAllowed", err)
	}
	if _, err := r.c.Migrate(ctx, r.bucket, "s3ec", nil, nil); !errors.Is(err, s3crypt.ErrLegacyNotAllowed) {
		t.Errorf("Migrate: %v, want ErrLegacyNotAllowed", err)
	}
	// Config.Legacy's doc: "Legacy, when set, lets Get, GetRange and
	// Migrate read objects written by the Amazon S3 Encryption Client.
	// Without it they are refused": ranged reads wrap ErrLegacyNotAllowed.
	if _, err := r.c.GetRange(ctx, r.bucket, "s3ec", 0, 10, nil); !errors.Is(err, s3crypt.ErrLegacyNotAllowed) {
		t.Errorf("GetRange: %v, want ErrLegacyNotAllowed", err)
	}
	if _, err := r.c.Open(ctx, r.bucket, "s3ec", nil); err == nil {
		t.Error("Open of an S3EC object: no error")
	}
	// A phicrypt object whose metadata an attacker marked as S3EC is not
	// read as plaintext either.
	pt := rnd(3000)
	r.put(t, "marked", pt, nil)
	body, meta, _ := r.rawGet(t, "marked")
	m := copyMeta(meta)
	for k, v := range s3ecV2Meta() {
		m[k] = v
	}
	r.rawPut(t, "marked", body, m)
	if _, err := r.getAll(ctx, r.c, "marked", nil); !errors.Is(err, s3crypt.ErrLegacyNotAllowed) {
		t.Errorf("Get of a phicrypt object marked as S3EC: %v, want ErrLegacyNotAllowed", err)
	}
}

// TestMigrateNonLegacy: Migrate of a phicrypt object (and of a plain
// object) fails and leaves it as it was.
func TestMigrateNonLegacy(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env, 4096)
	lc := r.another(t, func(c *s3crypt.Config) {
		c.Legacy = &s3crypt.LegacyConfig{KMS: r.kms, KeyIDs: []string{r.keyARN}}
	})
	ctx := context.Background()
	pt := rnd(3000)
	r.put(t, "phi", pt, map[string]string{"tenant": "a"})
	_, _, etag := r.rawGet(t, "phi")
	if _, err := lc.Migrate(ctx, r.bucket, "phi", nil, nil); err == nil {
		t.Error("Migrate of a phicrypt object: no error")
	}
	if _, _, now := r.rawGet(t, "phi"); now != etag {
		t.Error("Migrate of a phicrypt object changed it")
	}
	got, err := r.getAll(ctx, lc, "phi", map[string]string{"tenant": "a"})
	if err != nil || !bytes.Equal(got, pt) {
		t.Errorf("Get with Config.Legacy of a phicrypt object: %v", err)
	}
	r.rawPut(t, "plain", []byte("plain text, not encrypted"), nil)
	if _, err := lc.Migrate(ctx, r.bucket, "plain", nil, nil); err == nil {
		t.Error("Migrate of a plain object: no error")
	}
	if _, err := lc.Migrate(ctx, r.bucket, "missing", nil, nil); err == nil {
		t.Error("Migrate of a missing object: no error")
	}
	// A fake S3EC object: its data key does not unwrap.
	r.rawPut(t, "fake", rnd(1000), s3ecV2Meta())
	if _, err := lc.Migrate(ctx, r.bucket, "fake", nil, nil); !errors.Is(err, s3crypt.ErrLegacyKey) && !errors.Is(err, s3crypt.ErrLegacyFormat) {
		t.Errorf("Migrate of a fake S3EC object: %v, want ErrLegacyKey or ErrLegacyFormat", err)
	}
	if _, err := r.getAll(ctx, lc, "fake", nil); !errors.Is(err, s3crypt.ErrLegacyKey) && !errors.Is(err, s3crypt.ErrLegacyFormat) {
		t.Errorf("Get of a fake S3EC object: %v, want ErrLegacyKey or ErrLegacyFormat", err)
	}
	cbc := s3ecV2Meta()
	cbc["x-amz-cek-alg"] = "AES/CBC/PKCS5Padding"
	r.rawPut(t, "cbc", rnd(1000), cbc)
	if _, err := r.getAll(ctx, lc, "cbc", nil); !errors.Is(err, s3crypt.ErrLegacyCBC) {
		t.Errorf("Get of an AES-CBC S3EC object: %v, want ErrLegacyCBC", err)
	}
}
