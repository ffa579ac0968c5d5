package s3crypt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// readLegacy reads and authenticates a whole object of the Amazon S3
// Encryption Client, whose GetObject (out) has begun.
func (c *Client) readLegacy(ctx context.Context, bucket, key string, out *transfermanager.GetObjectOutput) ([]byte, map[string]string, error) {
	if c.legacy == nil {
		return nil, nil, ErrLegacyNotAllowed
	}
	limit := c.legacy.MaxObjectBytes
	if n := aws.ToInt64(out.ContentLength); n > limit {
		return nil, nil, fmt.Errorf("the object is %d bytes; LegacyConfig.MaxObjectBytes is %d", n, limit)
	}
	body, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(body)) > limit {
		return nil, nil, fmt.Errorf("the object is more than LegacyConfig.MaxObjectBytes (%d)", limit)
	}
	obj := legacyObject{Bucket: bucket, Key: key, Metadata: out.Metadata, Body: body}
	if c.legacy.AllowInstructionFile && needsInstruction(out.Metadata) {
		ins, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(instructionKey(key))})
		if err != nil {
			return nil, nil, fmt.Errorf("the instruction file cannot be read: %w", err)
		}
		obj.Instruction, err = io.ReadAll(io.LimitReader(ins.Body, maxInstructionBytes+1))
		ins.Body.Close()
		if err != nil {
			return nil, nil, err
		}
		if len(obj.Instruction) > maxInstructionBytes {
			return nil, nil, errors.New("the instruction file is larger than 64 KiB")
		}
	}
	return openLegacy(ctx, c.legacy, obj)
}

const maxInstructionBytes = 64 << 10

// MigrateResult describes an object rewritten by Migrate. The new object
// carries the legacy object's encryption context, without the Amazon S3
// Encryption Client's reserved entries, plus the extra pairs given.
type MigrateResult struct {
	PutResult
}

// Migrate rewrites an object of the Amazon S3 Encryption Client as a
// phicrypt object under the same key, with the same encryption context
// (plus extra, which may not override it). The legacy object is read whole
// and authenticated first; the new object is stored only if the key still
// holds the object that was read (If-Match on its ETag), so a concurrent
// overwrite is not lost. The old object is left to the bucket's versioning.
func (c *Client) Migrate(ctx context.Context, bucket, key string, extra map[string]string) (*MigrateResult, error) {
	res, err := c.migrate(ctx, bucket, key, extra)
	return res, wrap("migrate", bucket, key, err)
}

func (c *Client) migrate(ctx context.Context, bucket, key string, extra map[string]string) (*MigrateResult, error) {
	if c.legacy == nil {
		return nil, ErrLegacyNotAllowed
	}
	out, err := c.tm.GetObject(ctx, &transfermanager.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	if !isLegacy(out.Metadata) {
		return nil, errors.New("the object carries no Amazon S3 Encryption Client metadata")
	}
	pt, ec, err := c.readLegacy(ctx, bucket, key, out)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	if ec == nil {
		ec = map[string]string{}
	}
	for k, v := range extra {
		if old, ok := ec[k]; ok && old != v {
			return nil, fmt.Errorf("the extra context key %q is already in the object's context with another value", k)
		}
		ec[k] = v
	}
	res, err := c.put(ctx, bucket, key, bytes.NewReader(pt), ec,
		&PutOptions{Size: int64(len(pt)), SizeKnown: true, IfMatch: aws.ToString(out.ETag)})
	if err != nil {
		return nil, err
	}
	return &MigrateResult{PutResult: *res}, nil
}
