package outside2_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

// TestLegacyGetHonoursExpect: Get's expect lists "context pairs the object
// must carry". A writer of the bucket copies patient A's legacy object (V2
// and V3) to patient B's key; a reader of B that expects patient=B must be
// refused, as it is for phicrypt objects (TestSwappedBodies of the first
// review).
//
// (This failed before the review's fixes; it now holds.)
func TestLegacyGetHonoursExpect(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env)
	lc := r.legacyClient(t, false)
	secret := []byte("patient A's discharge summary")
	for _, tc := range []struct {
		name string
		obj  legacyObj
	}{
		{"v2", r.v2(t, r.keyARN, secret, map[string]string{"patient": "A"})},
		{"v3", r.v3(t, r.keyARN, secret, map[string]string{"patient": "A"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.store(t, "patients/B/"+tc.name, tc.obj)
			// Sanity: the object reads with its own context.
			got, err := r.getAll(lc, "patients/B/"+tc.name, map[string]string{"patient": "A"})
			if err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("own context: %v", err)
			}
			for _, expect := range []map[string]string{{"patient": "B"}, {"ward": "7"}} {
				got, err := r.getAll(lc, "patients/B/"+tc.name, expect)
				if err == nil {
					t.Errorf("Get with expect %v of an object whose context differs returned %d bytes of plaintext (%q) and no error", expect, len(got), got)
				}
			}
		})
	}
}

// TestLegacyInstructionFileSwap: GHSA-3g75-q268-r9r6 style attacks by a
// writer of instruction files. Object B's instruction file replaced by A's
// (V2 and V3), an instruction file planted beside a complete metadata
// envelope, and a V3 instruction file naming another object's data key:
// every one is refused, never read with the swapped key.
func TestLegacyInstructionFileSwap(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env)
	lc := r.legacyClient(t, true)
	ctx := context.Background()
	for _, ver := range []string{"v2", "v3"} {
		t.Run(ver, func(t *testing.T) {
			mk := r.v2
			if ver == "v3" {
				mk = r.v3
			}
			a := mk(t, r.keyARN, []byte("object A plaintext"), map[string]string{"o": "A"})
			b := mk(t, r.keyARN, []byte("object B plaintext"), map[string]string{"o": "B"})
			r.storeWithInstruction(t, ver+"/a", a)
			r.storeWithInstruction(t, ver+"/b", b)
			if got, err := r.getAll(lc, ver+"/b", nil); err != nil || string(got) != "object B plaintext" {
				t.Fatalf("B with its own instruction file: %q %v", got, err)
			}
			// B's body, A's instruction file.
			insA, _ := r.rawGet(t, ver+"/a.instruction")
			r.rawPut(t, ver+"/b.instruction", insA, nil)
			if got, err := r.getAll(lc, ver+"/b", nil); err == nil {
				t.Errorf("B's body with A's instruction file read as %q", got)
			} else if !errors.Is(err, s3crypt.ErrLegacyAuthentication) {
				t.Errorf("B's body with A's instruction file: want ErrLegacyAuthentication, got %v", err)
			}
			if _, err := lc.Migrate(ctx, r.bucket, ver+"/b", nil, nil); err == nil {
				t.Errorf("Migrate of B with A's instruction file succeeded")
			}
			// A complete envelope in the metadata with a planted
			// instruction file beside it.
			r.store(t, ver+"/c", b)
			r.rawPut(t, ver+"/c.instruction", insA, nil)
			// The instruction file is not even fetched when the metadata
			// holds the whole envelope (readLegacy asks for it only when
			// the metadata lacks it), so C reads as itself. That is safe;
			// README's "never beside a complete metadata envelope
			// (ErrInstructionMismatch)" reads as if it were refused.
			if got, err := r.getAll(lc, ver+"/c", nil); err == nil && string(got) != "object B plaintext" {
				t.Errorf("metadata envelope plus A's instruction file read as %q", got)
			} else if err != nil && !errors.Is(err, s3crypt.ErrInstructionMismatch) {
				t.Errorf("metadata envelope plus instruction file: want B's plaintext or ErrInstructionMismatch, got %v", err)
			}
		})
	}
	// V3: an instruction file with A's data key but B's metadata (key
	// commitment and message id): the commitment binds B's data key.
	a := r.v3(t, r.keyARN, []byte("A"), map[string]string{"o": "A"})
	b := r.v3(t, r.keyARN, []byte("B"), map[string]string{"o": "B"})
	for k := range v3MetadataOnly {
		a.env[k] = b.env[k]
	}
	a.body = b.body
	r.storeWithInstruction(t, "v3/mixed", a)
	if _, err := r.getAll(lc, "v3/mixed", nil); !errors.Is(err, s3crypt.ErrLegacyAuthentication) {
		t.Errorf("V3 with another object's data key: want ErrLegacyAuthentication, got %v", err)
	}
	// Instruction files off: an object that keeps its envelope there is
	// refused, and the instruction file is not read.
	// (A V2 object whose whole envelope is in the instruction file leaves
	// no mark in its metadata, so it fails as a malformed phicrypt
	// message; a V3 one keeps x-amz-c/d/i and is named.)
	off := r.legacyClient(t, false)
	if got, err := r.getAll(off, "v2/b", nil); err == nil {
		t.Errorf("instruction files off: V2 read as %q", got)
	}
	if _, err := r.getAll(off, "v3/b", nil); !errors.Is(err, s3crypt.ErrInstructionFileNotAllowed) {
		t.Errorf("instruction files off: V3 want ErrInstructionFileNotAllowed, got %v", err)
	}
}

// TestLegacyKeyOutsideKeyIDs: an object whose data key is under a KMS key
// that LegacyConfig.KeyIDs does not name is refused (ErrLegacyKey),
// whether KeyIDs names the allowed key by ARN or by key id, and KMS is
// never asked to decrypt it with the other key.
func TestLegacyKeyOutsideKeyIDs(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env)
	keyID := r.keyARN[strings.LastIndex(r.keyARN, "/")+1:]
	r.store(t, "other/v2", r.v2(t, r.key2ARN, []byte("under key 2"), map[string]string{"x": "1"}))
	r.store(t, "other/v3", r.v3(t, r.key2ARN, []byte("under key 2"), map[string]string{"x": "1"}))
	for _, id := range []string{r.keyARN, keyID} {
		lc := r.legacyClient(t, false, id)
		for _, k := range []string{"other/v2", "other/v3"} {
			got, err := r.getAll(lc, k, nil)
			if !errors.Is(err, s3crypt.ErrLegacyKey) {
				t.Errorf("KeyIDs [%s], %s: want ErrLegacyKey, got %q %v", id, k, got, err)
			}
			if _, err := lc.Migrate(context.Background(), r.bucket, k, nil, nil); !errors.Is(err, s3crypt.ErrLegacyKey) {
				t.Errorf("Migrate, KeyIDs [%s], %s: want ErrLegacyKey, got %v", id, k, err)
			}
		}
	}
}

// TestLegacyFormatConfusion: objects that claim both formats, or that look
// like one format and hold the other, are refused with a clear error and
// never return plaintext.
func TestLegacyFormatConfusion(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env)
	lc := r.legacyClient(t, true)
	ctx := context.Background()
	ec := map[string]string{"tenant": "t1"}
	r.put(t, r.c, "pc", []byte("phicrypt plaintext"), ec)
	pcBody, pcMeta := r.rawGet(t, "pc")
	v2 := r.v2(t, r.keyARN, []byte("v2 plaintext"), ec)
	v3 := r.v3(t, r.keyARN, []byte("v3 plaintext"), ec)
	// own is the plaintext a body authentically holds: the only bytes a
	// read may return, whatever the metadata claims.
	own := func(body []byte) string {
		switch {
		case bytes.Equal(body, pcBody):
			return "phicrypt plaintext"
		case bytes.Equal(body, v2.body):
			return "v2 plaintext"
		}
		return "v3 plaintext"
	}

	merge := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	cases := []struct {
		name string
		body []byte
		meta map[string]string
		ins  map[string]string
	}{
		{"phicrypt body, phicrypt and V2 metadata", pcBody, merge(pcMeta, v2.env), nil},
		{"V2 body, phicrypt and V2 metadata", v2.body, merge(pcMeta, v2.env), nil},
		{"V2 body, phicrypt metadata only", v2.body, pcMeta, nil},
		{"phicrypt body, V2 metadata", pcBody, v2.env, nil},
		{"V2 and V3 envelopes", v3.body, merge(v2.env, v3.env), nil},
		{"V3 metadata, V2 instruction file", v3.body, map[string]string{"x-amz-c": "115", "x-amz-d": v3.env["x-amz-d"], "x-amz-i": v3.env["x-amz-i"]}, v2.env},
		{"phicrypt body without metadata, V2 instruction file", pcBody, nil, v2.env},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := "confused/" + string(rune('a'+i))
			r.rawPut(t, key, tc.body, tc.meta)
			if tc.ins != nil {
				r.rawPut(t, key+".instruction", []byte(mustJSON(t, tc.ins)), nil)
			}
			want := own(tc.body)
			if got, err := r.getAll(lc, key, ec); err == nil && string(got) != want {
				t.Errorf("Get returned %q", got)
			}
			if got, err := lc.GetRange(ctx, r.bucket, key, 0, 64, ec); err == nil && string(got) != want {
				t.Errorf("GetRange returned %q", got)
			}
			if _, err := lc.Migrate(ctx, r.bucket, key, nil, nil); err == nil {
				if got, err := r.getAll(r.c, key, ec); err != nil || string(got) != want {
					t.Errorf("Migrate stored an object that reads as %q, %v", got, err)
				}
			}
		})
	}
}

// TestMigrateContext: what context a migrated object ends up with.
//   - A legacy context holding a key phicrypt reserves (aws-crypto-public-key,
//     which marks signed messages) must not become the context of an
//     unsigned phicrypt message: Migrate refuses it or the result still reads.
//   - A user pair named kms_cmk_id in a kms+context object is part of what
//     KMS authenticated; Migrate must not drop it silently.
func TestMigrateContext(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env)
	lc := r.legacyClient(t, false)
	ctx := context.Background()

	r.store(t, "reserved", r.v2(t, r.keyARN, []byte("x"), map[string]string{"aws-crypto-public-key": "AAAA"}))
	res, err := lc.Migrate(ctx, r.bucket, "reserved", nil, nil)
	if err == nil {
		// Stored: it must read back as what was migrated.
		got, err := r.getAll(r.c, "reserved", nil)
		if err != nil || string(got) != "x" {
			t.Errorf("Migrate stored an object (%s) that does not read back: %v", res.ETag, err)
		}
	} else if strings.Contains(err.Error(), "AAAA") {
		t.Errorf("the refusal holds a context value: %v", err)
	}

	// (This failed before the review's fixes; it now holds.)
	r.store(t, "cmk", r.v2(t, r.keyARN, []byte("y"), map[string]string{"kms_cmk_id": "user-value", "tenant": "t1"}))
	rd, err := lc.Get(ctx, r.bucket, "cmk", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := rd.EncryptionContext()
	rd.Close()
	if got["kms_cmk_id"] != "user-value" {
		t.Errorf("kms+context object: the authenticated pair kms_cmk_id is dropped from the context Get reports (%d pairs left)", len(got))
	}
}

// TestLegacyKMSCalls: an object under a key outside KeyIDs costs one KMS
// call per allowed key, no more, whatever its metadata says.
func TestLegacyKMSCalls(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env)
	var calls int
	counting := &countingKMS{next: r.kms, n: &calls}
	ids := []string{r.keyARN, r.keyARN + "-not-a-key-1", r.keyARN + "-not-a-key-2"}
	lc := r.client(t, func(c *s3crypt.Config) {
		c.Legacy = &s3crypt.LegacyConfig{KMS: counting, KeyIDs: ids}
	})
	r.store(t, "k2", r.v2(t, r.key2ARN, []byte("z"), nil))
	if _, err := r.getAll(lc, "k2", nil); !errors.Is(err, s3crypt.ErrLegacyKey) {
		t.Errorf("want ErrLegacyKey, got %v", err)
	}
	if calls != len(ids) {
		t.Errorf("%d KMS calls for %d allowed keys", calls, len(ids))
	}
}

type countingKMS struct {
	next *kms.Client
	n    *int
}

func (c *countingKMS) Decrypt(ctx context.Context, in *kms.DecryptInput, opt ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	*c.n++
	return c.next.Decrypt(ctx, in, opt...)
}

// TestLegacyMaxObjectBytes: an object one byte over MaxObjectBytes is
// refused before KMS is asked; one at the cap reads.
func TestLegacyMaxObjectBytes(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env)
	var calls int
	counting := &countingKMS{next: r.kms, n: &calls}
	const limit = 64 << 10
	lc := r.client(t, func(c *s3crypt.Config) {
		c.Legacy = &s3crypt.LegacyConfig{KMS: counting, KeyIDs: []string{r.keyARN}, MaxObjectBytes: limit}
	})
	r.store(t, "at", r.v2(t, r.keyARN, make([]byte, limit-16), nil))
	r.store(t, "over", r.v2(t, r.keyARN, make([]byte, limit-15), nil))
	if got, err := r.getAll(lc, "at", nil); err != nil || len(got) != limit-16 {
		t.Errorf("at the cap: %d bytes, %v", len(got), err)
	}
	calls = 0
	if _, err := r.getAll(lc, "over", nil); !errors.Is(err, s3crypt.ErrLegacyTooLarge) {
		t.Errorf("over the cap: want ErrLegacyTooLarge, got %v", err)
	}
	if _, err := lc.Migrate(context.Background(), r.bucket, "over", nil, nil); !errors.Is(err, s3crypt.ErrLegacyTooLarge) {
		t.Errorf("Migrate over the cap: want ErrLegacyTooLarge, got %v", err)
	}
	if calls != 0 {
		t.Errorf("%d KMS calls for objects over the cap", calls)
	}
	_ = aws.String
	_ = phicrypt.ErrContext
}
