package custody

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"golang.org/x/crypto/cryptobyte"

	"github.com/phicrypt/phicrypt/internal/shamir"
	"github.com/phicrypt/phicrypt/keyring"
)

// Escrow private keys are never whole at rest: SplitEscrowKey splits a
// new HPKE escrow key's 32-byte seed M-of-N with Shamir's secret sharing
// (internal/shamir, over GF(2^8)) into shares, one per custodian, each
// bound to the escrow key's name, its public key's SHA-256, the split and
// its M and N, with an integrity check (docs/FORMAT.md, "Escrow key
// shares"). At recovery, AuthorizeRecovery checks the shares, authorizes
// the quorum-approved recover request and only then reassembles the key,
// in memory.

// Caps and sizes of escrow shares.
const (
	// MaxEscrowShares is the most shares an escrow key is split into (one
	// per custodian, as a policy names at most MaxCustodians).
	MaxEscrowShares = MaxCustodians
	// MaxEscrowName is the longest escrow key name, in bytes.
	MaxEscrowName = 64
	// escrowShareVersion is the first byte of an encoded share.
	escrowShareVersion = 1
	// maxEscrowShareSize bounds an encoded share.
	maxEscrowShareSize = 1 + 1 + MaxEscrowName + 32 + 16 + 3 + 1 + keyring.HPKEEscrowSeedSize + sha256.Size
)

// Errors of escrow shares, each matched with errors.Is. Messages name the
// escrow key by name and fingerprint, and a share by its index: never a
// share's bytes or the seed.
var (
	// ErrEscrowShare: a share is damaged (its integrity check fails), malformed,
	// given twice, or belongs to another escrow key, another split of it, or
	// another recover request.
	ErrEscrowShare = errors.New("custody: an escrow share is damaged or belongs to another escrow key")
	// ErrTooFewShares: fewer distinct shares than the split's threshold M.
	ErrTooFewShares = errors.New("custody: too few escrow shares to reassemble the escrow key")
	// ErrEscrowKeyMismatch: the shares combined into a key whose public key
	// is not the one they name (one share was forged with a valid check).
	ErrEscrowKeyMismatch = errors.New("custody: the reassembled escrow key does not match its public key; a share is forged")
)

// EscrowKeyDigest is SHA-256 of an escrow public key's encoding
// (keyring.HPKEEscrowPublicKey.Bytes): what shares and recover requests
// name the escrow key by.
func EscrowKeyDigest(pub *keyring.HPKEEscrowPublicKey) [32]byte {
	return pub.Digest()
}

// EscrowKeyFingerprint names an escrow key in errors, logs and change
// descriptions: "sha256:" and the digest's first eight bytes in hex.
func EscrowKeyFingerprint(digest [32]byte) string {
	return "sha256:" + hex.EncodeToString(digest[:8])
}

// EscrowShare is one custodian's share of an escrow private key's seed,
// with what binds it to its key and split. It formats as a description
// without the share's bytes under every fmt verb, in encoding/json and in
// log/slog; RevealEncoding is the one way to the bytes.
type EscrowShare struct {
	name      string
	keyDigest [32]byte
	split     [16]byte
	m, n, x   uint8
	y         []byte
}

// SplitEscrowKey splits key's seed into n shares, any m of which (2 ≤ m ≤
// n ≤ MaxEscrowShares) reassemble key, each bound to the escrow key name
// name (1 to MaxEscrowName bytes of letters, digits, '.', '_' and '-'),
// key's public key and this split. The seed is wiped before it returns.
// Hand each share to one custodian (EscrowShare.RevealEncoding) and drop
// key.
func SplitEscrowKey(name string, key *keyring.HPKEEscrowPrivateKey, n, m int) ([]*EscrowShare, error) {
	if err := checkEscrowName(name); err != nil {
		return nil, err
	}
	if key == nil {
		return nil, fmt.Errorf("%w: no escrow key to split", ErrInvalid)
	}
	if m < 2 || m > n || n > MaxEscrowShares {
		return nil, fmt.Errorf("%w: an escrow key is split into 2 to %d shares with a threshold of 2 to the number of shares; got %d of %d", ErrInvalid, MaxEscrowShares, m, n)
	}
	seed := key.RevealSeed()
	defer seed.Wipe()
	parts, err := shamir.Split(seed, n, m)
	if err != nil {
		return nil, fmt.Errorf("%w: splitting the escrow key: %w", ErrInvalid, err)
	}
	var split [16]byte
	rand.Read(split[:])
	digest := EscrowKeyDigest(key.PublicKey())
	out := make([]*EscrowShare, n)
	for i, p := range parts {
		out[i] = &EscrowShare{name: name, keyDigest: digest, split: split, m: uint8(m), n: uint8(n), x: p.X, y: p.Y}
	}
	return out, nil
}

// checkEscrowName reports whether name is a valid escrow key name.
func checkEscrowName(name string) error {
	if name == "" || len(name) > MaxEscrowName {
		return fmt.Errorf("%w: an escrow key name is 1 to %d bytes", ErrInvalid, MaxEscrowName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: an escrow key name is letters, digits, '.', '_' and '-'", ErrInvalid)
		}
	}
	return nil
}

// Name is the escrow key's name.
func (s *EscrowShare) Name() string { return s.name }

// KeyDigest is EscrowKeyDigest of the escrow public key the share belongs to.
func (s *EscrowShare) KeyDigest() [32]byte { return s.keyDigest }

// Threshold is M, the shares that reassemble the key.
func (s *EscrowShare) Threshold() int { return int(s.m) }

// Shares is N, the shares the key was split into.
func (s *EscrowShare) Shares() int { return int(s.n) }

// Index is the share's number, 1 to N.
func (s *EscrowShare) Index() int { return int(s.x) }

// Wipe overwrites the share's bytes with zeros.
func (s *EscrowShare) Wipe() { clear(s.y) }

// RevealEncoding returns the share's encoding (docs/FORMAT.md, "Escrow
// key shares"), share bytes included: for the one file its custodian
// holds, and nothing else.
func (s *EscrowShare) RevealEncoding() []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, maxEscrowShareSize))
	s.appendBody(b)
	body, err := b.Bytes()
	if err != nil {
		panic("custody: encoding an escrow share: " + err.Error()) // every field is within its bounds
	}
	sum := sha256.Sum256(body)
	return append(body, sum[:]...)
}

func (s *EscrowShare) appendBody(b *cryptobyte.Builder) {
	b.AddUint8(escrowShareVersion)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(s.name)) })
	b.AddBytes(s.keyDigest[:])
	b.AddBytes(s.split[:])
	b.AddUint8(s.m)
	b.AddUint8(s.n)
	b.AddUint8(s.x)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.y) })
}

// ParseEscrowShare decodes a share (ErrEscrowShare if it is malformed or
// fails its integrity check). b is not retained.
func ParseEscrowShare(b []byte) (*EscrowShare, error) {
	if len(b) > maxEscrowShareSize || len(b) < 1+sha256.Size {
		return nil, fmt.Errorf("%w: an encoded share is at most %d bytes; this is %d", ErrEscrowShare, maxEscrowShareSize, len(b))
	}
	if b[0] != escrowShareVersion {
		return nil, fmt.Errorf("%w: escrow share version %d; this phicrypt reads version %d", ErrEscrowShare, b[0], escrowShareVersion)
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if want := sha256.Sum256(body); subtle.ConstantTimeCompare(want[:], sum) != 1 {
		return nil, fmt.Errorf("%w: the share fails its integrity check (SHA-256): it was altered or damaged", ErrEscrowShare)
	}
	s := cryptobyte.String(body[1:])
	var name, y cryptobyte.String
	sh := &EscrowShare{}
	if !s.ReadUint8LengthPrefixed(&name) || !s.CopyBytes(sh.keyDigest[:]) || !s.CopyBytes(sh.split[:]) ||
		!s.ReadUint8(&sh.m) || !s.ReadUint8(&sh.n) || !s.ReadUint8(&sh.x) || !s.ReadUint8LengthPrefixed(&y) || !s.Empty() {
		return nil, fmt.Errorf("%w: the share's encoding is truncated or has trailing bytes", ErrEscrowShare)
	}
	sh.name, sh.y = string(name), append([]byte(nil), y...)
	switch {
	case checkEscrowName(sh.name) != nil:
		return nil, fmt.Errorf("%w: the share's escrow key name is not valid", ErrEscrowShare)
	case sh.m < 2 || sh.m > sh.n || int(sh.n) > MaxEscrowShares:
		return nil, fmt.Errorf("%w: the share's threshold %d of %d is out of range", ErrEscrowShare, sh.m, sh.n)
	case sh.x < 1 || sh.x > sh.n:
		return nil, fmt.Errorf("%w: the share's index %d is not 1 to %d", ErrEscrowShare, sh.x, sh.n)
	case len(sh.y) != keyring.HPKEEscrowSeedSize:
		return nil, fmt.Errorf("%w: the share holds %d bytes; an escrow seed's share is %d", ErrEscrowShare, len(sh.y), keyring.HPKEEscrowSeedSize)
	}
	return sh, nil
}

// checkEscrowShares checks that shares are at least M distinct shares of
// one split of the escrow key whose digest is want, without combining
// them.
func checkEscrowShares(shares []*EscrowShare, want [32]byte) error {
	if len(shares) == 0 {
		return fmt.Errorf("%w: no shares given", ErrTooFewShares)
	}
	if len(shares) > MaxEscrowShares {
		return fmt.Errorf("%w: %d shares; an escrow key has at most %d", ErrEscrowShare, len(shares), MaxEscrowShares)
	}
	first := shares[0]
	seen := make(map[uint8]bool, len(shares))
	for _, s := range shares {
		switch {
		case s == nil || len(s.y) != keyring.HPKEEscrowSeedSize:
			return fmt.Errorf("%w: an empty share", ErrEscrowShare)
		case s.keyDigest != want:
			return fmt.Errorf("%w: share %d is of escrow key %s, not %s", ErrEscrowShare, s.x, EscrowKeyFingerprint(s.keyDigest), EscrowKeyFingerprint(want))
		case s.name != first.name || s.split != first.split || s.m != first.m || s.n != first.n:
			return fmt.Errorf("%w: share %d is of another split of escrow key %s than share %d", ErrEscrowShare, s.x, EscrowKeyFingerprint(want), first.x)
		case seen[s.x]:
			return fmt.Errorf("%w: share %d is given twice", ErrEscrowShare, s.x)
		}
		seen[s.x] = true
	}
	if len(shares) < int(first.m) {
		return fmt.Errorf("%w: %d of escrow key %s's shares given; it takes %d of %d", ErrTooFewShares, len(shares), EscrowKeyFingerprint(want), first.m, first.n)
	}
	return nil
}

// CombineEscrowShares reassembles the escrow private key whose public
// key's digest is want from shares: at least M distinct shares of one
// split of that key. A share of another key, split or request, one given
// twice or a damaged one is refused (ErrEscrowShare); fewer than M
// (ErrTooFewShares); a combination whose public key is not want's
// (ErrEscrowKeyMismatch). The seed exists only inside this call and is
// wiped before it returns.
//
// Custodians reassemble a key through AuthorizeRecovery, which lets the
// quorum authorize it first.
func CombineEscrowShares(shares []*EscrowShare, want [32]byte) (*keyring.HPKEEscrowPrivateKey, error) {
	if err := checkEscrowShares(shares, want); err != nil {
		return nil, err
	}
	parts := make([]shamir.Share, len(shares))
	for i, s := range shares {
		parts[i] = shamir.Share{X: s.x, Y: s.y}
	}
	seed, err := shamir.Combine(parts)
	if err != nil {
		return nil, fmt.Errorf("%w: the shares do not combine", ErrEscrowShare)
	}
	defer clear(seed)
	key, err := keyring.ParseHPKEEscrowPrivateKey(seed)
	if err != nil {
		return nil, fmt.Errorf("%w: the combined seed is not an escrow key", ErrEscrowKeyMismatch)
	}
	if got := EscrowKeyDigest(key.PublicKey()); got != want {
		return nil, fmt.Errorf("%w: escrow key %s", ErrEscrowKeyMismatch, EscrowKeyFingerprint(want))
	}
	return key, nil
}

// String describes the share by its key, index and threshold, never its
// bytes.
func (s EscrowShare) String() string {
	return "custody.EscrowShare{" + s.name + ", escrow key " + EscrowKeyFingerprint(s.keyDigest) + ", share " +
		strconv.Itoa(int(s.x)) + " of " + strconv.Itoa(int(s.n)) + ", threshold " + strconv.Itoa(int(s.m)) + "}"
}

// Format implements fmt.Formatter: every verb prints String.
func (s EscrowShare) Format(f fmt.State, _ rune) { formatRedacted(f, s.String()) }

// LogValue implements slog.LogValuer.
func (s EscrowShare) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON encodes String, never the share's bytes.
func (s EscrowShare) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }
