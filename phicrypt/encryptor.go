package phicrypt

import (
	"context"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"
	"github.com/phicrypt/phicrypt/internal/alias"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/phicrypt/phicrypt/internal/wire"
	"github.com/phicrypt/phicrypt/keyring"
)

// Defaults and limits.
const (
	DefaultFrameLength          = 64 << 10
	DefaultMaxEncryptedDataKeys = 5
	DefaultMaxHeaderBytes       = 256 << 10
	DefaultMaxFrameLength       = 4 << 20
	DefaultMaxNonFramedBytes    = 16 << 20
)

// Config configures an Encryptor. Only Keyring is required.
type Config struct {
	Keyring keyring.Keyring
	// Suite to write: SuiteCommitted (default) or SuiteCommittedSigned.
	Suite Suite
	// FrameLength is the plaintext bytes per frame (default 64 KiB).
	FrameLength int
	// CommitmentPolicy (default RequireEncryptRequireDecrypt).
	CommitmentPolicy CommitmentPolicy
	// RequiredContextKeys must be present in the encryption context of
	// every message encrypted or decrypted. Their pairs are stored in the
	// header in the clear like every other pair (unlike the ESDK's
	// required-encryption-context CMM, which leaves them out): keep PHI out
	// of context values.
	RequiredContextKeys []string
	// MaxEncryptedDataKeys caps the wrapped keys a message may carry, on
	// both sides (default 5): an attacker-made message with many keys
	// would otherwise make a reader call KMS many times.
	MaxEncryptedDataKeys int
	// MaxHeaderBytes caps a header a reader will buffer (default 256 KiB).
	MaxHeaderBytes int
	// MaxFrameLength caps the frame length a reader accepts, and so the
	// memory a stream reader uses (default 4 MiB).
	MaxFrameLength int
	// MaxNonFramedBytes caps a legacy non-framed body, which must be held
	// whole to authenticate (default 16 MiB).
	MaxNonFramedBytes int
	// Workers seal a message's frames in parallel (default 1): a stream's
	// (NewWriter), and those of a plaintext of 1 MiB or more given whole
	// to Encrypt or EncryptAppend. The output is the same layout whatever
	// the number.
	Workers int
	// Cache, when set, reuses data keys across messages within its limits,
	// so most messages make no keyring (KMS) call. Encryption of streams
	// (whose length is unknown up front) and of signed suites bypasses it;
	// decryption uses it for every suite.
	Cache *Cache
}

// limits are the reader-side caps.
type limits struct {
	maxEDKs        int
	maxHeaderBytes int
	maxFrameLength uint32
	maxNonFramed   int
}

// Encryptor encrypts and decrypts messages. It is safe for concurrent use.
type Encryptor struct {
	keyring     keyring.Keyring
	suite       *suiteInfo
	frameLength int
	policy      CommitmentPolicy
	required    []string
	workers     int
	lim         limits
	kdf         *kdfPools
	cache       *Cache
	cacheOwner  [16]byte // keeps this Encryptor's cache entries its own
	frames      *framePool
	// encStates and decStates hold the per-message scratch of EncryptAppend
	// and DecryptAppend (*encryptState, *decryptState), so a message with
	// a cached data key allocates only its AES-GCM instance.
	encStates, decStates sync.Pool
	readerAts            readerAtPools // NewReaderAt's and ReadAt's scratch
}

// New checks cfg and returns an Encryptor.
func New(cfg Config) (*Encryptor, error) {
	e := &Encryptor{
		keyring:     cfg.Keyring,
		frameLength: orDefault(cfg.FrameLength, DefaultFrameLength),
		policy:      cfg.CommitmentPolicy,
		required:    slices.Clone(cfg.RequiredContextKeys),
		workers:     orDefault(cfg.Workers, 1),
		kdf:         newKDFPools(),
		cache:       cfg.Cache,
		lim: limits{
			maxEDKs:        orDefault(cfg.MaxEncryptedDataKeys, DefaultMaxEncryptedDataKeys),
			maxHeaderBytes: orDefault(cfg.MaxHeaderBytes, DefaultMaxHeaderBytes),
			maxFrameLength: uint32(orDefault(cfg.MaxFrameLength, DefaultMaxFrameLength)),
			maxNonFramed:   orDefault(cfg.MaxNonFramedBytes, DefaultMaxNonFramedBytes),
		},
	}
	if e.keyring == nil {
		return nil, errors.New("phicrypt: Config.Keyring is required")
	}
	rand.Read(e.cacheOwner[:])
	e.frames = &framePool{size: e.frameLength + finalFrameOverhead}
	if e.policy == 0 {
		e.policy = RequireEncryptRequireDecrypt
	}
	if e.policy < RequireEncryptRequireDecrypt || e.policy > ForbidEncryptAllowDecrypt {
		return nil, errors.New("phicrypt: unknown commitment policy")
	}
	suite := cfg.Suite
	if suite == 0 {
		suite = SuiteCommitted
	}
	si, ok := suite.info()
	if !ok || !si.committing {
		return nil, fmt.Errorf("phicrypt: %v cannot be written; choose SuiteCommitted or SuiteCommittedSigned", suite)
	}
	e.suite = si
	maxFrame := orDefault(cfg.MaxFrameLength, DefaultMaxFrameLength)
	if maxFrame < 1 || maxFrame > maxFrameLengthLimit {
		return nil, fmt.Errorf("phicrypt: MaxFrameLength must be 1 to %d", maxFrameLengthLimit)
	}
	if e.frameLength < 1 || e.frameLength > maxFrame {
		return nil, fmt.Errorf("phicrypt: FrameLength must be 1 to MaxFrameLength (%d), or readers with the same configuration refuse the messages", maxFrame)
	}
	if int64(e.lim.maxNonFramed) > maxNonFramedBody || e.lim.maxHeaderBytes > 1<<30 {
		return nil, errors.New("phicrypt: MaxNonFramedBytes is at most 2^36-32 and MaxHeaderBytes at most 1 GiB")
	}
	if e.workers < 1 || e.workers > 256 || e.lim.maxEDKs < 1 || e.lim.maxEDKs > 0xffff ||
		e.lim.maxHeaderBytes < 1 || e.lim.maxFrameLength < 1 || e.lim.maxNonFramed < 1 {
		return nil, errors.New("phicrypt: Workers, MaxEncryptedDataKeys and the Max sizes must be positive (Workers at most 256)")
	}
	for _, k := range e.required {
		if k == "" || strings.HasPrefix(k, reservedKeyPrefix) {
			return nil, errors.New("phicrypt: RequiredContextKeys holds an empty or reserved key")
		}
	}
	return e, nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// checkContext applies the caller-facing rules to an encryption context:
// required keys present, reserved keys absent. Errors name keys, never
// values.
func (e *Encryptor) checkContext(ec map[string]string) error {
	for k := range ec {
		if strings.HasPrefix(k, reservedKeyPrefix) {
			return fmt.Errorf("%w: the key prefix %q is reserved for the format", ErrContext, reservedKeyPrefix)
		}
	}
	for _, k := range e.required {
		if _, ok := ec[k]; !ok {
			return fmt.Errorf("%w: the required key %q is missing", ErrContext, k)
		}
	}
	return nil
}

// sealed is a message's header, ready for its body.
type sealed struct {
	header    []byte // body and tag
	messageID []byte
	frames    *frameCrypto
	signer    *signer // nil for unsigned suites
}

// encryptState is the scratch of one message's header. EncryptAppend takes
// it from a pool; a stream keeps its own. It holds no secret: the data key
// stays in its cache entry (or materials), the message key in the AEAD,
// which release drops.
type encryptState struct {
	s         sealed
	fc        frameCrypto
	messageID [32]byte
	commit    [sha512.Size]byte // HMAC-SHA-512 output before truncation
	key       []byte            // cache key, whose tail is the serialized context
	digest    [digestKeyLen]byte
	mat       encryptScratch // the keyring's materials when the cache is bypassed
}

func (e *Encryptor) getEncryptState() *encryptState {
	if st, ok := e.encStates.Get().(*encryptState); ok {
		return st
	}
	return new(encryptState)
}

// putEncryptState drops the message's AEAD and returns st to the pool.
func (e *Encryptor) putEncryptState(st *encryptState) {
	st.s = sealed{}
	st.fc.init(nil, nil)
	clear(st.key) // the caller's context: nothing of a message stays pooled
	if cap(st.key) > maxPooledScratch {
		st.key = nil
	}
	e.encStates.Put(st)
}

// maxPooledScratch bounds the scratch a pool keeps, so one message with a
// huge context does not pin its buffer.
const maxPooledScratch = 4 << 10

// begin does the per-message work before the body: materials from the
// keyring (or cache), key derivation, the header and its tag. size is the
// plaintext length, or -1 when unknown (streams). The returned sealed lives
// in st.
func (e *Encryptor) begin(ctx context.Context, st *encryptState, dst []byte, ec map[string]string, size int64) (*sealed, []byte, error) {
	if e.policy == ForbidEncryptAllowDecrypt {
		return nil, nil, fmt.Errorf("%w: phicrypt writes only committing suites", ErrCommitmentPolicy)
	}
	if err := e.checkContext(ec); err != nil {
		return nil, nil, err
	}
	var sg *signer
	if e.suite.signed {
		var err error
		if sg, err = newSigner(); err != nil {
			return nil, nil, err
		}
		ec = maps.Clone(ec)
		if ec == nil {
			ec = map[string]string{}
		}
		ec[publicKeyContextKey] = sg.publicKey()
	}
	// The context is serialized once, straight after the cache key's
	// prefix: the same bytes are the cache key and the header's context.
	key, err := wire.AppendContext(appendCacheKeyPrefix(st.key[:0], &e.cacheOwner, 'E', e.suite.id), ec)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrContext, err)
	}
	st.key = key
	aad := key[cacheKeyPrefixLen:]
	// Streams keep st: the keyring's materials go with the header, and on
	// failure too (they hold the caller's context).
	defer st.mat.release()
	mat, err := e.encryptionMaterials(ctx, ec, cacheKeyOf(key, &st.digest), size, &st.mat)
	if err != nil {
		return nil, nil, err
	}
	defer mat.release()
	h := header{suite: e.suite, messageID: st.messageID[:], edks: mat.edks, framed: true, frameLength: uint32(e.frameLength)}
	rand.Read(h.messageID)
	aead, commit := e.kdf.derive(e.suite, mat.dataKey, h.messageID, st.commit[:0])
	h.commitKey = commit
	start := len(dst)
	if size >= 0 {
		// Size the whole message once (header, body, footer): AES-GCM's
		// Seal grows a full slice only to what one frame needs, so
		// appending frame by frame would copy the message again for
		// every frame, and the header would regrow field by field.
		dst = slices.Grow(dst, headerBodyLen(&h, aad)+tagLength+encryptedBodySize(size, e.frameLength, sg != nil))
	}
	dst = appendHeaderBody(dst, &h, aad)
	if len(dst)-start+tagLength > e.lim.maxHeaderBytes {
		return nil, nil, fmt.Errorf("%w: the header would be %d bytes, more than MaxHeaderBytes; readers would refuse it", ErrLimit, len(dst)-start+tagLength)
	}
	st.fc.init(aead, h.messageID)
	zeroIV := st.fc.iv[:] // in st: a local array would escape through the interface call
	clear(zeroIV)
	dst = aead.Seal(dst, zeroIV, nil, dst[start:])
	st.s = sealed{header: dst[start:], messageID: h.messageID, frames: &st.fc, signer: sg}
	if sg != nil {
		sg.write(st.s.header)
	}
	return &st.s, dst, nil
}

// Encrypt returns a message holding plaintext under the encryption context
// ec. The context is authenticated, stored in the clear in the header, and
// bound to every wrapped data key: keep PHI out of its values where you can.
func (e *Encryptor) Encrypt(ctx context.Context, plaintext []byte, ec map[string]string) ([]byte, error) {
	return e.EncryptAppend(ctx, nil, plaintext, ec)
}

// EncryptAppend is Encrypt appending the message to dst. With enough room
// in dst and the data key in the Cache, it allocates only the message's
// AES-GCM instance (its key is derived per message). A dst whose spare
// capacity holds plaintext (the crypto/cipher idiom plaintext[:0]) is not
// written over, since the header comes first: the message then goes to a
// new array, after a copy of dst.
func (e *Encryptor) EncryptAppend(ctx context.Context, dst, plaintext []byte, ec map[string]string) ([]byte, error) {
	if alias.Overlap(alias.Room(dst), plaintext) {
		dst = dst[:len(dst):len(dst)] // the first append moves it
	}
	start := len(dst)
	st := e.getEncryptState()
	defer e.putEncryptState(st)
	s, dst, err := e.begin(ctx, st, dst, ec, int64(len(plaintext)))
	if err != nil {
		return nil, err
	}
	n := len(plaintext) / e.frameLength
	if n > 0 && len(plaintext)%e.frameLength == 0 {
		n-- // an exact multiple ends with a full final frame
	}
	if uint64(n) >= maxSeq {
		return nil, fmt.Errorf("%w: the plaintext needs more frames than a message holds", ErrLimit)
	}
	dst = e.sealBody(s, dst, plaintext, n)
	if s.signer != nil {
		s.signer.write(dst[start+len(s.header):])
		if dst, err = s.signer.appendFooter(dst); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// maxFooterLength bounds a footer: a 2-byte length and an ECDSA P-384
// signature in ASN.1 DER (at most 104 bytes).
const maxFooterLength = 2 + 104

// encryptedBodySize is the size of the framed body (and footer, if signed)
// of a message of plaintextLen bytes in frames of frameLength: full frames
// and a final frame, which is never empty unless the plaintext is.
func encryptedBodySize(plaintextLen int64, frameLength int, signed bool) int {
	const frame = 4 + ivLength + tagLength // sequence number, IV, tag
	n := int(plaintextLen) / frameLength
	if n > 0 && int(plaintextLen)%frameLength == 0 {
		n--
	}
	size := n*(frame+frameLength) + 4 + frame + 4 + (int(plaintextLen) - n*frameLength)
	if signed {
		size += maxFooterLength
	}
	return size
}
