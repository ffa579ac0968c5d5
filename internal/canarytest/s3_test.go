package canarytest

import (
	"bytes"
	"strings"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

// s3World is an S3 endpoint holding the object "canary": canaryPlain
// thrice under canaryContext, stored by an s3crypt Client over w.enc.
type s3World struct {
	env    *s3test.Env
	client *s3.Client // signs with canaryCred
	c      *s3crypt.Client
}

func (w *world) s3() *s3World {
	env := s3test.New(w.t)
	client := env.Client(func(o *s3.Options) {
		if !env.Real {
			// The in-process server takes any credentials: sign with
			// the canary secret, so a client that printed it would fail.
			o.Credentials = credentials.NewStaticCredentialsProvider("AKIDCANARY", canaryCred, "")
		}
	})
	c, err := s3crypt.New(s3crypt.Config{S3: client, Encryptor: w.enc})
	w.must(err)
	pt := strings.Repeat(canaryPlain, 3)
	_, err = c.Put(w.ctx, env.Bucket, "canary", bytes.NewReader([]byte(pt)), canaryContext(), nil)
	w.must(err)
	return &s3World{env: env, client: client, c: c}
}
