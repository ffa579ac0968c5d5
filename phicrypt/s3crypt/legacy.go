package s3crypt

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/phicrypt/phicrypt/internal/steperr"
)

// This file reads objects written by the Amazon S3 Encryption Client
// (S3EC), so that they can be migrated. It follows the S3EC specification
// (awslabs/aws-encryption-sdk-specification, folder s3-encryption/):
// data-format/content-metadata.md for the metadata of the V1, V2 and V3
// formats, data-format/metadata-strategy.md for instruction files,
// decryption.md and key-derivation.md for the content, and
// materials/s3-kms-keyring.md for the KMS calls. Only KMS-wrapped data keys
// and AES-GCM content are read; AES-CBC (unauthenticated) is refused.

// KMSDecrypter is the one KMS call migration needs; the aws-sdk-go-v2
// *kms.Client satisfies it.
type KMSDecrypter interface {
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

// LegacyConfig lets a Client read objects written by the Amazon S3
// Encryption Client: its V2 format (AES-GCM, a data key wrapped by KMS with
// an encryption context) and its V3 format (AES-GCM with key commitment,
// the default of the S3 Encryption Client for Java, Go and .NET v4). Objects
// encrypted with AES-CBC are refused (ErrLegacyCBC), as are data keys
// wrapped by anything but KMS.
type LegacyConfig struct {
	// KMS unwraps the objects' data keys. Required.
	KMS KMSDecrypter
	// KeyIDs are the KMS keys (ARNs, key ids or aliases) the objects may
	// be under; at least one. Every Decrypt call names one of them, so an
	// object under any other key is refused (ErrLegacyKey).
	KeyIDs []string
	// AllowInstructionFile reads an object's envelope from its instruction
	// file (the object's key followed by ".instruction") when the object's
	// metadata does not hold it. Off by default: whoever can write that
	// second object chooses what is read. Even when on, an instruction
	// file is refused when the metadata holds the envelope too, and a V3
	// object's key commitment, which stays in the metadata, still binds
	// the data key.
	AllowInstructionFile bool
	// AllowKMSv1 reads data keys wrapped in the S3 Encryption Client's
	// legacy "kms" mode, whose KMS encryption context does not name the
	// content algorithm. Off by default, as the specification requires of
	// legacy wrapping algorithms.
	AllowKMSv1 bool
	// MaxObjectBytes caps the size of a legacy object, which is held whole
	// in memory so it is authenticated before any plaintext is returned
	// (default 256 MiB, at most 64 GiB).
	MaxObjectBytes int64
}

const (
	defaultLegacyMaxObject = 256 << 20
	// maxLegacyObject is about AES-GCM's limit on one message (2^36-32
	// bytes of plaintext).
	maxLegacyObject = 64 << 30
)

// Format implements fmt.Formatter: the key ids and settings, whatever the
// verb, never the KMS client (whose fields hold its credentials).
func (c LegacyConfig) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.summary()) }

// LogValue implements slog.LogValuer, as Format.
func (c LegacyConfig) LogValue() slog.Value { return slog.StringValue(c.summary()) }

func (c LegacyConfig) summary() string {
	return fmt.Sprintf("s3crypt.LegacyConfig{KeyIDs: %q, AllowInstructionFile: %t, AllowKMSv1: %t, MaxObjectBytes: %d}",
		c.KeyIDs, c.AllowInstructionFile, c.AllowKMSv1, c.MaxObjectBytes)
}

// validate checks c and fills its defaults.
func (c *LegacyConfig) validate() error {
	if c.KMS == nil {
		return errors.New("s3crypt: LegacyConfig.KMS is required")
	}
	if len(c.KeyIDs) == 0 {
		return errors.New("s3crypt: LegacyConfig.KeyIDs needs at least one KMS key")
	}
	for _, id := range c.KeyIDs {
		if id == "" {
			return errors.New("s3crypt: LegacyConfig.KeyIDs holds an empty KMS key identifier")
		}
	}
	switch {
	case c.MaxObjectBytes == 0:
		c.MaxObjectBytes = defaultLegacyMaxObject
	case c.MaxObjectBytes < 0 || c.MaxObjectBytes > maxLegacyObject:
		return fmt.Errorf("s3crypt: LegacyConfig.MaxObjectBytes %d is outside [1, %d]", c.MaxObjectBytes, int64(maxLegacyObject))
	}
	return nil
}

// maxObject is MaxObjectBytes, or its default on a config not validated.
func (c *LegacyConfig) maxObject() int64 {
	if c.MaxObjectBytes <= 0 {
		return defaultLegacyMaxObject
	}
	return min(c.MaxObjectBytes, maxLegacyObject)
}

// Errors of reading objects written by the Amazon S3 Encryption Client.
// Each failure wraps exactly one of them, under a message that names the
// bucket and key.
var (
	// ErrLegacyCBC: the object's content was encrypted with AES-CBC (the
	// S3 Encryption Client's V1 format, or V2 with AES/CBC/PKCS5Padding),
	// which nothing authenticates. Decrypt it with the S3 Encryption
	// Client's legacy mode and store it again.
	ErrLegacyCBC = errors.New("s3crypt: the object was encrypted with AES-CBC, which is unauthenticated and not read")
	// ErrLegacyFormat: the object's S3 Encryption Client metadata is
	// malformed, mixes format versions, or names an algorithm this package
	// does not read (a data key wrapped by a raw AES or RSA key, AES-CTR,
	// an unknown value).
	ErrLegacyFormat = errors.New("s3crypt: the object's S3 Encryption Client metadata is malformed or unsupported")
	// ErrInstructionFileNotAllowed: the object's metadata does not hold
	// its envelope, so it would be read from the instruction file, and
	// LegacyConfig.AllowInstructionFile is off.
	ErrInstructionFileNotAllowed = errors.New("s3crypt: the object's envelope is in an instruction file, which LegacyConfig.AllowInstructionFile does not allow")
	// ErrInstructionMismatch: the instruction file and the object's
	// metadata do not fit together: both hold envelope fields, or the
	// instruction file holds fields of another format than the metadata
	// implies, or fields the specification keeps in the metadata.
	ErrInstructionMismatch = errors.New("s3crypt: the instruction file does not match the object's metadata")
	// ErrLegacyKey: no KMS key of LegacyConfig.KeyIDs unwrapped the data
	// key (the object is under another key, its encryption context was
	// altered, or KMS refused), or KMS returned a key of the wrong size.
	ErrLegacyKey = errors.New("s3crypt: the object's data key could not be unwrapped with an allowed KMS key")
	// ErrLegacyAuthentication: the object failed authentication: its
	// AES-GCM tag, or its key commitment (V3), does not match.
	ErrLegacyAuthentication = errors.New("s3crypt: the object failed authentication")
	// ErrLegacyTooLarge: the object is larger than
	// LegacyConfig.MaxObjectBytes, which it must fit in to be
	// authenticated before any plaintext is returned.
	ErrLegacyTooLarge = errors.New("s3crypt: the object is larger than LegacyConfig.MaxObjectBytes")
)

// Metadata map keys (content-metadata.md, "Content Metadata MapKeys"), as
// S3 returns user metadata: lower case, without "x-amz-meta-".
const (
	// V1 and V2.
	mkEDKV1     = "x-amz-key"
	mkEDKV2     = "x-amz-key-v2"
	mkIV        = "x-amz-iv"
	mkMatDesc   = "x-amz-matdesc"
	mkWrapAlg   = "x-amz-wrap-alg"
	mkCEKAlg    = "x-amz-cek-alg"
	mkTagLen    = "x-amz-tag-len"
	mkPlainSize = "x-amz-unencrypted-content-length"
	// V3, whose names are compressed.
	mkContentV3    = "x-amz-c"
	mkEDKV3        = "x-amz-3"
	mkMatDescV3    = "x-amz-m"
	mkContextV3    = "x-amz-t"
	mkWrapV3       = "x-amz-w"
	mkCommitmentV3 = "x-amz-d"
	mkMessageIDV3  = "x-amz-i"
)

var (
	// s3ecV1V2Keys are the envelope keys of the V1 and V2 formats.
	s3ecV1V2Keys = []string{mkEDKV1, mkEDKV2, mkIV, mkMatDesc, mkWrapAlg, mkCEKAlg, mkTagLen}
	// s3ecV3Keys are the envelope keys of the V3 format.
	s3ecV3Keys = []string{mkContentV3, mkEDKV3, mkMatDescV3, mkContextV3, mkWrapV3, mkCommitmentV3, mkMessageIDV3}
	// s3ecV3MetadataOnly are the V3 keys that live only in the object's
	// metadata (metadata-strategy.md, "V3 Instruction Files"); the others
	// move to the instruction file when one is written.
	s3ecV3MetadataOnly = []string{mkContentV3, mkCommitmentV3, mkMessageIDV3}
	// s3ecV3InstructionKeys are the V3 keys an instruction file holds.
	s3ecV3InstructionKeys = []string{mkEDKV3, mkWrapV3, mkMatDescV3, mkContextV3}
)

// Values the metadata names.
const (
	s3ecCEKGCM     = "AES/GCM/NoPadding"
	s3ecCEKCBC     = "AES/CBC/PKCS5Padding"
	s3ecCEKCTR     = "AES/CTR/NoPadding"
	s3ecCEKV3      = "115" // ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY (0x0073) in decimal
	s3ecWrapKMSCtx = "kms+context"
	s3ecWrapKMSv1  = "kms"
	s3ecWrapV3KMS  = "12" // kms+context, compressed
	s3ecTagLen128  = "128"
	// s3ecContextCEKAlg and s3ecContextKMSKeyID are the encryption-context keys the S3
	// Encryption Client reserves (s3-kms-keyring.md, "Kms+Context"): they
	// are removed from the context handed to the caller.
	s3ecContextCEKAlg   = "aws:x-amz-cek-alg"
	s3ecContextKMSKeyID = "kms_cmk_id"
	// s3ecInstructionSuffix is the default instruction file suffix
	// (metadata-strategy.md, "Instruction File").
	s3ecInstructionSuffix = ".instruction"
)

// Sizes of the algorithm suites (framework/algorithm-suites.md, S3EC rows).
const (
	legacyDataKeyLen    = 32 // every suite's data key: AES-256
	legacyIVLen         = 12 // ALG_AES_256_GCM_IV12_TAG16_NO_KDF
	legacyMessageIDLen  = 28 // ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY: 224-bit salt
	legacyCommitmentLen = 28 // and 224-bit commit key
	legacyTagLen        = 16
)

// s3ecSuiteV3 is ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY's id as bytes: the
// prefix of both HKDF infos and the content's AAD.
var s3ecSuiteV3 = [2]byte{0x00, 0x73}

// Caps on what an object's writer chooses.
const (
	legacyMaxEDK              = 6144 // the largest CiphertextBlob KMS accepts
	legacyMaxContextJSON      = 16 << 10
	legacyMaxContextEntries   = 128
	legacyMaxInstructionBytes = 64 << 10
	legacyMaxInstructionKeys  = 64
	legacyMaxMetadataValue    = 64 << 10
)

// legacyObject is an object written by the Amazon S3 Encryption Client,
// as the Client fetched it.
type legacyObject struct {
	Bucket, Key string
	// Metadata is the object's user metadata as aws-sdk-go-v2 returns it
	// (GetObjectOutput.Metadata): keys lower case, without "x-amz-meta-".
	Metadata map[string]string
	// Body is the whole object. openLegacy decrypts it in place: its bytes
	// are overwritten, whether or not decryption succeeds.
	Body []byte
	// Instruction is the instruction file's body, nil when not fetched.
	Instruction []byte
}

// s3ecHas reports whether m holds a non-empty value for key. Empty values
// count as absent: the S3 Encryption Client for Go writes some keys empty
// (x-amz-m of a KMS-wrapped V3 object, for one).
func s3ecHas(m map[string]string, key string) bool { return m[key] != "" }

// s3ecFirst returns the first of keys that m holds, or "".
func s3ecFirst(m map[string]string, keys []string) string {
	for _, k := range keys {
		if s3ecHas(m, k) {
			return k
		}
	}
	return ""
}

// isLegacy reports whether object metadata (S3 user metadata as
// aws-sdk-go-v2 returns it: keys lower case, without "x-amz-meta-") marks
// an object written by the Amazon S3 Encryption Client: it holds a key of
// the V1, V2 or V3 envelope. An object whose whole envelope is in an
// instruction file (V1 and V2 may do that) leaves no mark in its metadata.
func isLegacy(meta map[string]string) bool {
	return s3ecFirst(meta, s3ecV1V2Keys) != "" || s3ecFirst(meta, s3ecV3Keys) != ""
}

// legacyEnvelopeInMetadata reports whether meta holds a whole envelope
// (content-metadata.md, "Determining S3EC Object Status").
func legacyEnvelopeInMetadata(meta map[string]string) bool {
	v1v2 := s3ecHas(meta, mkIV) && (s3ecHas(meta, mkEDKV1) || s3ecHas(meta, mkEDKV2))
	v3 := s3ecHas(meta, mkEDKV3) && s3ecHas(meta, mkCommitmentV3) && s3ecHas(meta, mkMessageIDV3)
	return v1v2 || v3
}

// needsInstruction reports whether the object's metadata lacks its
// envelope, so that the envelope must come from the instruction file
// (fetched only when LegacyConfig.AllowInstructionFile is set): the
// specification reads the instruction file whenever the metadata matches
// none of the V1, V2 and V3 formats.
func needsInstruction(meta map[string]string) bool { return !legacyEnvelopeInMetadata(meta) }

// instructionKey returns the object key of key's instruction file, with
// the default suffix ".instruction".
func instructionKey(key string) string { return key + s3ecInstructionSuffix }

// openLegacy authenticates and decrypts an object written by the Amazon S3
// Encryption Client. It returns the plaintext (in obj.Body's memory) and
// the encryption context the object was written with, without the entries
// the S3 Encryption Client reserves (aws:x-amz-cek-alg, kms_cmk_id). Errors
// name the bucket and key and wrap one of the ErrLegacy… sentinels,
// ErrInstructionMismatch or ErrInstructionFileNotAllowed.
func openLegacy(ctx context.Context, cfg *LegacyConfig, obj legacyObject) ([]byte, map[string]string, error) {
	pt, ec, err := openLegacyObject(ctx, cfg, obj)
	if err != nil {
		return nil, nil, steperr.Wrap("s3crypt: ", err, "reading S3 Encryption Client object s3://%s/%s", obj.Bucket, obj.Key)
	}
	return pt, ec, nil
}

func openLegacyObject(ctx context.Context, cfg *LegacyConfig, obj legacyObject) ([]byte, map[string]string, error) {
	if int64(len(obj.Body)) > cfg.maxObject() {
		return nil, nil, fmt.Errorf("%w (%d bytes, the cap is %d)", ErrLegacyTooLarge, len(obj.Body), cfg.maxObject())
	}
	env, err := readLegacyEnvelope(cfg, obj.Metadata, obj.Instruction)
	if err != nil {
		return nil, nil, err
	}
	if len(obj.Body) < legacyTagLen {
		return nil, nil, fmt.Errorf("%w: the object is shorter than an AES-GCM tag", ErrLegacyAuthentication)
	}
	dataKey, err := cfg.unwrap(ctx, env)
	if err != nil {
		return nil, nil, err
	}
	defer clear(dataKey)
	pt, err := openLegacyContent(env, dataKey, obj.Body)
	if err != nil {
		return nil, nil, err
	}
	return pt, env.userContext(), nil
}

// legacyEnvelope is what an object's metadata (and instruction file) says
// about its encryption, checked.
type legacyEnvelope struct {
	v3  bool
	edk []byte
	// kmsContext is the encryption context of the KMS Decrypt call.
	kmsContext map[string]string
	// keyHint is the KMS key the "kms" (V1) mode records in its context.
	keyHint string
	// iv is the GCM nonce (V2) or the message id (V3).
	iv         []byte
	commitment []byte // V3 only
}

// userContext is the encryption context without the reserved entries.
func (e *legacyEnvelope) userContext() map[string]string {
	out := make(map[string]string, len(e.kmsContext))
	for k, v := range e.kmsContext {
		// kms_cmk_id is the client's own entry only in the "kms" (V1)
		// mode; under kms+context it is a pair the writer chose.
		if k != s3ecContextCEKAlg && (k != s3ecContextKMSKeyID || e.keyHint == "") {
			out[k] = v
		}
	}
	return out
}

// readLegacyEnvelope finds the envelope in the metadata or, where the
// specification puts it there, in the instruction file, and parses it.
func readLegacyEnvelope(cfg *LegacyConfig, meta map[string]string, instruction []byte) (*legacyEnvelope, error) {
	fields, err := locateLegacyEnvelope(cfg, meta, instruction)
	if err != nil {
		return nil, err
	}
	for _, k := range append(append([]string{}, s3ecV1V2Keys...), s3ecV3Keys...) {
		if len(fields[k]) > legacyMaxMetadataValue {
			return nil, fmt.Errorf("%w: %s is longer than %d bytes", ErrLegacyFormat, k, legacyMaxMetadataValue)
		}
	}
	switch {
	case s3ecHas(fields, mkEDKV1):
		// V1 objects are always AES-CBC: only V2 may hold AES-GCM
		// (content-metadata.md, "Algorithm Suite and Message Format
		// Version Compatibility").
		return nil, fmt.Errorf("%w (the V1 format)", ErrLegacyCBC)
	case s3ecHas(fields, mkEDKV2):
		return parseLegacyV2(cfg, fields)
	default:
		return parseLegacyV3(fields)
	}
}

// locateLegacyEnvelope returns the envelope's fields: the object's
// metadata when it holds the whole envelope, else the instruction file's
// fields (merged, for V3, with the fields the metadata keeps).
func locateLegacyEnvelope(cfg *LegacyConfig, meta map[string]string, instruction []byte) (map[string]string, error) {
	n := 0
	for _, k := range []string{mkEDKV1, mkEDKV2, mkEDKV3} {
		if s3ecHas(meta, k) {
			n++
		}
	}
	if n > 1 {
		return nil, fmt.Errorf("%w: the metadata holds the encrypted data keys of several format versions", ErrLegacyFormat)
	}
	if legacyEnvelopeInMetadata(meta) {
		if instruction != nil && cfg.AllowInstructionFile {
			return nil, fmt.Errorf("%w: the object's metadata holds its envelope, so an instruction file must not", ErrInstructionMismatch)
		}
		return meta, nil
	}
	v3 := s3ecHas(meta, mkContentV3) && s3ecHas(meta, mkCommitmentV3) && s3ecHas(meta, mkMessageIDV3)
	// What the metadata may still hold: V3's metadata-only fields, or
	// nothing of the envelope at all (V1 and V2 move it all).
	var stray string
	if v3 {
		stray = s3ecFirst(meta, append(append([]string{}, s3ecV1V2Keys...), s3ecV3InstructionKeys...))
	} else {
		stray = s3ecFirst(meta, append(append([]string{}, s3ecV1V2Keys...), s3ecV3Keys...))
	}
	if stray != "" {
		if instruction != nil && cfg.AllowInstructionFile {
			return nil, fmt.Errorf("%w: both hold envelope fields (the metadata holds %s)", ErrInstructionMismatch, stray)
		}
		return nil, fmt.Errorf("%w: the metadata holds part of an envelope (%s) but not all of it", ErrLegacyFormat, stray)
	}
	if !cfg.AllowInstructionFile {
		return nil, ErrInstructionFileNotAllowed
	}
	if instruction == nil {
		return nil, fmt.Errorf("%w: the metadata holds no envelope and no instruction file was read", ErrLegacyFormat)
	}
	fields, err := parseLegacyInstruction(instruction)
	if err != nil {
		return nil, err
	}
	if v3 {
		return mergeLegacyV3Instruction(meta, fields)
	}
	if k := s3ecFirst(fields, s3ecV3Keys); k != "" {
		return nil, fmt.Errorf("%w: the instruction file holds a V3 field (%s) but the metadata holds no V3 key commitment", ErrInstructionMismatch, k)
	}
	if !legacyEnvelopeInMetadata(fields) {
		return nil, fmt.Errorf("%w: the instruction file holds no whole V1 or V2 envelope", ErrInstructionMismatch)
	}
	return fields, legacyCheckPlainSize(meta, fields)
}

// mergeLegacyV3Instruction joins a V3 instruction file's fields with the
// fields the metadata keeps (metadata-strategy.md, "V3 Instruction Files").
func mergeLegacyV3Instruction(meta, fields map[string]string) (map[string]string, error) {
	if k := s3ecFirst(fields, s3ecV3MetadataOnly); k != "" {
		return nil, fmt.Errorf("%w: the instruction file holds %s, which only the metadata may hold", ErrInstructionMismatch, k)
	}
	if k := s3ecFirst(fields, s3ecV1V2Keys); k != "" {
		return nil, fmt.Errorf("%w: the metadata is V3 but the instruction file holds a V1 or V2 field (%s)", ErrInstructionMismatch, k)
	}
	if !s3ecHas(fields, mkEDKV3) || !s3ecHas(fields, mkWrapV3) {
		return nil, fmt.Errorf("%w: the instruction file lacks %s or %s", ErrInstructionMismatch, mkEDKV3, mkWrapV3)
	}
	if err := legacyCheckPlainSize(meta, fields); err != nil {
		return nil, err
	}
	merged := make(map[string]string, len(fields)+len(s3ecV3MetadataOnly))
	for k, v := range fields {
		merged[k] = v
	}
	for _, k := range s3ecV3MetadataOnly {
		merged[k] = meta[k]
	}
	return merged, nil
}

// legacyCheckPlainSize refuses a plaintext size that the metadata and the
// instruction file both record, differently.
func legacyCheckPlainSize(meta, fields map[string]string) error {
	if s3ecHas(meta, mkPlainSize) && s3ecHas(fields, mkPlainSize) && meta[mkPlainSize] != fields[mkPlainSize] {
		return fmt.Errorf("%w: they record different plaintext sizes", ErrInstructionMismatch)
	}
	return nil
}

// parseLegacyInstruction reads an instruction file: one JSON object whose
// values are strings (the S3 Encryption Client for Go also reads the tag
// length and plaintext size as numbers).
func parseLegacyInstruction(b []byte) (map[string]string, error) {
	if len(b) > legacyMaxInstructionBytes {
		return nil, fmt.Errorf("%w: the instruction file is longer than %d bytes", ErrLegacyFormat, legacyMaxInstructionBytes)
	}
	m, ok := parseLegacyStringMap(b, legacyMaxInstructionKeys, true)
	if !ok {
		return nil, fmt.Errorf("%w: the instruction file is not a JSON object of at most %d distinct names with string values", ErrLegacyFormat, legacyMaxInstructionKeys)
	}
	return m, nil
}

// parseLegacyV2 checks a V2 envelope: AES-GCM content under a data key that KMS
// wrapped (content-metadata.md; s3-kms-keyring.md).
func parseLegacyV2(cfg *LegacyConfig, f map[string]string) (*legacyEnvelope, error) {
	if k := s3ecFirst(f, s3ecV3Keys); k != "" {
		return nil, fmt.Errorf("%w: a V2 envelope holds the V3 field %s", ErrLegacyFormat, k)
	}
	switch f[mkCEKAlg] {
	case s3ecCEKGCM:
	case s3ecCEKCBC, "":
		// An absent content algorithm means AES-CBC, as the S3
		// Encryption Client reads it.
		return nil, ErrLegacyCBC
	case s3ecCEKCTR:
		return nil, fmt.Errorf("%w: content algorithm %s is only for ranged reads", ErrLegacyFormat, s3ecCEKCTR)
	default:
		return nil, fmt.Errorf("%w: unknown content algorithm", ErrLegacyFormat)
	}
	if f[mkTagLen] != s3ecTagLen128 {
		return nil, fmt.Errorf("%w: %s must be %s for %s", ErrLegacyFormat, mkTagLen, s3ecTagLen128, s3ecCEKGCM)
	}
	env := &legacyEnvelope{}
	var err error
	if env.edk, err = legacyDecodeEDK(f[mkEDKV2], mkEDKV2); err != nil {
		return nil, err
	}
	if env.iv, err = legacyDecodeFixed(f[mkIV], mkIV, legacyIVLen); err != nil {
		return nil, err
	}
	if env.kmsContext, err = parseLegacyContext(f[mkMatDesc], mkMatDesc); err != nil {
		return nil, err
	}
	switch wrap := f[mkWrapAlg]; wrap {
	case s3ecWrapKMSCtx:
		err = legacyCheckContextAlg(env.kmsContext, s3ecCEKGCM)
	case s3ecWrapKMSv1:
		if !cfg.AllowKMSv1 {
			return nil, fmt.Errorf("%w: the data key is wrapped in the legacy %q mode; set LegacyConfig.AllowKMSv1 to read it", ErrLegacyFormat, s3ecWrapKMSv1)
		}
		env.keyHint = env.kmsContext[s3ecContextKMSKeyID]
	default:
		err = legacyUnsupportedWrap(wrap)
	}
	if err != nil {
		return nil, err
	}
	return env, nil
}

// parseLegacyV3 checks a V3 envelope: ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY
// content under a data key that KMS wrapped with kms+context.
func parseLegacyV3(f map[string]string) (*legacyEnvelope, error) {
	if k := s3ecFirst(f, s3ecV1V2Keys); k != "" {
		return nil, fmt.Errorf("%w: a V3 envelope holds the V1/V2 field %s", ErrLegacyFormat, k)
	}
	if !s3ecHas(f, mkContentV3) {
		return nil, fmt.Errorf("%w: a V3 envelope lacks %s", ErrLegacyFormat, mkContentV3)
	}
	if f[mkContentV3] != s3ecCEKV3 {
		return nil, fmt.Errorf("%w: unknown V3 content algorithm", ErrLegacyFormat)
	}
	switch w := f[mkWrapV3]; w {
	case s3ecWrapV3KMS:
	case "02":
		return nil, legacyUnsupportedWrap("AES/GCM")
	case "22":
		return nil, legacyUnsupportedWrap("RSA-OAEP-SHA1")
	default:
		return nil, fmt.Errorf("%w: unknown V3 wrapping algorithm", ErrLegacyFormat)
	}
	env := &legacyEnvelope{v3: true}
	var err error
	if env.edk, err = legacyDecodeEDK(f[mkEDKV3], mkEDKV3); err != nil {
		return nil, err
	}
	if env.iv, err = legacyDecodeFixed(f[mkMessageIDV3], mkMessageIDV3, legacyMessageIDLen); err != nil {
		return nil, err
	}
	if env.commitment, err = legacyDecodeFixed(f[mkCommitmentV3], mkCommitmentV3, legacyCommitmentLen); err != nil {
		return nil, err
	}
	// kms+context keeps its encryption context in x-amz-t; x-amz-m is
	// the raw keyrings' material description and plays no part here.
	if env.kmsContext, err = parseLegacyContext(f[mkContextV3], mkContextV3); err != nil {
		return nil, err
	}
	if err := legacyCheckContextAlg(env.kmsContext, s3ecCEKV3); err != nil {
		return nil, err
	}
	return env, nil
}

// legacyUnsupportedWrap refuses a wrapping algorithm other than KMS, naming it
// only when it is one the specification lists.
func legacyUnsupportedWrap(wrap string) error {
	switch wrap {
	case "AES/GCM", "AESWrap", "RSA/ECB/OAEPWithSHA-256AndMGF1Padding", "RSA-OAEP-SHA1":
		return fmt.Errorf("%w: the data key is wrapped with %s; only KMS-wrapped data keys are read", ErrLegacyFormat, wrap)
	}
	return fmt.Errorf("%w: unknown wrapping algorithm", ErrLegacyFormat)
}

// legacyCheckContextAlg requires kms+context's reserved entry to name the
// content algorithm the metadata names, so that the content algorithm is
// bound to the data key by KMS.
func legacyCheckContextAlg(ec map[string]string, alg string) error {
	if ec[s3ecContextCEKAlg] != alg {
		return fmt.Errorf("%w: the encryption context's %s does not name the object's content algorithm", ErrLegacyFormat, s3ecContextCEKAlg)
	}
	return nil
}

// legacyDecodeEDK decodes an encrypted data key.
func legacyDecodeEDK(s, name string) ([]byte, error) {
	if len(s) > base64.StdEncoding.EncodedLen(legacyMaxEDK) {
		return nil, fmt.Errorf("%w: %s is longer than %d bytes", ErrLegacyFormat, name, legacyMaxEDK)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("%w: %s is not base64 of an encrypted data key", ErrLegacyFormat, name)
	}
	return b, nil
}

// legacyDecodeFixed decodes a base64 field of exactly n bytes.
func legacyDecodeFixed(s, name string, n int) ([]byte, error) {
	if len(s) != base64.StdEncoding.EncodedLen(n) {
		return nil, fmt.Errorf("%w: %s is not base64 of %d bytes", ErrLegacyFormat, name, n)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != n {
		return nil, fmt.Errorf("%w: %s is not base64 of %d bytes", ErrLegacyFormat, name, n)
	}
	return b, nil
}

// parseLegacyContext reads a material description or encryption context: a JSON
// object of strings, possibly in S3's encoding of non-ASCII metadata. An
// absent value is the empty map (content-metadata.md).
func parseLegacyContext(s, name string) (map[string]string, error) {
	if s == "" {
		return map[string]string{}, nil
	}
	if len(s) > legacyMaxContextJSON {
		return nil, fmt.Errorf("%w: %s is longer than %d bytes", ErrLegacyFormat, name, legacyMaxContextJSON)
	}
	decoded, ok := decodeS3Value(s)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not in S3's encoding of non-ASCII metadata", ErrLegacyFormat, name)
	}
	m, ok := parseLegacyStringMap([]byte(decoded), legacyMaxContextEntries, false)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not a JSON object of at most %d distinct names with string values", ErrLegacyFormat, name, legacyMaxContextEntries)
	}
	return m, nil
}

// decodeS3Value undoes what S3 does to a metadata value holding non-ASCII
// characters (metadata-strategy.md, "Object Metadata", the "double
// encoding"): S3 reads the header's UTF-8 bytes as ISO-8859-1 characters and
// returns them as RFC 2047 encoded words. Decoding the words gives those
// characters; each is one byte of the original UTF-8. A value without
// encoded words is returned as it is.
func decodeS3Value(s string) (string, bool) {
	if !strings.Contains(s, "=?") {
		return s, true
	}
	var d mime.WordDecoder
	words, err := d.DecodeHeader(s)
	if err != nil {
		return "", false
	}
	if words == s {
		return s, true
	}
	b := make([]byte, 0, len(words))
	for _, r := range words {
		if r > 0xff {
			return "", false
		}
		b = append(b, byte(r))
	}
	if !utf8.Valid(b) {
		return "", false
	}
	return string(b), true
}

// parseLegacyStringMap parses one JSON object whose values are strings
// (or, with numbers, also JSON integers, kept as written) into a map,
// refusing duplicate names, nesting, trailing data and more than
// maxEntries names.
// It reports no detail: the input may hold encryption-context values.
func parseLegacyStringMap(b []byte, maxEntries int, numbers bool) (map[string]string, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	m := make(map[string]string)
	for dec.More() {
		tok, err := dec.Token()
		name, ok := tok.(string)
		if err != nil || !ok {
			return nil, false
		}
		if _, dup := m[name]; dup || len(m) == maxEntries {
			return nil, false
		}
		tok, err = dec.Token()
		if err != nil {
			return nil, false
		}
		switch v := tok.(type) {
		case string:
			m[name] = v
		case json.Number:
			if !numbers || strings.ContainsAny(string(v), ".eE-+") {
				return nil, false
			}
			m[name] = string(v)
		default:
			return nil, false
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return m, true
}

// unwrap asks KMS to decrypt the data key with each allowed key in turn
// (the one the "kms" mode records first), the encryption context exactly
// as stored (s3-kms-keyring.md, "KmsV1" and "Kms+Context").
func (c *LegacyConfig) unwrap(ctx context.Context, env *legacyEnvelope) ([]byte, error) {
	var failures []error
	for _, id := range c.keyOrder(env.keyHint) {
		out, err := c.KMS.Decrypt(ctx, &kms.DecryptInput{
			KeyId: aws.String(id), CiphertextBlob: env.edk, EncryptionContext: env.kmsContext,
		})
		if err != nil {
			failures = append(failures, fmt.Errorf("KMS Decrypt with %s: %w", id, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if len(out.Plaintext) != legacyDataKeyLen {
			clear(out.Plaintext)
			failures = append(failures, fmt.Errorf("KMS Decrypt with %s returned a %d-byte data key, not %d", id, len(out.Plaintext), legacyDataKeyLen))
			continue
		}
		if legacyIsKeyARN(id) && aws.ToString(out.KeyId) != id {
			clear(out.Plaintext)
			failures = append(failures, fmt.Errorf("KMS Decrypt with %s answered for another key", id))
			continue
		}
		return out.Plaintext, nil
	}
	return nil, fmt.Errorf("%w: %w", ErrLegacyKey, errors.Join(failures...))
}

// keyOrder is KeyIDs with hint, when it is one of them, first.
func (c *LegacyConfig) keyOrder(hint string) []string {
	order := make([]string, 0, len(c.KeyIDs))
	for _, id := range c.KeyIDs {
		if id == hint {
			order = append(order, id)
		}
	}
	for _, id := range c.KeyIDs {
		if id != hint {
			order = append(order, id)
		}
	}
	return order
}

// legacyIsKeyARN reports whether id is a KMS key ARN (not an alias), which KMS
// echoes in Decrypt's answer.
func legacyIsKeyARN(id string) bool {
	return strings.HasPrefix(id, "arn:") && strings.Contains(id, ":key/")
}

// openLegacyContent authenticates and decrypts the body in place.
func openLegacyContent(env *legacyEnvelope, dataKey, body []byte) ([]byte, error) {
	key, nonce, aad := dataKey, env.iv, []byte(nil)
	if env.v3 {
		dek, err := deriveLegacyCommitted(dataKey, env.iv, env.commitment)
		if err != nil {
			return nil, err
		}
		defer clear(dek)
		// key-derivation.md: a nonce of twelve 0x01 bytes, the suite id
		// as AAD; the derived key is used for this one message only.
		key, nonce, aad = dek, bytes.Repeat([]byte{0x01}, legacyIVLen), s3ecSuiteV3[:]
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLegacyKey, err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	pt, err := gcm.Open(body[:0], nonce, body, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: the AES-GCM tag does not match", ErrLegacyAuthentication)
	}
	return pt, nil
}

// deriveLegacyCommitted derives the commit key and, once it matches the stored
// commitment (compared in constant time), the content key
// (key-derivation.md, "HKDF Operation"; decryption.md, "Decrypting With
// Commitment").
func deriveLegacyCommitted(dataKey, messageID, stored []byte) ([]byte, error) {
	prk, err := hkdf.Extract(sha512.New, dataKey, messageID)
	if err != nil {
		return nil, err
	}
	defer clear(prk)
	ck, err := hkdf.Expand(sha512.New, prk, string(s3ecSuiteV3[:])+"COMMITKEY", legacyCommitmentLen)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(ck, stored) != 1 {
		return nil, fmt.Errorf("%w: the key commitment does not match the data key", ErrLegacyAuthentication)
	}
	return hkdf.Expand(sha512.New, prk, string(s3ecSuiteV3[:])+"DERIVEKEY", legacyDataKeyLen)
}
