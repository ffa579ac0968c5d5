package kmsmock

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"slices"
)

// Ciphertext blobs are kmsmock's own format, opaque to callers as AWS's are:
//
//	version   1 byte   (blobVersion)
//	key id   36 bytes  (the key's UUID in text form)
//	backing   4 bytes  (big-endian index of the backing key that sealed it)
//	nonce    12 bytes
//	sealed    n bytes  (AES-256-GCM ciphertext and 16-byte tag)
//
// The GCM additional data is the 53-byte prefix followed by the encryption
// context in a canonical form (pairs sorted by key, each string prefixed by its
// length as a big-endian uint32), so a changed key id, backing version or
// context fails to open. Because the blob names its key and backing version,
// Decrypt needs no KeyId and old blobs open after rotation.
const (
	blobVersion   = 0x01
	blobIDLen     = 36
	blobPrefixLen = 1 + blobIDLen + 4 + 12
	blobMinLen    = blobPrefixLen + 16
	// maxCiphertextBlob is the largest CiphertextBlob KMS accepts.
	maxCiphertextBlob = 6144
)

type blobHeader struct {
	keyID   string
	backing uint32
}

// parseBlobHeader reads the unauthenticated prefix so the caller can find the
// key; nothing in it is trusted until sealBlob's tag verifies.
func parseBlobHeader(blob []byte) (blobHeader, bool) {
	if len(blob) < blobMinLen || blob[0] != blobVersion || !isUUID(blob[1:1+blobIDLen]) {
		return blobHeader{}, false
	}
	return blobHeader{
		keyID:   string(blob[1 : 1+blobIDLen]),
		backing: binary.BigEndian.Uint32(blob[1+blobIDLen:]),
	}, true
}

func sealBlob(material []byte, h blobHeader, plaintext []byte, ctx map[string]string) []byte {
	out := make([]byte, blobPrefixLen, blobPrefixLen+len(plaintext)+16)
	out[0] = blobVersion
	copy(out[1:], h.keyID)
	binary.BigEndian.PutUint32(out[1+blobIDLen:], h.backing)
	rand.Read(out[blobPrefixLen-12 : blobPrefixLen])
	aead := newGCM(material)
	return aead.Seal(out, out[blobPrefixLen-12:blobPrefixLen], plaintext, blobAAD(out[:blobPrefixLen], ctx))
}

func openBlob(material, blob []byte, ctx map[string]string) ([]byte, bool) {
	aead := newGCM(material)
	pt, err := aead.Open(nil, blob[blobPrefixLen-12:blobPrefixLen], blob[blobPrefixLen:], blobAAD(blob[:blobPrefixLen], ctx))
	return pt, err == nil
}

func newGCM(material []byte) cipher.AEAD {
	block, err := aes.NewCipher(material)
	if err != nil {
		panic("kmsmock: backing key is not an AES key: " + err.Error())
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("kmsmock: " + err.Error())
	}
	return aead
}

func blobAAD(prefix []byte, ctx map[string]string) []byte {
	aad := append([]byte(nil), prefix...)
	keys := make([]string, 0, len(ctx))
	for k := range ctx {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		aad = binary.BigEndian.AppendUint32(aad, uint32(len(k)))
		aad = append(aad, k...)
		aad = binary.BigEndian.AppendUint32(aad, uint32(len(ctx[k])))
		aad = append(aad, ctx[k]...)
	}
	return aad
}

// isUUID reports whether b is a lower-case UUID in text form, the only form
// kmsmock gives key ids.
func isUUID(b []byte) bool {
	if len(b) != 36 {
		return false
	}
	for i, c := range b {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}
