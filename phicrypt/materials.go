package phicrypt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/phicrypt/phicrypt/internal/wire"
	"github.com/phicrypt/phicrypt/keyring"
)

// materials is a message's data key and wrapped copies, from the keyring or
// the cache. release must be called once the key has been used.
type materials struct {
	dataKey keyring.Secret
	edks    []keyring.EncryptedDataKey
	// context (decryption) is the parsed context the key was unwrapped
	// under; from a cache entry, it is shared and must not be modified.
	// Otherwise it is the message's own (ownContext).
	context    map[string]string
	ownContext bool
	entry      *cacheEntry // nil when the materials are the message's own
	// validFor is the keyring's bound on reusing them (zero: none).
	validFor time.Duration
}

func (m materials) release() {
	if m.entry != nil {
		m.entry.release()
		return
	}
	m.dataKey.Wipe()
}

// encryptionMaterials asks the cache, when there is one and the message can
// use it, and the keyring otherwise. key is the cache key (cacheKeyOf).
// scratch holds the keyring's materials for a message that bypasses the
// cache (nil: allocate them).
func (e *Encryptor) encryptionMaterials(ctx context.Context, ec map[string]string, key []byte, size int64, scratch *encryptScratch) (materials, error) {
	if e.cache == nil || size < 0 || e.suite.signed || uint64(size) > e.cache.cfg.MaxBytes {
		return e.keyringEncrypt(ctx, ec, scratch)
	}
	entry, refresh := e.cache.lookup(key, uint64(size))
	if entry == nil {
		var err error
		// The fill may outlive this call (it is shared): it gets its own
		// copy of the context.
		if entry, err = e.cache.miss(ctx, key, uint64(size), e.encryptFill(maps.Clone(ec))); err != nil {
			return materials{}, err
		}
	} else if refresh {
		e.cache.refresh(ctx, key, entry, e.encryptFill(maps.Clone(ec)))
	}
	return materials{dataKey: entry.dataKey, edks: entry.edks, entry: entry}, nil
}

func (e *Encryptor) encryptFill(ec map[string]string) func(context.Context) (*cacheEntry, error) {
	return func(ctx context.Context) (*cacheEntry, error) {
		m, err := e.keyringEncrypt(ctx, ec, nil)
		if err != nil {
			return nil, err
		}
		return &cacheEntry{dataKey: m.dataKey, edks: m.edks, validFor: m.validFor, branchKeys: branchKeysOf(m.edks)}, nil
	}
}

// encryptScratch is a message's keyring materials and room for its
// encrypted data keys, kept in its (pooled) encryptState: a message whose
// materials live only as long as the message allocates neither. It holds
// nothing once the message is done (release).
type encryptScratch struct {
	m    keyring.EncryptionMaterials
	edks [2]keyring.EncryptedDataKey
}

func (s *encryptScratch) release() {
	s.m = keyring.EncryptionMaterials{}
	s.edks = [2]keyring.EncryptedDataKey{}
}

// keyringEncrypt asks the keyring for a data key. With scratch the
// materials live in it, and must not outlive the message; without, they
// are the caller's to keep (a cache entry).
func (e *Encryptor) keyringEncrypt(ctx context.Context, ec map[string]string, scratch *encryptScratch) (materials, error) {
	var m *keyring.EncryptionMaterials
	if scratch != nil {
		m = &scratch.m
		*m = keyring.EncryptionMaterials{EncryptedDataKeys: scratch.edks[:0]}
	} else {
		m = new(keyring.EncryptionMaterials)
	}
	m.SuiteID, m.DataKeyLength, m.EncryptionContext = uint16(e.suite.id), dataKeyLength, ec
	if err := e.keyring.OnEncrypt(ctx, m); err != nil {
		return materials{}, keyringError(err)
	}
	if len(m.DataKey) != dataKeyLength || len(m.EncryptedDataKeys) == 0 {
		m.DataKey.Wipe()
		return materials{}, errors.New("phicrypt: the keyring returned no data key or no encrypted data key")
	}
	if err := e.checkEDKs(m.EncryptedDataKeys); err != nil {
		m.DataKey.Wipe()
		return materials{}, err
	}
	return materials{dataKey: m.DataKey, edks: m.EncryptedDataKeys, validFor: m.ValidFor}, nil
}

// checkEDKs checks a keyring's encrypted data keys against the limit on
// their number and what the header format can hold.
func (e *Encryptor) checkEDKs(edks []keyring.EncryptedDataKey) error {
	if len(edks) > e.lim.maxEDKs {
		return fmt.Errorf("%w: the keyring made %d encrypted data keys; the maximum is %d", ErrLimit, len(edks), e.lim.maxEDKs)
	}
	for _, edk := range edks {
		if edk.ProviderID == "" || !utf8.ValidString(edk.ProviderID) || len(edk.ProviderID) > 0xffff ||
			len(edk.ProviderInfo) > 0xffff || len(edk.Ciphertext) > 0xffff {
			return errors.New("phicrypt: the keyring made an encrypted data key the format cannot hold (empty or non-UTF-8 provider id, or a field over 65535 bytes)")
		}
	}
	return nil
}

// keyringError is a keyring's failure to make a data key, naming the
// keyring step once: the keyring package's errors already begin "keyring: ",
// a keyring of the caller's own may not.
func keyringError(err error) error {
	if strings.HasPrefix(err.Error(), "keyring: ") {
		return fmt.Errorf("phicrypt: %w", err)
	}
	return fmt.Errorf("phicrypt: keyring: %w", err)
}

// decryptionMaterials unwraps a message's data key, through the cache when
// there is one. full is the context when the caller's expected pairs added
// to the header's, nil when the header's context is the whole of it. The
// cache key is built in o's scratch from the header's bytes as read, so a
// hit parses and copies nothing.
func (e *Encryptor) decryptionMaterials(ctx context.Context, o *opened, h *header, full map[string]string) (materials, error) {
	if e.cache == nil {
		return e.keyringDecrypt(ctx, h, full, &o.mat)
	}
	key := appendCacheKeyPrefix(o.key[:0], &e.cacheOwner, 'D', h.suite.id)
	key = append(key, h.edkRaw...)
	if full == nil {
		key = append(key, h.contextRaw...)
	} else {
		var err error
		if key, err = wire.AppendContext(key, full); err != nil {
			return materials{}, fmt.Errorf("%w: %w", ErrContext, err)
		}
	}
	o.key = key
	key = cacheKeyOf(key, &o.digest)
	entry, _ := e.cache.lookup(key, 0) // decrypt entries are not refreshed ahead
	if entry == nil {
		var err error
		// The fill may outlive this call (it is shared, and runs detached
		// from ctx), so it must not read the header, whose bytes the
		// caller reuses: it gets copies of what it needs.
		suite, edks, ec := uint16(h.suite.id), cloneEDKs(h.encryptedDataKeys()), full
		if ec == nil {
			ec = maps.Clone(h.keyringContext())
		}
		entry, err = e.cache.miss(ctx, key, 0, func(ctx context.Context) (*cacheEntry, error) {
			m, err := e.keyringUnwrap(ctx, new(keyring.DecryptionMaterials), suite, edks, ec)
			if err != nil {
				return nil, err
			}
			return &cacheEntry{dataKey: m.dataKey, context: m.context, validFor: m.validFor, branchKeys: branchKeysOf(edks)}, nil
		})
		if err != nil {
			return materials{}, err
		}
	}
	return materials{dataKey: entry.dataKey, context: entry.context, entry: entry}, nil
}

// keyringDecrypt asks the keyring; full is as for decryptionMaterials. The
// keyring works in m, which the caller clears once the data key has been
// used. The context it returns is the message's own: the header's map (or
// full), built for this message alone.
func (e *Encryptor) keyringDecrypt(ctx context.Context, h *header, full map[string]string, m *keyring.DecryptionMaterials) (materials, error) {
	ec := full
	if ec == nil {
		ec = h.keyringContext()
	}
	mat, err := e.keyringUnwrap(ctx, m, uint16(h.suite.id), h.encryptedDataKeys(), ec)
	mat.ownContext = true
	return mat, err
}

// cloneEDKs deep-copies encrypted data keys that point into a buffer the
// caller will reuse.
func cloneEDKs(edks []keyring.EncryptedDataKey) []keyring.EncryptedDataKey {
	out := make([]keyring.EncryptedDataKey, len(edks))
	for i, k := range edks {
		out[i] = keyring.EncryptedDataKey{ProviderID: k.ProviderID, ProviderInfo: bytes.Clone(k.ProviderInfo), Ciphertext: bytes.Clone(k.Ciphertext)}
	}
	return out
}

// keyringUnwrap asks the keyring to unwrap one of edks in m, which must
// be empty.
func (e *Encryptor) keyringUnwrap(ctx context.Context, m *keyring.DecryptionMaterials, suite uint16, edks []keyring.EncryptedDataKey, ec map[string]string) (materials, error) {
	m.SuiteID, m.DataKeyLength, m.EncryptionContext = suite, dataKeyLength, ec
	if err := e.keyring.OnDecrypt(ctx, m, edks); err != nil {
		return materials{}, &MessageError{Stage: StageEDK, Err: ErrNoKey, cause: err}
	}
	if len(m.DataKey) != dataKeyLength {
		m.DataKey.Wipe()
		return materials{}, &MessageError{Stage: StageEDK, Err: ErrNoKey, What: "the keyring returned a data key of the wrong length"}
	}
	return materials{dataKey: m.DataKey, context: ec, validFor: m.ValidFor}, nil
}
