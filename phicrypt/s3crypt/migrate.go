package s3crypt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/phicrypt/phicrypt/phicrypt"
)

// readLegacy reads and authenticates a whole object of the Amazon S3
// Encryption Client, whose GetObject (out) has begun.
func (c *Client) readLegacy(ctx context.Context, bucket, key string, out *download) ([]byte, map[string]string, error) {
	if c.legacy == nil {
		return nil, nil, ErrLegacyNotAllowed
	}
	limit := c.legacy.MaxObjectBytes
	if n := out.total; n > limit {
		return nil, nil, fmt.Errorf("%w: the object is %d bytes; the maximum is %d", ErrLegacyTooLarge, n, limit)
	}
	body, err := io.ReadAll(io.LimitReader(out, limit+1))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(body)) > limit {
		return nil, nil, fmt.Errorf("%w: the object is more than %d bytes", ErrLegacyTooLarge, limit)
	}
	obj := legacyObject{Bucket: bucket, Key: key, Metadata: out.meta, Body: body}
	if c.legacy.AllowInstructionFile && needsInstruction(out.meta) {
		ins, err := c.instructionFile(ctx, bucket, key)
		if err != nil {
			return nil, nil, err
		}
		obj.Instruction = ins
	}
	return openLegacy(ctx, c.legacy, obj)
}

// checkLegacyContext requires every pair of expect in a legacy object's
// authenticated context ec, as phicrypt requires them of a message.
func checkLegacyContext(ec, expect map[string]string) error {
	for k, v := range expect {
		got, ok := ec[k]
		if !ok {
			return fmt.Errorf("%w: the object's context lacks the expected key %q", phicrypt.ErrContext, k)
		}
		if got != v {
			return fmt.Errorf("%w: the object's value for context key %q is not the expected one", phicrypt.ErrContext, k)
		}
	}
	return nil
}

// instructionFile reads the instruction file of bucket/key, capped.
func (c *Client) instructionFile(ctx context.Context, bucket, key string) ([]byte, error) {
	ins, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(instructionKey(key))})
	if err != nil {
		return nil, fmt.Errorf("the instruction file cannot be read: %w", err)
	}
	defer ins.Body.Close()
	b, err := io.ReadAll(io.LimitReader(ins.Body, legacyMaxInstructionBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > legacyMaxInstructionBytes {
		return nil, fmt.Errorf("%w: the instruction file is larger than %d bytes", ErrLegacyFormat, legacyMaxInstructionBytes)
	}
	return b, nil
}

// unmarkedLegacy reports whether an object whose metadata marks neither
// format has an instruction file (an S3 Encryption Client V1 or V2 object
// may keep its whole envelope there); only asked when the LegacyConfig
// allows instruction files.
func (c *Client) unmarkedLegacy(ctx context.Context, bucket, key string, meta map[string]string) bool {
	if c.legacy == nil || !c.legacy.AllowInstructionFile || meta[metaFormat] != "" || isLegacy(meta) {
		return false
	}
	_, err := c.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(instructionKey(key))})
	return err == nil
}

// MigrateResult describes an object rewritten by Migrate. The new object
// carries the legacy object's encryption context, without the Amazon S3
// Encryption Client's reserved entries, plus the extra pairs given.
type MigrateResult struct {
	PutResult
}

// Migrate rewrites an object of the Amazon S3 Encryption Client as a
// phicrypt object under the same key, with the same encryption context
// (plus extra, which may not override it). expect lists pairs the legacy
// object's authenticated context must carry (as Get's): without them a
// bucket writer could have put another object under this key, and extra
// would then label it as this one. The legacy object is read whole
// and authenticated first; the new object is stored only if the key still
// holds the object that was read (If-Match on its ETag), so a concurrent
// overwrite is not lost. The old object is left to the bucket's versioning.
func (c *Client) Migrate(ctx context.Context, bucket, key string, expect, extra map[string]string) (*MigrateResult, error) {
	res, err := c.migrate(ctx, bucket, key, expect, extra)
	return res, wrap("migrate", bucket, key, err)
}

func (c *Client) migrate(ctx context.Context, bucket, key string, expect, extra map[string]string) (*MigrateResult, error) {
	if c.legacy == nil {
		return nil, ErrLegacyNotAllowed
	}
	out, err := c.startDownload(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	defer out.close()
	if !isLegacy(out.meta) && !c.unmarkedLegacy(ctx, bucket, key, out.meta) {
		return nil, errors.New("the object carries no Amazon S3 Encryption Client metadata and has no instruction file")
	}
	pt, ec, err := c.readLegacy(ctx, bucket, key, out)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	if err := checkLegacyContext(ec, expect); err != nil {
		return nil, err
	}
	if ec == nil {
		ec = map[string]string{}
	}
	for k, v := range extra {
		if strings.HasPrefix(k, "aws:") || strings.HasPrefix(k, "aws-crypto-") || k == "kms_cmk_id" {
			return nil, fmt.Errorf("the extra context key %q is reserved", k)
		}
		if old, ok := ec[k]; ok && old != v {
			return nil, fmt.Errorf("the extra context key %q is already in the object's context with another value", k)
		}
		ec[k] = v
	}
	runHook(ctx, hookBeforeComplete)
	res, err := c.put(ctx, bucket, key, bytes.NewReader(pt), ec,
		&PutOptions{Size: int64(len(pt)), SizeKnown: true, IfMatch: out.etag})
	if err != nil {
		return nil, classify(err)
	}
	return &MigrateResult{PutResult: *res}, nil
}
