package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// MinHashKeySize is the shortest key NewHasher accepts.
const MinHashKeySize = 32

// Domain-separation prefixes of the two digests (see the package doc).
const (
	keyDomain     = "phicrypt audit v1 branch key\x00"
	contextDomain = "phicrypt audit v1 context\x00"
)

// Hasher turns branch key ids and encryption contexts into keyed digests
// and builds events from raw values. Its key belongs to the log's
// operator, not to auditors. A Hasher never prints its key.
type Hasher struct {
	key []byte
}

// NewHasher returns a Hasher keyed with a copy of key, which must be at
// least MinHashKeySize bytes from a secure random source.
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) < MinHashKeySize {
		return nil, errors.New("audit: the hash key is shorter than 32 bytes: generate 32 random bytes")
	}
	return &Hasher{key: slices.Clone(key)}, nil
}

// Digest is a keyed hash of a branch key id or an encryption context. Only
// a Hasher makes one, so a raw value cannot stand in for it.
type Digest struct {
	sum [sha256.Size]byte
	set bool
}

// IsZero reports whether d holds no digest (the field was absent).
func (d Digest) IsZero() bool { return !d.set }

// String is the digest in hex, or "-" when absent.
func (d Digest) String() string {
	if !d.set {
		return "-"
	}
	return hex.EncodeToString(d.sum[:])
}

// MarshalText encodes the digest as String does.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// BranchKey returns the digest of a branch key id.
func (h *Hasher) BranchKey(id string) Digest {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(keyDomain))
	m.Write([]byte(id))
	return sumOf(m.Sum(nil))
}

// Context returns the digest of an encryption context: its pairs in byte
// order of keys, each key and value preceded by its length.
func (h *Hasher) Context(ctx map[string]string) Digest {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(contextDomain))
	var n [4]byte
	for _, k := range slices.Sorted(maps.Keys(ctx)) {
		for _, s := range []string{k, ctx[k]} {
			binary.BigEndian.PutUint32(n[:], uint32(len(s)))
			m.Write(n[:])
			m.Write([]byte(s))
		}
	}
	return sumOf(m.Sum(nil))
}

func sumOf(b []byte) Digest {
	var d Digest
	copy(d.sum[:], b)
	d.set = true
	return d
}

// String names the type and never the key.
func (h Hasher) String() string { return "audit.Hasher{key: redacted}" }

// Format prints String whatever the verb, so no verb shows the key.
func (h Hasher) Format(f fmt.State, _ rune) { fmt.Fprint(f, h.String()) }

// MarshalJSON hides the key from encoding/json.
func (h Hasher) MarshalJSON() ([]byte, error) { return []byte(`"audit.Hasher{key: redacted}"`), nil }
