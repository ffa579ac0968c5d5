package keyring

import (
	"bytes"
	"crypto/hpke"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
)

// HPKE escrow keys: the key pair of the post-quantum escrow keyring
// (HPKEEscrow), a hybrid ML-KEM-768 + X25519 key (MLKEM768-X25519, the KEM
// of draft-ietf-hpke-pq also known as X-Wing).
//
// The public key is what services carry. The private key is what
// custodians reassemble at recovery; it is never stored whole (keyctl splits
// its seed into shares), so its only encoding is the 32-byte seed, handed
// out by RevealSeed.

const (
	// HPKEEscrowPublicKeySize is the length of an encoded escrow public key:
	// the ML-KEM-768 encapsulation key (1184 bytes) then the X25519 public
	// key (32 bytes).
	HPKEEscrowPublicKeySize = 1216
	// HPKEEscrowSeedSize is the length of an escrow private key's seed.
	HPKEEscrowSeedSize = 32
)

// HPKEEscrowPublicKey is an escrow public key: it wraps data keys and cannot
// unwrap them. It prints as its kind and length: it is public, but 1216
// bytes in a log line help no one.
type HPKEEscrowPublicKey struct {
	k hpke.PublicKey
}

// ParseHPKEEscrowPublicKey reads an escrow public key as Bytes encodes it
// (HPKEEscrowPublicKeySize bytes, the KEM's SerializePublicKey).
func ParseHPKEEscrowPublicKey(b []byte) (*HPKEEscrowPublicKey, error) {
	if len(b) != HPKEEscrowPublicKeySize {
		return nil, fmt.Errorf("keyring: an HPKE escrow public key is %d bytes, not %d", HPKEEscrowPublicKeySize, len(b))
	}
	k, err := hpkeEscrowKEM().NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("keyring: the HPKE escrow public key does not parse (%v)", err)
	}
	return &HPKEEscrowPublicKey{k: k}, nil
}

// Bytes returns the encoded public key (HPKEEscrowPublicKeySize bytes), a
// fresh copy.
func (k *HPKEEscrowPublicKey) Bytes() []byte { return k.k.Bytes() }

// String describes the key by its kind.
func (k HPKEEscrowPublicKey) String() string {
	return "HPKEEscrowPublicKey(MLKEM768-X25519, " + strconv.Itoa(HPKEEscrowPublicKeySize) + " bytes)"
}

// HPKEEscrowPrivateKey is an escrow private key. It formats as a redacted
// description under every fmt verb, in encoding/json and in log/slog.
type HPKEEscrowPrivateKey struct {
	k hpke.PrivateKey
}

// GenerateHPKEEscrowKey returns a new escrow private key from the system's
// random source. Split its seed (RevealSeed) at once; do not store it whole.
func GenerateHPKEEscrowKey() (*HPKEEscrowPrivateKey, error) {
	k, err := hpkeEscrowKEM().GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("keyring: generating an HPKE escrow key: %w", err)
	}
	return &HPKEEscrowPrivateKey{k: k}, nil
}

// ParseHPKEEscrowPrivateKey returns the escrow private key of a 32-byte seed
// (as RevealSeed returns it; the KEM's SerializePrivateKey). seed is not
// retained: the caller may wipe it afterwards.
func ParseHPKEEscrowPrivateKey(seed []byte) (*HPKEEscrowPrivateKey, error) {
	if len(seed) != HPKEEscrowSeedSize {
		return nil, fmt.Errorf("keyring: an HPKE escrow private key seed is %d bytes, not %d", HPKEEscrowSeedSize, len(seed))
	}
	k, err := hpkeEscrowKEM().NewPrivateKey(seed) // copies the seed
	if err != nil {
		return nil, fmt.Errorf("keyring: the HPKE escrow private key does not parse (%v)", err)
	}
	return &HPKEEscrowPrivateKey{k: k}, nil
}

// PublicKey returns the public key that services carry.
func (k *HPKEEscrowPrivateKey) PublicKey() *HPKEEscrowPublicKey {
	return &HPKEEscrowPublicKey{k: k.k.PublicKey()}
}

// RevealSeed returns a copy of the private key's 32-byte seed, the whole
// private key: for splitting into custodians' shares and nothing else. Wipe
// it (Secret.Wipe) as soon as the shares are made.
func (k *HPKEEscrowPrivateKey) RevealSeed() Secret {
	seed, err := k.k.Bytes()
	if err != nil {
		// Every key of this type is made from a seed (GenerateKey or
		// NewPrivateKey), so the seed is always there.
		panic("keyring: the HPKE escrow private key has no seed: " + err.Error())
	}
	return Secret(bytes.Clone(seed)) // crypto/hpke returns its own copy
}

const hpkeEscrowPrivateKeyDesc = "HPKEEscrowPrivateKey(MLKEM768-X25519, " + redacted + ")"

// String describes the key by its kind, without its bytes.
func (HPKEEscrowPrivateKey) String() string { return hpkeEscrowPrivateKeyDesc }

// Format implements fmt.Formatter: String whatever the verb.
func (k HPKEEscrowPrivateKey) Format(f fmt.State, _ rune) { formatRedacted(f, k.String()) }

// MarshalJSON implements json.Marshaler with what String shows.
func (k HPKEEscrowPrivateKey) MarshalJSON() ([]byte, error) { return json.Marshal(k.String()) }

// MarshalText implements encoding.TextMarshaler with String.
func (k HPKEEscrowPrivateKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// LogValue implements slog.LogValuer.
func (k HPKEEscrowPrivateKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Format implements fmt.Formatter: String whatever the verb.
func (k HPKEEscrowPublicKey) Format(f fmt.State, _ rune) { formatRedacted(f, k.String()) }

// LogValue implements slog.LogValuer.
func (k HPKEEscrowPublicKey) LogValue() slog.Value { return slog.StringValue(k.String()) }
