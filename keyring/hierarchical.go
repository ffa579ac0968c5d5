package keyring

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/phicrypt/phicrypt/internal/wire"
	"github.com/phicrypt/phicrypt/keystore"
)

// The hierarchical keyring follows the AWS Encryption SDK specification
// (awslabs/aws-encryption-sdk-specification,
// framework/aws-kms/aws-kms-hierarchical-keyring.md, "the spec" below), so
// its encrypted data keys have the layout AWS's implementations read.

// hierarchyProviderID is the EDK's key provider id (spec "OnEncrypt": MUST be
// UTF8 Encoded "aws-kms-hierarchy"); the same string is the KDF label and the
// first part of the wrapping AAD.
const hierarchyProviderID = "aws-kms-hierarchy"

// EDK ciphertext layout (spec "Structure / Ciphertext"):
// salt (16) || IV (12) || branch key version as UUID bytes (16) ||
// encrypted data key || authentication tag (16).
const (
	hierSaltLen    = 16
	hierIVLen      = 12
	hierVersionLen = 16
	hierTagLen     = 16
	hierHeaderLen  = hierSaltLen + hierIVLen + hierVersionLen
)

// DefaultHierarchicalCacheCapacity is the cache size when none is configured
// (spec "Initialization": "MUST be configured to a max cache size of 1000").
const DefaultHierarchicalCacheCapacity = 1000

// ErrVersionRetired means a message's data key was wrapped under a branch key
// version that has been retired: it is no longer used, even to decrypt. If
// the data is still needed, move the version back to decrypt_only
// (keystore.Store.SetState) and re-encrypt the data under the active version.
var ErrVersionRetired = errors.New("keyring: the branch key version that wrapped this message is retired")

// ErrVersionExhausted means the active branch key version has been used
// HierarchicalConfig.MaxUsesPerVersion times and the keyring could not
// rotate to a new one (its KMS client cannot GenerateDataKeyWithoutPlaintext,
// or KMS or the store failed): rather than exceed the cap, it refuses to
// encrypt. Give the keyring a *kms.Client allowed to generate branch keys,
// or have a custodian rotate the branch key.
var ErrVersionExhausted = errors.New("keyring: the branch key version has been used its maximum number of times and no new version could be made")

// MaxUsesPerVersionLimit is the largest HierarchicalConfig.MaxUsesPerVersion.
const MaxUsesPerVersionLimit = 1 << 32

// DefaultUsageBlock is HierarchicalConfig.UsageBlock when none is set.
const DefaultUsageBlock = 1024

// HierarchicalConfig configures a hierarchical keyring.
type HierarchicalConfig struct {
	// BranchKeys finds and unwraps branch key versions.
	BranchKeys *BranchKeys
	// BranchKeyID is the one branch key this keyring uses. Set it or
	// BranchKeyIDSupplier, not both.
	BranchKeyID string
	// BranchKeyIDSupplier chooses the branch key from a message's encryption
	// context (spec "Branch Key Supplier"), for example one per tenant or
	// patient. Its errors are passed on wrapped, so they must not contain
	// the context's values.
	BranchKeyIDSupplier func(encryptionContext map[string]string) (string, error)
	// CacheTTL is how long an unwrapped branch key, and which version is
	// active, may be used before they are read again (spec "Cache Limit
	// TTL": required, greater than zero). It bounds how long a process
	// keeps encrypting under a version after another rotated it, and keeps
	// decrypting under a version after another retired it.
	CacheTTL time.Duration
	// CacheCapacity bounds the cached entries (default 1000): each branch
	// key version in use takes one, and each branch key encrypted under one
	// more (which version is active). The least recently used is evicted,
	// and its key material wiped, first.
	CacheCapacity int
	// MaxUsesPerVersion caps how many times one branch key version is used
	// (OnEncrypt calls, and uses taken by AcquireActive), across every
	// process sharing the store: at most MaxUsesPerVersionLimit (2^32).
	// Uses are counted in the store (keystore.Store.AddUsage); when a version's count
	// reaches the cap, the keyring rotates the branch key and goes on with
	// the new version, so it needs a KMS client that can
	// GenerateDataKeyWithoutPlaintext (else ErrVersionExhausted). Zero (the
	// default) counts nothing and writes nothing to the store.
	MaxUsesPerVersion uint64
	// UsageBlock is how many uses one store write reserves (default
	// DefaultUsageBlock, or MaxUsesPerVersion if smaller; at most
	// MaxUsesPerVersion). A process hands out its block locally and
	// reserves the next when it runs out; what it reserved and did not use
	// when it stops is lost, so a larger block costs fewer writes and
	// wastes more of each version.
	UsageBlock uint64
	// PropagationWindow is how long after a rotation (from the new
	// version's CreatedAt) this keyring keeps writing under the version the
	// rotation replaced; it decrypts under the new version at once. Every
	// process reads the active version again within its CacheTTL, so once
	// the window has passed every process knows the new version before any
	// writes under it, and a search (fieldenc IndexValues, EqualValues)
	// made at any time finds every row sealed before it began. Default
	// CacheTTL; set it to at least the longest CacheTTL of any process
	// sharing the store, plus the clock skew between hosts. A version used
	// up (MaxUsesPerVersion) or retired before the window ends is replaced
	// at once: the cap wins. Hierarchical.WritesFrom tells when a new version
	// takes over.
	PropagationWindow time.Duration
	// StaleIfError, when set, lets an expired branch key (and the record
	// of which version is active) be used for up to this long after its
	// CacheTTL ended, while reading it again fails with a transient error
	// (KMS throttling or internal errors, timeouts, connection failures;
	// never a disabled key, a denied call or a retired version). After the
	// first failure, callers are served at once while one reload is tried
	// in the background every second. Each use is reported to OnStaleUse.
	StaleIfError time.Duration
	// OnStaleUse is called for every stale use (for the audit log). It
	// must not block.
	OnStaleUse func(StaleUse)
	// Audit, when set, records every stale use in an audit log
	// (audit.KindStaleServe) with the branch key's keyed digest; a record
	// that cannot be stored is dropped, since a stale serve must not block.
	// Record the keyring's KMS calls too by giving BranchKeys a client
	// wrapped with NewAuditedKMS.
	Audit *AuditConfig
	// Escrow, when set, escrows every branch key version this keyring
	// unwraps: a copy of the material sealed to the escrow public key
	// (NewHPKEEscrow) is stored in the version's escrow record
	// (BranchKeyEscrowRecordKind) unless one of this material for that
	// key is there (a copy whose key check does not match, planted by a
	// writer of the store or damaged, is replaced), so custodians can
	// recover the version with the escrow private key when the KMS key
	// that wraps it is lost (custody.RecoverBranchKeys). It costs one
	// store read per version unwrapped (one per CacheTTL) and one write
	// per version the first time. Nothing is written under a version
	// (OnEncrypt, AcquireActive) before its copy is stored: if it cannot
	// be, writing fails (and tries again at the next write), while what
	// was written under the version is still read. The store must keep
	// records (keystore.Records, as every store of this module does) and
	// the service needs write access to its per-version records
	// (postgres.RoleService has it). A service that only decrypts need not
	// set it, as long as the services that write do; BranchKeys.Escrow
	// backfills versions made before.
	Escrow *HPKEEscrow
	// LoadTimeout bounds one shared store read and KMS call on a cache
	// miss, which runs detached from the callers waiting for it (default
	// 30 s); each caller waits only as long as its own context allows.
	LoadTimeout time.Duration
	// Now is the clock for cache expiry (default time.Now).
	Now func() time.Time
}

// Hierarchical is a keyring whose data keys are wrapped under keys derived
// from branch keys: one KMS call unwraps a branch key version, which is then
// cached and wraps data keys locally until its TTL ends. Each message's data
// key is wrapped under a key derived from the branch key and a random salt.
// It is safe for concurrent use.
type Hierarchical struct {
	bk       *BranchKeys
	id       string
	supplier func(map[string]string) (string, error)
	cache    *branchKeyCache
	maxUses  uint64 // 0: uses are not counted
	block    uint64
	window   time.Duration

	hooks *closeHooks // AfterClose
}

// closeHooks are the functions to run when a keyring is closed.
type closeHooks struct {
	mu     sync.Mutex
	closed bool
	seq    uint64
	fs     map[uint64]func()
}

// NewHierarchical returns a hierarchical keyring.
func NewHierarchical(cfg HierarchicalConfig) (*Hierarchical, error) {
	if cfg.BranchKeys == nil {
		return nil, errors.New("keyring: HierarchicalConfig.BranchKeys is required")
	}
	if (cfg.BranchKeyID == "") == (cfg.BranchKeyIDSupplier == nil) {
		return nil, errors.New("keyring: HierarchicalConfig needs exactly one of BranchKeyID and BranchKeyIDSupplier")
	}
	if cfg.BranchKeyID != "" {
		if err := keystore.CheckID(cfg.BranchKeyID); err != nil {
			return nil, err
		}
	}
	if cfg.CacheTTL <= 0 {
		return nil, errors.New("keyring: HierarchicalConfig.CacheTTL must be greater than zero")
	}
	if cfg.CacheCapacity < 0 {
		return nil, errors.New("keyring: HierarchicalConfig.CacheCapacity must not be negative")
	}
	if cfg.CacheCapacity == 0 {
		cfg.CacheCapacity = DefaultHierarchicalCacheCapacity
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PropagationWindow < 0 || cfg.StaleIfError < 0 || cfg.LoadTimeout < 0 {
		return nil, errors.New("keyring: HierarchicalConfig.PropagationWindow, StaleIfError and LoadTimeout must not be negative")
	}
	if cfg.PropagationWindow == 0 {
		cfg.PropagationWindow = cfg.CacheTTL
	}
	if err := cfg.checkUsage(); err != nil {
		return nil, err
	}
	onStale, err := staleHook(cfg.OnStaleUse, cfg.Audit)
	if err != nil {
		return nil, err
	}
	if cfg.Escrow != nil {
		if _, err := cfg.BranchKeys.records(); err != nil {
			return nil, err
		}
	}
	return &Hierarchical{
		bk:       cfg.BranchKeys,
		id:       cfg.BranchKeyID,
		supplier: cfg.BranchKeyIDSupplier,
		cache: newBranchKeyCache(branchKeyCacheConfig{
			ttl: cfg.CacheTTL, stale: cfg.StaleIfError, window: cfg.PropagationWindow, loadTimeout: cfg.LoadTimeout,
			capacity: cfg.CacheCapacity, now: cfg.Now, onStale: onStale, maxUses: cfg.MaxUsesPerVersion, escrow: cfg.Escrow,
		}),
		maxUses: cfg.MaxUsesPerVersion,
		block:   cfg.UsageBlock,
		window:  cfg.PropagationWindow,
		hooks:   &closeHooks{fs: map[uint64]func(){}},
	}, nil
}

// Close wipes every cached branch key, ends the cache's loads under way,
// stops its timers and runs the functions registered with AfterClose. The
// keyring refuses to work after (ErrClosed).
func (h *Hierarchical) Close() error {
	h.cache.close()
	k := h.hooks
	k.mu.Lock()
	fs := k.fs
	k.fs, k.closed = nil, true
	k.mu.Unlock()
	for _, f := range fs {
		f()
	}
	return nil
}

// AfterClose arranges for f to run when the keyring is closed (at once, if
// it is already), so that what a package caches from its branch keys (such
// as fieldenc's column keys) ends with it. stop cancels the arrangement,
// for a cache that goes away first.
func (h *Hierarchical) AfterClose(f func()) (stop func()) {
	k := h.hooks
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		f()
		return func() {}
	}
	k.seq++
	n := k.seq
	k.fs[n] = f
	k.mu.Unlock()
	return func() {
		k.mu.Lock()
		delete(k.fs, n)
		k.mu.Unlock()
	}
}

// PropagationWindow is how long after a rotation this keyring keeps writing
// under the replaced version (HierarchicalConfig.PropagationWindow).
func (h *Hierarchical) PropagationWindow() time.Duration { return h.window }

// WritesFrom is when this keyring starts writing new data under version v
// (one returned by custody.BranchKeys.Rotate, say): v.CreatedAt plus the
// propagation window. It decrypts under v at once.
func (h *Hierarchical) WritesFrom(v keystore.BranchKeyVersion) time.Time {
	return v.CreatedAt.Add(h.window)
}

// EncryptingVersion returns the version of branch key id this keyring
// writes new data under now, as cached (no use is counted): the active
// version, or during a rotation's propagation window the one it replaced.
func (h *Hierarchical) EncryptingVersion(ctx context.Context, id string) (keystore.BranchKeyVersion, error) {
	if err := keystore.CheckID(id); err != nil {
		return keystore.BranchKeyVersion{}, err
	}
	e, err := h.cache.active(ctx, h.bk, id)
	if err != nil {
		return keystore.BranchKeyVersion{}, err
	}
	defer e.release()
	v := e.rec
	v.Ciphertext = nil
	return v, nil
}

// String names the keyring without its branch key id (which may be PHI) or
// any key material.
func (Hierarchical) String() string { return "Hierarchical" }

// GoString implements fmt.GoStringer, so %#v prints no internals.
func (Hierarchical) GoString() string { return "Hierarchical" }

// CacheTTL is the configured cache lifetime: how long this keyring may
// keep using a version after another process rotated or retired it.
func (h *Hierarchical) CacheTTL() time.Duration { return h.cache.ttl }

// MaxUsesPerVersion is the configured cap on uses of one branch key
// version (0: uses are not counted).
func (h *Hierarchical) MaxUsesPerVersion() uint64 { return h.maxUses }

// branchKeyID is the configured id or the supplier's answer (spec "OnEncrypt"
// and "OnDecrypt": "either the configured branchKeyId ... or the result of
// the branchKeySupplier's getBranchKeyId operation").
func (h *Hierarchical) branchKeyID(ec map[string]string) (string, error) {
	if h.supplier == nil {
		return h.id, nil
	}
	id, err := h.supplier(ec)
	if err != nil {
		return "", fmt.Errorf("keyring: the branch key id supplier failed: %w", err)
	}
	if err := keystore.CheckID(id); err != nil {
		return "", wrapStep(err, "the branch key id supplier returned an invalid id")
	}
	return id, nil
}

// OnEncrypt wraps the data key (generating it if the materials have none)
// under the active version of the branch key.
func (h *Hierarchical) OnEncrypt(ctx context.Context, m *EncryptionMaterials) error {
	if err := m.checkDataKey(); err != nil {
		return err
	}
	id, err := h.branchKeyID(m.EncryptionContext)
	if err != nil {
		return err
	}
	// Spec "Branch Key Wrapping and Unwrapping AAD": "If the keyring cannot
	// serialize the encryption context, the operation MUST fail."
	ec, err := wire.AppendContext(nil, m.EncryptionContext)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	// Spec "Query Branch Keystore OnEncrypt": the active version, with
	// this message counted against it.
	active, ent, until, err := h.activeMaterial(ctx, id, 1)
	if err != nil {
		return err
	}
	defer ent.release()
	dk := m.DataKey
	if dk == nil {
		// Spec "OnEncrypt": generate a random data key of the suite's length.
		dk = make(Secret, m.DataKeyLength)
		rand.Read(dk)
	}
	edk, err := wrapHierarchical(ent.key, id, active.Version, dk, ec)
	if err != nil {
		if m.DataKey == nil {
			dk.Wipe()
		}
		return err
	}
	m.DataKey = dk
	m.EncryptedDataKeys = append(m.EncryptedDataKeys, edk)
	// A cache in front must not reuse these materials beyond the branch
	// key's cache entry: after a rotation new messages must move to the
	// new version within CacheTTL, whatever the data-key cache's MaxAge.
	m.LimitValidity(until.Sub(h.cache.now()))
	return nil
}

// wrapHierarchical is the spec's "Branch Key Wrapping", producing the EDK of
// spec "OnEncrypt" (provider id "aws-kms-hierarchy", provider info the branch
// key id, ciphertext as in "Structure / Ciphertext").
func wrapHierarchical(branchKey Secret, id, version string, dk Secret, ec []byte) (EncryptedDataKey, error) {
	vb, ok := keystore.VersionBytes(version)
	if !ok {
		return EncryptedDataKey{}, fmt.Errorf("%w: the active version of %s is not a UUID", ErrInvalid, keystore.Fingerprint(id))
	}
	out := make([]byte, hierHeaderLen, hierHeaderLen+len(dk)+hierTagLen)
	// 1. a 16 byte random salt; 2. a 12 byte random IV.
	rand.Read(out[:hierSaltLen+hierIVLen])
	salt, iv := out[:hierSaltLen], out[hierSaltLen:hierSaltLen+hierIVLen]
	copy(out[hierSaltLen+hierIVLen:], vb[:])
	aead, err := hierarchicalAEAD(branchKey, salt)
	if err != nil {
		return EncryptedDataKey{}, err
	}
	// 4. AES-GCM-256 under the derived key, the data key as the message,
	// a 16-byte tag, the serialized AAD.
	out = aead.Seal(out, iv, dk, hierarchicalAAD(id, vb, ec))
	return EncryptedDataKey{ProviderID: hierarchyProviderID, ProviderInfo: []byte(id), Ciphertext: out}, nil
}

// hierarchicalAEAD is AES-256-GCM under the key derived from the branch key
// and salt (spec "Branch Key Wrapping" step 3).
func hierarchicalAEAD(branchKey Secret, salt []byte) (cipher.AEAD, error) {
	dkey := deriveHierarchicalKey(branchKey, salt)
	defer clear(dkey[:])
	block, err := aes.NewCipher(dkey[:])
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return cipher.NewGCM(block)
}

// deriveHierarchicalKey derives the 32-byte derivedBranchKey (spec "Branch
// Key Wrapping" step 3): NIST SP 800-108r1 KDF in counter mode with
// HMAC-SHA-256, the branch key as the key, "aws-kms-hierarchy" as the label
// and the salt as the context. The PRF input is, as AWS's implementation
// (KdfCtr) lays it out: a 4-byte big-endian counter starting at 1 || label ||
// 0x00 || salt || the output length in bits as 4 bytes big-endian (256).
// One HMAC-SHA-256 block is exactly the 32 bytes needed.
//
// The spec names this KDF, not HKDF: HKDF would put a 1-byte counter last
// and derive a different key, which AWS's readers would not open.
func deriveHierarchicalKey(branchKey Secret, salt []byte) (out [32]byte) {
	mac := hmac.New(sha256.New, branchKey)
	var buf [4 + len(hierarchyProviderID) + 1 + hierSaltLen + 4]byte
	b := binary.BigEndian.AppendUint32(buf[:0], 1)
	b = append(b, hierarchyProviderID...)
	b = append(b, 0x00)
	b = append(b, salt...)
	b = binary.BigEndian.AppendUint32(b, 8*32)
	mac.Write(b)
	mac.Sum(out[:0])
	return out
}

// hierarchicalAAD is spec "Branch Key Wrapping and Unwrapping AAD":
// "aws-kms-hierarchy" || branch-key-id (UTF-8) || version (16 UUID bytes, as
// AWS's implementation passes it) || serialized encryption context.
func hierarchicalAAD(id string, version [16]byte, ec []byte) []byte {
	aad := make([]byte, 0, len(hierarchyProviderID)+len(id)+len(version)+len(ec))
	aad = append(aad, hierarchyProviderID...)
	aad = append(aad, id...)
	aad = append(aad, version[:]...)
	return append(aad, ec...)
}

// OnDecrypt unwraps the first encrypted data key written by a hierarchical
// keyring for this keyring's branch key (spec "OnDecrypt").
func (h *Hierarchical) OnDecrypt(ctx context.Context, m *DecryptionMaterials, edks []EncryptedDataKey) error {
	// "If the decryption materials already contain a PlainTextDataKey,
	// OnDecrypt MUST fail."
	if m.DataKey != nil {
		return ErrDataKeyPresent
	}
	id, err := h.branchKeyID(m.EncryptionContext)
	if err != nil {
		return err
	}
	ec, err := wire.AppendContext(nil, m.EncryptionContext)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	var attempts []error
	for _, edk := range edks {
		// Filter: provider id "aws-kms-hierarchy", provider info the UTF-8
		// branch key id, equal to this keyring's.
		if edk.ProviderID != hierarchyProviderID {
			continue
		}
		if !utf8.Valid(edk.ProviderInfo) {
			attempts = append(attempts, errors.New("an aws-kms-hierarchy encrypted data key's provider info is not UTF-8"))
			continue
		}
		if string(edk.ProviderInfo) != id {
			continue
		}
		// "For each encrypted data key in the filtered set ... errors MUST
		// be collected."
		dk, until, err := h.unwrapOne(ctx, id, edk.Ciphertext, m.DataKeyLength, ec)
		if err != nil {
			attempts = append(attempts, err)
			continue
		}
		m.DataKey = dk
		// A retired version's messages must fail within CacheTTL, whatever
		// a data-key cache in front would otherwise keep.
		m.LimitValidity(until.Sub(h.cache.now()))
		return nil
	}
	return unwrapError(attempts)
}

// unwrapOne is spec "Branch Key Unwrapping" for one EDK ciphertext.
func (h *Hierarchical) unwrapOne(ctx context.Context, id string, ct []byte, dkLen int, ec []byte) (Secret, time.Time, error) {
	if len(ct) != hierHeaderLen+dkLen+hierTagLen {
		return nil, time.Time{}, fmt.Errorf("an aws-kms-hierarchy encrypted data key is %d bytes; want %d", len(ct), hierHeaderLen+dkLen+hierTagLen)
	}
	salt, iv := ct[:hierSaltLen], ct[hierSaltLen:hierSaltLen+hierIVLen]
	var vb [16]byte
	copy(vb[:], ct[hierSaltLen+hierIVLen:hierHeaderLen])
	version := keystore.VersionString(vb)
	// Spec "GetItem Branch Keystore OnDecrypt": that version of the key.
	ent, err := h.cache.material(ctx, h.bk, keystore.BranchKeyVersion{BranchKeyID: id, Version: version})
	if err != nil {
		return nil, time.Time{}, err
	}
	defer ent.release()
	aead, err := hierarchicalAEAD(ent.key, salt)
	if err != nil {
		return nil, time.Time{}, err
	}
	dk, err := aead.Open(nil, iv, ct[hierHeaderLen:], hierarchicalAAD(id, vb, ec))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("version %s of %s: the wrapped key does not open (wrong encryption context, or the key was altered)", version, keystore.Fingerprint(id))
	}
	return Secret(dk), h.cache.validUntil(ent), nil
}
