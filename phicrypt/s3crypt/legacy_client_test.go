package s3crypt

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// legacyClient is a Client over an S3 endpoint that reads S3 Encryption
// Client objects under keyA, and writes phicrypt objects under keyB.
func legacyClient(t *testing.T, e *s3ecEnv, env *s3test.Env, allowInstruction bool) *Client {
	t.Helper()
	kr, err := keyring.NewKMS(keyring.KMSConfig{Client: e.client, Generator: e.keyB})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, FrameLength: 1024})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{S3: env.Client(), Encryptor: enc,
		Legacy: &LegacyConfig{KMS: e.client, KeyIDs: []string{e.keyA}, AllowInstructionFile: allowInstruction}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// store puts obj in the bucket as the S3 Encryption Client would have:
// body, metadata, and its instruction file if it has one.
func store(t *testing.T, env *s3test.Env, key string, obj legacyObject) {
	t.Helper()
	c := env.Client()
	meta := map[string]string{}
	for k, v := range obj.Metadata {
		if v != "" {
			meta[k] = v
		}
	}
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String(key),
		Body: bytes.NewReader(obj.Body), Metadata: meta}); err != nil {
		t.Fatal(err)
	}
	if obj.Instruction != nil {
		if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String(instructionKey(key)),
			Body: bytes.NewReader(obj.Instruction)}); err != nil {
			t.Fatal(err)
		}
	}
}

func readAll(t *testing.T, c *Client, bucket, key string) ([]byte, map[string]string, error) {
	t.Helper()
	r, err := c.Get(context.Background(), bucket, key, nil)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return b, r.EncryptionContext(), err
}

// Objects of the S3 Encryption Client, V2 and V3, written from the
// specification and stored in S3, are read by Get and rewritten by Migrate
// as phicrypt objects that ranged reads then serve.
func TestLegacyObjectsThroughTheClient(t *testing.T) {
	e := newS3ECEnv(t)
	env := s3test.New(t)
	c := legacyClient(t, e, env, true)
	ctx := context.Background()
	pt := randBytes(t, 70_000)
	objects := map[string]legacyObject{
		"v2":             e.writeV2(t, e.keyA, pt, userEC),
		"v3":             e.writeV3(t, e.keyA, pt, userEC),
		"v2-instruction": splitInstruction(t, e.writeV2(t, e.keyA, pt, userEC)),
		"v3-instruction": splitInstruction(t, e.writeV3(t, e.keyA, pt, userEC)),
	}
	for key, obj := range objects {
		store(t, env, key, obj)
		got, ec, err := readAll(t, c, env.Bucket, key)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%s: Get: %v", key, err)
		}
		if ec["tenant"] != "north" || ec["aws:x-amz-cek-alg"] != "" {
			t.Fatalf("%s: context keys %d", key, len(ec))
		}
		if _, err := c.GetRange(ctx, env.Bucket, key, 0, 10, nil); err == nil {
			t.Fatalf("%s: a ranged read of a legacy object succeeded", key)
		}
		if _, err := c.Migrate(ctx, env.Bucket, key, map[string]string{"tenant": "north"}, map[string]string{"migrated": "yes"}); err != nil {
			t.Fatalf("%s: Migrate: %v", key, err)
		}
		got, err = c.GetRange(ctx, env.Bucket, key, 1000, 5000, map[string]string{"tenant": "north", "migrated": "yes"})
		if err != nil || !bytes.Equal(got, pt[1000:6000]) {
			t.Fatalf("%s: a ranged read after Migrate: %v", key, err)
		}
		if _, err := c.Migrate(ctx, env.Bucket, key, nil, nil); err == nil {
			t.Fatalf("%s: a phicrypt object was migrated again", key)
		}
	}
}

func TestLegacyObjectsRefusedThroughTheClient(t *testing.T) {
	e := newS3ECEnv(t)
	env := s3test.New(t)
	ctx := context.Background()
	pt := randBytes(t, 1000)
	store(t, env, "v3", e.writeV3(t, e.keyA, pt, userEC))
	// Without a LegacyConfig.
	kr, _ := keyring.NewKMS(keyring.KMSConfig{Client: e.client, Generator: e.keyB})
	enc, _ := phicrypt.New(phicrypt.Config{Keyring: kr})
	plain, err := New(Config{S3: env.Client(), Encryptor: enc})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Get(ctx, env.Bucket, "v3", nil); !errors.Is(err, ErrLegacyNotAllowed) {
		t.Fatalf("Get without Legacy: %v", err)
	}
	if _, err := plain.Migrate(ctx, env.Bucket, "v3", nil, nil); !errors.Is(err, ErrLegacyNotAllowed) {
		t.Fatalf("Migrate without Legacy: %v", err)
	}
	// AES-CBC, whatever the rest says.
	cbc := e.writeV2(t, e.keyA, pt, userEC)
	cbc.Metadata["x-amz-cek-alg"] = "AES/CBC/PKCS5Padding"
	store(t, env, "cbc", cbc)
	c := legacyClient(t, e, env, false)
	if _, _, err := readAll(t, c, env.Bucket, "cbc"); !errors.Is(err, ErrLegacyCBC) {
		t.Fatalf("CBC: %v", err)
	}
	// An instruction file beside a metadata envelope swaps nothing.
	swapped := e.writeV2(t, e.keyA, pt, userEC)
	other := e.writeV2(t, e.keyA, randBytes(t, 1000), userEC)
	store(t, env, "swap", swapped)
	store(t, env, "swap", legacyObject{Body: swapped.Body, Metadata: swapped.Metadata,
		Instruction: splitInstruction(t, other).Instruction})
	withIns := legacyClient(t, e, env, true)
	if got, _, err := readAll(t, withIns, env.Bucket, "swap"); err != nil || !bytes.Equal(got, pt) {
		// The metadata envelope is used and the instruction file is not
		// read, or it is refused: never the other object's key.
		if !errors.Is(err, ErrInstructionMismatch) && !errors.Is(err, ErrInstructionFileNotAllowed) {
			t.Fatalf("an instruction file beside a metadata envelope: %v", err)
		}
	}
	// An envelope kept only in an instruction file is not read unless
	// allowed.
	store(t, env, "ins", splitInstruction(t, e.writeV3(t, e.keyA, pt, userEC)))
	if _, _, err := readAll(t, c, env.Bucket, "ins"); err == nil {
		t.Fatal("an instruction file was read without AllowInstructionFile")
	}
	if got, _, err := readAll(t, withIns, env.Bucket, "ins"); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("an instruction file allowed: %v", err)
	}
	// Over the size cap.
	small, err := New(Config{S3: env.Client(), Encryptor: enc, Legacy: &LegacyConfig{KMS: e.client, KeyIDs: []string{e.keyA}, MaxObjectBytes: 100}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := readAll(t, small, env.Bucket, "v3"); !errors.Is(err, ErrLegacyTooLarge) {
		t.Fatalf("over MaxObjectBytes: %v", err)
	}
}

// Migrate writes the new object only if the key still holds the legacy
// object it read: an overwrite in between is kept, and Migrate fails with
// ErrChanged.
func TestMigrateKeepsAConcurrentOverwrite(t *testing.T) {
	e := newS3ECEnv(t)
	env := s3test.MinIO(t) // conditional writes; the in-process server ignores some
	c := legacyClient(t, e, env, false)
	pt := randBytes(t, 10_000)
	store(t, env, "o", e.writeV3(t, e.keyA, pt, userEC))
	newer := []byte("written by another client meanwhile")
	ctx := WithRewrapHook(context.Background(), func(step string) {
		if step == RewrapStepComplete {
			if _, err := env.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String("o"),
				Body: bytes.NewReader(newer)}); err != nil {
				t.Error(err)
			}
		}
	})
	if _, err := c.Migrate(ctx, env.Bucket, "o", nil, nil); !errors.Is(err, ErrChanged) {
		t.Fatalf("Migrate over a concurrent overwrite: %v", err)
	}
	out, err := env.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String("o")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	if got, _ := io.ReadAll(out.Body); !bytes.Equal(got, newer) {
		t.Fatal("the overwrite was lost")
	}
}
