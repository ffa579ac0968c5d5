package outside2_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"

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
// (This failed before the review's fixes; it now holds.)
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
