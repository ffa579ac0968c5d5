package outside2_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

// TestRewrapDamagedObject: OPERATIONS.md says of Rewrap "ErrTruncated
// means the object was damaged: it is refused, not copied forward". A
// writer cuts the object's final frame off (at a frame boundary) and
// either drops the recorded plaintext length or records the length the
// cut object's layout gives; or appends a copy of a regular frame. Rewrap
// must refuse each (small and UploadPartCopy paths) and leave the object
// as it was.
//
// FAILS: Rewrap checks only that the object's length agrees with the
// recorded plaintext length (rewrap.go, "refuse an object whose length
// shows it was cut short or extended"); with the metadata removed or made
// to agree, it rewraps the cut or extended object under the new keyring,
// so the damage is carried forward into a version that now looks freshly
// rewrapped, and the caller learns nothing. Expected: ErrTruncated, e.g.
// by authenticating the last frame (one ranged GET) before writing.
func TestRewrapDamagedObject(t *testing.T) {
	env := s3test.MinIO(t)
	r := newRig(t, env)
	ctx := context.Background()
	ec := map[string]string{"tenant": "t1"}
	to, _ := keyring.NewRawAES("review2", "dmg", rnd(32))
	for _, size := range []int{4*frameLen + 10, 11 * mib} {
		pt := rnd(size)
		key := "orig/" + strconv.Itoa(size)
		r.put(t, r.c, key, pt, ec)
		body, meta := r.rawGet(t, key)
		hl := headerLen(t, meta)
		nFrames := size / frameLen
		_, cut := frameAt(hl, nFrames-1) // every regular frame, no final one
		s, e := frameAt(hl, 0)
		noLen := func(m map[string]string) map[string]string {
			o := map[string]string{}
			for k, v := range m {
				if k != "phicrypt-plaintext-length" {
					o[k] = v
				}
			}
			return o
		}
		agreeing := noLen(meta)
		agreeing["phicrypt-plaintext-length"] = strconv.Itoa(nFrames*frameLen - 8)
		extended := append(bytes.Clone(body), body[s:e]...)
		for name, obj := range map[string]struct {
			body []byte
			meta map[string]string
		}{
			"cut, no recorded length":       {body[:cut], noLen(meta)},
			"cut, agreeing recorded length": {body[:cut], agreeing},
			"extended, no recorded length":  {extended, noLen(meta)},
		} {
			k := key + "/" + name
			r.rawPut(t, k, obj.body, obj.meta)
			res, err := r.c.Rewrap(ctx, r.bucket, k, to, ec)
			if !errors.Is(err, s3crypt.ErrTruncated) && !errors.Is(err, phicrypt.ErrAuthentication) {
				t.Errorf("%d bytes, %s: Rewrap: want ErrTruncated, got %v (result %+v)", size, name, err, res)
			}
		}
	}
}

// TestForgetWithEncryptorCache: README says a disabled key "stops ranged
// reads of objects under it within HeaderCacheTTL, and at once after
// Forget(bucket, key) or ForgetAll()". With a data-key Cache on the
// Encryptor (phicrypt.Config.Cache, which decryption uses), Forget must
// still mean the next ranged read asks the keyring.
//
// FAILS: after ForgetAll the header is opened again, but the data key
// comes from the Encryptor's Cache (MaxAge one hour here) without a KMS
// call, so reads of an object under a disabled key go on for up to MaxAge.
// Expected: README and Forget's doc say that an Encryptor Cache keeps data
// keys beyond Forget (and for how long), or Forget also drops them.
func TestForgetWithEncryptorCache(t *testing.T) {
	env := s3test.New(t)
	cache, err := phicrypt.NewCache(phicrypt.CacheConfig{MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, env, func(pc *phicrypt.Config, _ *s3crypt.Config) { pc.Cache = cache })
	ctx := context.Background()
	pt := rnd(3 * frameLen)
	r.put(t, r.c, "k", pt, nil)
	if _, err := r.c.GetRange(ctx, r.bucket, "k", 0, 10, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(r.keyARN)}); err != nil {
		t.Fatal(err)
	}
	r.c.ForgetAll()
	if got, err := r.c.GetRange(ctx, r.bucket, "k", 0, 10, nil); !errors.Is(err, phicrypt.ErrNoKey) {
		t.Errorf("ranged read after the key was disabled and ForgetAll: want ErrNoKey, got %d bytes, %v", len(got), err)
	}
	if got, err := r.getAll(r.c, "k", nil); err == nil {
		t.Logf("note: Get after the key was disabled also reads (%d bytes) from the Encryptor's Cache", len(got))
	}
}
