package s3crypt

// Temporary: replaced by legacy.go from the S3EC work.

import (
	"context"
	"errors"
)

type LegacyConfig struct {
	AllowInstructionFile bool
	MaxObjectBytes       int64
}

func (c *LegacyConfig) validate() error { return nil }

func isLegacy(meta map[string]string) bool { _, ok := meta["x-amz-key-v2"]; return ok }

type legacyObject struct {
	Bucket, Key string
	Metadata    map[string]string
	Body        []byte
	Instruction []byte
}

func needsInstruction(meta map[string]string) bool { return false }
func instructionKey(key string) string             { return key + ".instruction" }
func openLegacy(ctx context.Context, cfg *LegacyConfig, obj legacyObject) ([]byte, map[string]string, error) {
	return nil, nil, errors.New("not yet")
}
