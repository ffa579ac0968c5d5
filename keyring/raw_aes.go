package keyring

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/phicrypt/phicrypt/internal/wire"
)

// RawAES wraps data keys with an AES-GCM key the caller holds, in the
// AWS Encryption SDK's raw AES keyring format (framework/raw-aes-keyring.md):
//
//	provider id    the key namespace
//	provider info  key name || uint32 tag bits (128) || uint32 IV bytes (12) || IV
//	ciphertext     wrapped data key || 16-byte tag
//
// with the serialized encryption context as the GCM additional data. Keys of
// the same namespace and name in another ESDK read what it writes.
type RawAES struct {
	namespace string
	name      string
	aead      cipher.AEAD // built once: the wrapping key never changes
	// aads holds buffers (*[]byte) for the serialized encryption context,
	// the GCM additional data, which no result keeps; they are cleared
	// before they go back.
	aads *sync.Pool
}

// maxPooledAAD bounds the buffers aads keeps, so one message with a huge
// context does not pin its buffer.
const maxPooledAAD = 4 << 10

const (
	rawAESTagBits  = 128
	rawAESIVLength = 12
)

// NewRawAES returns a raw AES keyring for a 16-, 24- or 32-byte wrapping
// key. The namespace "aws-kms" (and anything starting with it) is reserved
// for KMS keyrings and refused.
func NewRawAES(namespace, name string, key []byte) (*RawAES, error) {
	if namespace == "" || name == "" || !utf8.ValidString(namespace) || !utf8.ValidString(name) {
		return nil, errors.New("keyring: raw AES key namespace and name must be non-empty UTF-8")
	}
	if strings.HasPrefix(namespace, kmsProviderID) {
		return nil, errors.New(`keyring: the key namespace "aws-kms" is reserved for AWS KMS keyrings`)
	}
	if len(namespace) > 0xffff || len(name) > 0xffff-20 {
		return nil, errors.New("keyring: raw AES key namespace or name is too long")
	}
	switch len(key) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("keyring: a raw AES wrapping key is 16, 24 or 32 bytes, not %d", len(key))
	}
	block, err := aes.NewCipher(key) // copies the key schedule; key is not retained
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &RawAES{namespace: namespace, name: name, aead: aead, aads: &sync.Pool{}}, nil
}

// String names the keyring without its key.
func (r *RawAES) String() string { return "RawAES(" + r.namespace + "/" + r.name + ")" }

// OnEncrypt generates the data key if the materials have none, then wraps it.
// The data key, the provider info and the ciphertext share one allocation,
// and a generated data key and the IV come from one read of crypto/rand.
func (r *RawAES) OnEncrypt(_ context.Context, m *EncryptionMaterials) error {
	if err := m.checkDataKey(); err != nil {
		return err
	}
	p, aad, err := r.serializeContext(m.EncryptionContext)
	if err != nil {
		return err
	}
	defer r.releaseAAD(p, aad)
	// buf: name || tag bits || IV length || IV || data key (when generated)
	// || wrapped key || tag
	infoLen := len(r.name) + 8 + rawAESIVLength
	dkLen := 0
	if m.DataKey == nil {
		dkLen = m.DataKeyLength
	}
	buf := make([]byte, infoLen+dkLen+m.DataKeyLength+16)
	info := append(buf[:0], r.name...)
	info = binary.BigEndian.AppendUint32(info, rawAESTagBits)
	info = binary.BigEndian.AppendUint32(info, rawAESIVLength)
	info = info[:infoLen:infoLen]
	iv := info[infoLen-rawAESIVLength:]
	dk := m.DataKey
	if dk == nil {
		dk = Secret(buf[infoLen : infoLen+dkLen : infoLen+dkLen])
		rand.Read(buf[infoLen-rawAESIVLength : infoLen+dkLen]) // the IV and the data key
	} else {
		rand.Read(iv)
	}
	ct := r.aead.Seal(buf[infoLen+dkLen:infoLen+dkLen], iv, dk, aad)
	edk := EncryptedDataKey{ProviderID: r.namespace, ProviderInfo: info, Ciphertext: ct[:len(ct):len(ct)]}
	m.DataKey = dk
	m.EncryptedDataKeys = append(m.EncryptedDataKeys, edk)
	return nil
}

// serializeContext returns ec serialized in a pooled buffer, which the
// caller hands back with releaseAAD.
func (r *RawAES) serializeContext(ec map[string]string) (*[]byte, []byte, error) {
	p, ok := r.aads.Get().(*[]byte)
	if !ok {
		p = new([]byte)
	}
	aad, err := wire.AppendContext((*p)[:0], ec)
	if err != nil {
		r.aads.Put(p)
		return nil, nil, fmt.Errorf("keyring: %w", err)
	}
	return p, aad, nil
}

// releaseAAD clears aad, the context's values (which may be PHI), and
// keeps its buffer in p for the next message.
func (r *RawAES) releaseAAD(p *[]byte, aad []byte) {
	clear(aad)
	if cap(aad) > maxPooledAAD {
		aad = nil
	}
	*p = aad[:0]
	r.aads.Put(p)
}

// OnDecrypt tries, in order, every encrypted data key written under this
// keyring's namespace and name.
func (r *RawAES) OnDecrypt(_ context.Context, m *DecryptionMaterials, edks []EncryptedDataKey) error {
	if m.DataKey != nil {
		return ErrDataKeyPresent
	}
	p, aad, err := r.serializeContext(m.EncryptionContext)
	if err != nil {
		return err
	}
	defer r.releaseAAD(p, aad)
	var attempts []error
	for _, edk := range edks {
		iv, ok := r.matches(edk)
		if !ok {
			continue
		}
		dk, err := r.aead.Open(nil, iv, edk.Ciphertext, aad)
		if err != nil || len(dk) != m.DataKeyLength {
			Secret(dk).Wipe()
			attempts = append(attempts, fmt.Errorf("%s: the wrapped key does not open (wrong key or encryption context)", r))
			continue
		}
		m.DataKey = dk
		return nil
	}
	return unwrapError(attempts)
}

// matches parses an EDK's provider info as name || 128 || 12 || IV and
// returns the IV if it is this keyring's.
func (r *RawAES) matches(edk EncryptedDataKey) ([]byte, bool) {
	info := edk.ProviderInfo
	if edk.ProviderID != r.namespace || len(info) != len(r.name)+8+rawAESIVLength || string(info[:len(r.name)]) != r.name {
		return nil, false
	}
	rest := info[len(r.name):]
	if binary.BigEndian.Uint32(rest) != rawAESTagBits || binary.BigEndian.Uint32(rest[4:]) != rawAESIVLength {
		return nil, false
	}
	return rest[8:], len(edk.Ciphertext) >= 16
}
