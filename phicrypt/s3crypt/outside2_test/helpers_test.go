// Package outside2_test is a second outside review of phicrypt/s3crypt,
// through its public API only, aimed at attacks and misuse: a writer of the
// bucket who has no KMS access, a hostile S3 endpoint, instruction-file
// tricks on objects of the Amazon S3 Encryption Client, versioned buckets
// and what errors and logs reveal. Tests run against MinIO
// (PHICRYPT_S3_URL) where they need a real server, and the in-process S3
// of internal/s3test otherwise.
package outside2_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"io"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

const mib = 1 << 20

// rig is one bucket, one kmsmock with two keys (the second one never named
// in a LegacyConfig unless a test says so), and a Client under the first.
type rig struct {
	env     *s3test.Env
	raw     *s3.Client
	kms     *kms.Client
	keyARN  string
	key2ARN string
	enc     *phicrypt.Encryptor
	c       *s3crypt.Client
	bucket  string
}

func newRig(t testing.TB, env *s3test.Env, mod ...func(*phicrypt.Config, *s3crypt.Config)) *rig {
	t.Helper()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	kc := l.Client("svc")
	var arns []string
	for range 2 {
		key, err := kc.CreateKey(context.Background(), &kms.CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		arns = append(arns, aws.ToString(key.KeyMetadata.Arn))
	}
	kr, err := keyring.NewKMS(keyring.KMSConfig{Client: kc, Generator: arns[0]})
	if err != nil {
		t.Fatal(err)
	}
	pc := phicrypt.Config{Keyring: kr, FrameLength: 4096}
	raw := env.Client()
	cfg := s3crypt.Config{S3: raw, PartSize: 5 * mib, Concurrency: 2}
	for _, m := range mod {
		m(&pc, &cfg)
	}
	enc, err := phicrypt.New(pc)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Encryptor = enc
	c, err := s3crypt.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{env: env, raw: raw, kms: kc, keyARN: arns[0], key2ARN: arns[1], enc: enc, c: c, bucket: env.Bucket}
}

// client returns another Client over the same bucket and Encryptor.
func (r *rig) client(t testing.TB, mod func(*s3crypt.Config)) *s3crypt.Client {
	t.Helper()
	cfg := s3crypt.Config{S3: r.raw, Encryptor: r.enc, PartSize: 5 * mib, Concurrency: 2}
	if mod != nil {
		mod(&cfg)
	}
	c, err := s3crypt.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// legacyClient reads S3 Encryption Client objects under the rig's first
// KMS key (and any further ids given).
func (r *rig) legacyClient(t testing.TB, instruction bool, ids ...string) *s3crypt.Client {
	t.Helper()
	if len(ids) == 0 {
		ids = []string{r.keyARN}
	}
	return r.client(t, func(c *s3crypt.Config) {
		c.Legacy = &s3crypt.LegacyConfig{KMS: r.kms, KeyIDs: ids, AllowInstructionFile: instruction, MaxObjectBytes: 4 * mib}
	})
}

func rnd(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (r *rig) put(t testing.TB, c *s3crypt.Client, key string, pt []byte, ec map[string]string) *s3crypt.PutResult {
	t.Helper()
	res, err := c.Put(context.Background(), r.bucket, key, bytes.NewReader(pt), ec, &s3crypt.PutOptions{Size: int64(len(pt)), SizeKnown: true})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	return res
}

func (r *rig) rawGet(t testing.TB, key string) ([]byte, map[string]string) {
	t.Helper()
	out, err := r.raw.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b, out.Metadata
}

func (r *rig) rawPut(t testing.TB, key string, body []byte, meta map[string]string) string {
	t.Helper()
	out, err := r.raw.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(key), Body: bytes.NewReader(body), Metadata: meta})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.VersionId)
}

func (r *rig) getAll(c *s3crypt.Client, key string, expect map[string]string) ([]byte, error) {
	rd, err := c.Get(context.Background(), r.bucket, key, expect)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}

// versioned turns versioning on for the rig's bucket and, at cleanup,
// deletes every version first, so s3test can delete the bucket.
func (r *rig) versioned(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	_, err := r.raw.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(r.bucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}})
	if err != nil {
		t.Fatalf("PutBucketVersioning: %v", err)
	}
	t.Cleanup(func() {
		out, err := r.raw.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(r.bucket)})
		if err != nil {
			return
		}
		for _, v := range out.Versions {
			_, _ = r.raw.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(r.bucket), Key: v.Key, VersionId: v.VersionId})
		}
		for _, v := range out.DeleteMarkers {
			_, _ = r.raw.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(r.bucket), Key: v.Key, VersionId: v.VersionId})
		}
	})
}

// legacyObj is an object as the Amazon S3 Encryption Client writes it:
// its body and its envelope (metadata fields).
type legacyObj struct {
	body []byte
	env  map[string]string
}

// dataKey asks KMS for a data key under keyARN with the context kec.
func (r *rig) dataKey(t testing.TB, keyARN string, kec map[string]string) (plain, blob []byte) {
	t.Helper()
	dk, err := r.kms.GenerateDataKey(context.Background(), &kms.GenerateDataKeyInput{KeyId: aws.String(keyARN), KeySpec: kmstypes.DataKeySpecAes256, EncryptionContext: kec})
	if err != nil {
		t.Fatal(err)
	}
	return dk.Plaintext, dk.CiphertextBlob
}

func withAlg(ec map[string]string, alg string) map[string]string {
	out := map[string]string{}
	for k, v := range ec {
		out[k] = v
	}
	out["aws:x-amz-cek-alg"] = alg
	return out
}

func gcmSeal(key, nonce, pt, aad []byte) []byte {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead.Seal(nil, nonce, pt, aad)
}

// v2 builds pt as the S3 Encryption Client's V2 format (content-metadata.md,
// V2; kms+context wrapping; AES-256-GCM, random 12-byte IV, no AAD).
func (r *rig) v2(t testing.TB, keyARN string, pt []byte, ec map[string]string) legacyObj {
	t.Helper()
	kec := withAlg(ec, "AES/GCM/NoPadding")
	plain, blob := r.dataKey(t, keyARN, kec)
	iv := rnd(12)
	return legacyObj{body: gcmSeal(plain, iv, pt, nil), env: map[string]string{
		"x-amz-key-v2":                     b64(blob),
		"x-amz-iv":                         b64(iv),
		"x-amz-matdesc":                    mustJSON(t, kec),
		"x-amz-wrap-alg":                   "kms+context",
		"x-amz-cek-alg":                    "AES/GCM/NoPadding",
		"x-amz-tag-len":                    "128",
		"x-amz-unencrypted-content-length": strconv.Itoa(len(pt)),
	}}
}

// v3 builds pt as the V3 format with key commitment
// (ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY, key-derivation.md): HKDF-SHA512
// over the data key with the 28-byte message id as salt; info 0x0073 ||
// "COMMITKEY" gives the 28-byte commitment, 0x0073 || "DERIVEKEY" the
// content key; content under a nonce of twelve 0x01 bytes, AAD 0x0073.
func (r *rig) v3(t testing.TB, keyARN string, pt []byte, ec map[string]string) legacyObj {
	t.Helper()
	kec := withAlg(ec, "115")
	plain, blob := r.dataKey(t, keyARN, kec)
	mid := rnd(28)
	prk, err := hkdf.Extract(sha512.New, plain, mid)
	if err != nil {
		t.Fatal(err)
	}
	commit, _ := hkdf.Expand(sha512.New, prk, "\x00\x73COMMITKEY", 28)
	dek, _ := hkdf.Expand(sha512.New, prk, "\x00\x73DERIVEKEY", 32)
	body := gcmSeal(dek, bytes.Repeat([]byte{1}, 12), pt, []byte{0x00, 0x73})
	return legacyObj{body: body, env: map[string]string{
		"x-amz-c": "115",
		"x-amz-3": b64(blob),
		"x-amz-w": "12",
		"x-amz-t": mustJSON(t, kec),
		"x-amz-d": b64(commit),
		"x-amz-i": b64(mid),
	}}
}

// v3MetadataOnly are the V3 fields that stay in the metadata when an
// instruction file is written (metadata-strategy.md).
var v3MetadataOnly = map[string]bool{"x-amz-c": true, "x-amz-d": true, "x-amz-i": true}

// store writes o under key with its envelope in the metadata.
func (r *rig) store(t testing.TB, key string, o legacyObj) {
	t.Helper()
	r.rawPut(t, key, o.body, o.env)
}

// storeWithInstruction writes o under key with its envelope in the
// instruction file key+".instruction" (V3: all but the metadata-only
// fields).
func (r *rig) storeWithInstruction(t testing.TB, key string, o legacyObj) {
	t.Helper()
	meta, ins := map[string]string{}, map[string]string{}
	for k, v := range o.env {
		if v3MetadataOnly[k] {
			meta[k] = v
		} else {
			ins[k] = v
		}
	}
	r.rawPut(t, key, o.body, meta)
	r.rawPut(t, key+".instruction", []byte(mustJSON(t, ins)), nil)
}

func readAll(t testing.TB, rc io.ReadCloser) []byte {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// uploadsPending counts the bucket's unfinished multipart uploads.
func (r *rig) uploadsPending(t testing.TB) int {
	t.Helper()
	out, err := r.raw.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(r.bucket)})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	return len(out.Uploads)
}
