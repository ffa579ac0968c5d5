package keyring

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrNoPrivateKey means a raw RSA keyring was asked to unwrap a data key of
// its namespace and name but holds only the public key: such a keyring
// (the escrow copy a service writes) encrypts and never decrypts.
// Decrypt with a keyring made from the private key.
var ErrNoPrivateKey = errors.New("keyring: the raw RSA keyring holds only a public key: it encrypts but cannot decrypt")

// RSAPadding is the RSA padding a raw RSA keyring wraps data keys with, one
// of those the ESDK's raw RSA keyring specification defines. The zero value
// is not a padding.
type RSAPadding uint8

const (
	_ RSAPadding = iota
	// RSAPaddingPKCS1v15 is PKCS #1 v1.5 encryption padding (RFC 8017,
	// section 7.2), accepted only to read messages other ESDKs wrote with
	// it: a keyring with this padding decrypts and refuses to encrypt.
	RSAPaddingPKCS1v15
	// RSAPaddingOAEPSHA1 is OAEP with SHA-1 and MGF1 with SHA-1.
	RSAPaddingOAEPSHA1
	// RSAPaddingOAEPSHA256 is OAEP with SHA-256 and MGF1 with SHA-256, the
	// padding to choose for new escrow keys.
	RSAPaddingOAEPSHA256
	// RSAPaddingOAEPSHA384 is OAEP with SHA-384 and MGF1 with SHA-384.
	RSAPaddingOAEPSHA384
	// RSAPaddingOAEPSHA512 is OAEP with SHA-512 and MGF1 with SHA-512.
	RSAPaddingOAEPSHA512
)

// String names the padding as the ESDK's specification lists it.
func (p RSAPadding) String() string {
	switch p {
	case RSAPaddingPKCS1v15:
		return "PKCS1v15"
	case RSAPaddingOAEPSHA1:
		return "OAEP-SHA1-MGF1"
	case RSAPaddingOAEPSHA256:
		return "OAEP-SHA256-MGF1"
	case RSAPaddingOAEPSHA384:
		return "OAEP-SHA384-MGF1"
	case RSAPaddingOAEPSHA512:
		return "OAEP-SHA512-MGF1"
	}
	return "RSAPadding(" + strconv.Itoa(int(p)) + ")"
}

// newHash returns a fresh hash of an OAEP padding, nil for PKCS #1 v1.5
// and unknown values. The specification asks MGF1 to use the same hash
// as OAEP, which is what rsa.EncryptOAEP and rsa.DecryptOAEP do with it.
func (p RSAPadding) newHash() hash.Hash {
	switch p {
	case RSAPaddingOAEPSHA1:
		return sha1.New()
	case RSAPaddingOAEPSHA256:
		return sha256.New()
	case RSAPaddingOAEPSHA384:
		return sha512.New384()
	case RSAPaddingOAEPSHA512:
		return sha512.New()
	}
	return nil
}

// Bounds on the RSA keys a raw RSA keyring takes. Below 2048 bits RSA no
// longer meets NIST SP 800-131A; above 16384 bits each unwrap takes
// seconds, and no standard asks for more.
const (
	rawRSAMinBits = 2048
	rawRSAMaxBits = 16384
)

// RawRSAConfig configures a raw RSA keyring. Namespace, Name and Padding
// are required, and at least one of the keys.
//
// A service that writes escrow copies holds only PublicKey; the
// custodians who recover data hold PrivateKey. As the ESDK's
// specification requires, the keyring never derives the public key from
// the private key: give both to encrypt and decrypt with one keyring.
type RawRSAConfig struct {
	// Namespace is the key namespace, written as each encrypted data
	// key's provider id. It must not be or start with "aws-kms".
	Namespace string
	// Name is the key name, written as each encrypted data key's provider
	// info; decryption tries only the encrypted data keys whose namespace
	// and name are the keyring's.
	Name string
	// PublicKey wraps data keys (2048 to 16384 bits).
	PublicKey *rsa.PublicKey
	// PrivateKey unwraps them. It must have two primes (multi-prime keys
	// are refused: their decryption is not constant-time). The keyring
	// keeps it: do not modify it afterwards.
	PrivateKey *rsa.PrivateKey
	// Padding is the RSA padding, which must be the one the keys were
	// used with: an encrypted data key does not record it.
	Padding RSAPadding
}

// RawRSA wraps data keys with an RSA key pair the caller holds, in the AWS
// Encryption SDK's raw RSA keyring format (framework/raw-rsa-keyring.md):
//
//	provider id    the key namespace
//	provider info  the key name
//	ciphertext     the RSA encryption of the data key (as long as the modulus)
//
// Unlike the raw AES keyring, the raw RSA keyring does not bind the
// encryption context to the wrapped key (the specification gives RSA
// nothing to bind it with); the message header authenticates the context
// under the data key instead, so a context changed in the header still
// fails the message. Keys of the same namespace, name and padding in
// another ESDK read what it writes.
//
// Its use here is escrow: in a Multi beside a KMS generator, a keyring
// holding only the public key adds a copy of every data key that the
// private key's holders can unwrap when KMS access is lost.
//
// With RSAPaddingPKCS1v15 (read-only), the unwrap is done as RFC 3218
// section 2.3.2 advises against Bleichenbacher's attack
// (rsa.DecryptPKCS1v15SessionKey): a wrapped key whose padding is wrong
// yields a random data key instead of an error, so the message then fails
// its header authentication exactly as under a wrong key, and no caller
// learns which check failed. Such a keyring therefore takes the first
// encrypted data key of its namespace and name (and of the modulus's
// length) and does not try others: give each RSA key its own name. For the
// same reason it never fails over: in a Multi, put a PKCS #1 v1.5 keyring
// after every other child, since the children after it are not tried once
// it has answered (with a random key when the key was not its own).
type RawRSA struct {
	namespace string
	name      string
	padding   RSAPadding
	pub       *rsa.PublicKey
	priv      *rsa.PrivateKey
}

// NewRawRSA returns a raw RSA keyring. It refuses a missing or reserved
// namespace or name, an unknown padding, a key outside 2048 to 16384 bits,
// a public key that is not the private key's, and a public key with
// RSAPaddingPKCS1v15 (which only reads).
func NewRawRSA(cfg RawRSAConfig) (*RawRSA, error) {
	if err := checkRawRSANames(cfg.Namespace, cfg.Name); err != nil {
		return nil, err
	}
	if cfg.Padding < RSAPaddingPKCS1v15 || cfg.Padding > RSAPaddingOAEPSHA512 {
		return nil, fmt.Errorf("keyring: unknown raw RSA padding %v (use RSAPaddingOAEPSHA256 for new keys)", cfg.Padding)
	}
	if cfg.PublicKey == nil && cfg.PrivateKey == nil {
		return nil, errors.New("keyring: a raw RSA keyring needs a public key (to encrypt), a private key (to decrypt) or both")
	}
	if cfg.Padding == RSAPaddingPKCS1v15 && cfg.PublicKey != nil {
		return nil, errors.New("keyring: RSA PKCS #1 v1.5 padding only reads old messages (new data keys need OAEP): give the private key alone")
	}
	r := &RawRSA{namespace: cfg.Namespace, name: cfg.Name, padding: cfg.Padding}
	if cfg.PublicKey != nil {
		if err := checkRSAPublicKey(cfg.PublicKey); err != nil {
			return nil, err
		}
		// A copy: the caller's key may change; the keyring's may not.
		r.pub = &rsa.PublicKey{N: new(big.Int).Set(cfg.PublicKey.N), E: cfg.PublicKey.E}
	}
	if cfg.PrivateKey != nil {
		if err := checkRSAPrivateKey(cfg.PrivateKey); err != nil {
			return nil, err
		}
		if cfg.PublicKey != nil && !cfg.PrivateKey.PublicKey.Equal(cfg.PublicKey) {
			return nil, errors.New("keyring: the raw RSA public key is not the private key's")
		}
		r.priv = cfg.PrivateKey
	}
	return r, nil
}

func checkRawRSANames(namespace, name string) error {
	if namespace == "" || name == "" || !utf8.ValidString(namespace) || !utf8.ValidString(name) {
		return errors.New("keyring: raw RSA key namespace and name must be non-empty UTF-8")
	}
	if strings.HasPrefix(namespace, kmsProviderID) {
		return errors.New(`keyring: the key namespace "aws-kms" is reserved for AWS KMS keyrings`)
	}
	// Both are written with a 2-byte length in the message header.
	if len(namespace) > 0xffff || len(name) > 0xffff {
		return errors.New("keyring: raw RSA key namespace or name is too long")
	}
	return nil
}

func checkRSAPublicKey(pub *rsa.PublicKey) error {
	if pub.N == nil || pub.N.Sign() <= 0 {
		return errors.New("keyring: the raw RSA public key has no modulus")
	}
	if bits := pub.N.BitLen(); bits < rawRSAMinBits || bits > rawRSAMaxBits {
		return fmt.Errorf("keyring: a raw RSA key must have %d to %d bits, not %d", rawRSAMinBits, rawRSAMaxBits, bits)
	}
	if pub.E < 3 || pub.E%2 == 0 {
		return errors.New("keyring: the raw RSA public exponent must be odd and at least 3")
	}
	return nil
}

func checkRSAPrivateKey(priv *rsa.PrivateKey) error {
	if err := checkRSAPublicKey(&priv.PublicKey); err != nil {
		return err
	}
	if len(priv.Primes) != 2 {
		return errors.New("keyring: a raw RSA private key must have two primes (multi-prime keys do not decrypt in constant time)")
	}
	// rsa's own errors name the failing check, never the key's values.
	if err := priv.Validate(); err != nil {
		return fmt.Errorf("keyring: invalid raw RSA private key: %w", err)
	}
	return nil
}

// String names the keyring and its padding, without its keys.
func (r RawRSA) String() string {
	return "RawRSA(" + r.namespace + "/" + r.name + ", " + r.padding.String() + ")"
}

// Format implements fmt.Formatter: String whatever the verb.
func (r RawRSA) Format(f fmt.State, _ rune) { formatRedacted(f, r.String()) }

// LogValue implements slog.LogValuer.
func (r RawRSA) LogValue() slog.Value { return slog.StringValue(r.String()) }

// OnEncrypt generates the data key if the materials have none, then wraps
// it with the public key.
func (r *RawRSA) OnEncrypt(_ context.Context, m *EncryptionMaterials) error {
	if r.pub == nil {
		return fmt.Errorf("keyring: %s holds no public key: it decrypts but cannot encrypt", r)
	}
	if err := m.checkDataKey(); err != nil {
		return err
	}
	dk := m.DataKey
	if dk == nil {
		dk = make(Secret, m.DataKeyLength)
		rand.Read(dk)
	}
	ct, err := rsa.EncryptOAEP(r.padding.newHash(), rand.Reader, r.pub, dk, nil)
	if err != nil {
		if m.DataKey == nil {
			dk.Wipe()
		}
		return fmt.Errorf("keyring: %s cannot wrap a %d-byte data key: %w", r, len(dk), err)
	}
	m.DataKey = dk
	m.EncryptedDataKeys = append(m.EncryptedDataKeys, EncryptedDataKey{ProviderID: r.namespace, ProviderInfo: []byte(r.name), Ciphertext: ct})
	return nil
}

// OnDecrypt unwraps the first encrypted data key of the keyring's namespace
// and name that opens (with OAEP, it tries each in order; with PKCS #1 v1.5
// it takes the first, see RawRSA).
func (r *RawRSA) OnDecrypt(_ context.Context, m *DecryptionMaterials, edks []EncryptedDataKey) error {
	if m.DataKey != nil {
		return ErrDataKeyPresent
	}
	var attempts []error
	for _, edk := range edks {
		if edk.ProviderID != r.namespace || string(edk.ProviderInfo) != r.name {
			continue
		}
		if r.priv == nil {
			return wrapStep(ErrNoPrivateKey, "%s", r)
		}
		// The one size an attacker could choose: an RSA ciphertext is
		// exactly as long as the modulus.
		if len(edk.Ciphertext) != r.priv.Size() {
			attempts = append(attempts, fmt.Errorf("%s: the wrapped key is %d bytes; this key's are %d", r, len(edk.Ciphertext), r.priv.Size()))
			continue
		}
		dk, err := r.unwrap(edk.Ciphertext, m.DataKeyLength)
		if err != nil {
			attempts = append(attempts, err)
			continue
		}
		m.DataKey = dk
		return nil
	}
	return unwrapError(attempts)
}

// unwrap decrypts one wrapped key of the modulus's length into a data key
// of n bytes.
func (r *RawRSA) unwrap(ct []byte, n int) (Secret, error) {
	if r.padding == RSAPaddingPKCS1v15 {
		// A short session key could be guessed, and the guess would tell
		// a random key from the real one; every ESDK suite has 16 or more.
		if n < 16 {
			return nil, fmt.Errorf("%s: PKCS #1 v1.5 unwraps only data keys of 16 bytes or more, not %d", r, n)
		}
		// RFC 3218 section 2.3.2: start from a random key, which the
		// function replaces, in constant time, only if the padding is
		// right and the key n bytes long. Its error covers only what is
		// public (the ciphertext's length and range, n against the
		// modulus), so it tells an attacker nothing.
		dk := make(Secret, n)
		rand.Read(dk)
		//lint:ignore SA1019 PKCS #1 v1.5 is only read, as the ESDK's raw RSA keyring specification requires, and through the session-key API meant for this.
		if err := rsa.DecryptPKCS1v15SessionKey(nil, r.priv, ct, dk); err != nil {
			dk.Wipe()
			return nil, fmt.Errorf("%s: the wrapped key is not an RSA ciphertext of this key", r)
		}
		return dk, nil
	}
	dk, err := rsa.DecryptOAEP(r.padding.newHash(), nil, r.priv, ct, nil)
	if err != nil || len(dk) != n {
		Secret(dk).Wipe()
		return nil, fmt.Errorf("%s: the wrapped key does not open (wrong key or padding)", r)
	}
	return dk, nil
}

// describe is RawRSAConfig's printed form: names, padding and key sizes,
// never a key's numbers.
func (c RawRSAConfig) describe() string {
	pub, priv := "no public key", "no private key"
	if c.PublicKey != nil && c.PublicKey.N != nil {
		pub = "public key " + strconv.Itoa(c.PublicKey.N.BitLen()) + " bits"
	}
	if c.PrivateKey != nil {
		priv = "private key " + redacted
	}
	return "RawRSAConfig{" + c.Namespace + "/" + c.Name + ", " + c.Padding.String() + ", " + pub + ", " + priv + "}"
}

// Format implements fmt.Formatter: the names, padding and key size,
// whatever the verb; the private key shows as [REDACTED].
func (c RawRSAConfig) Format(f fmt.State, _ rune) { formatRedacted(f, c.describe()) }

// MarshalJSON implements json.Marshaler with what Format shows.
func (c RawRSAConfig) MarshalJSON() ([]byte, error) { return json.Marshal(c.describe()) }

// LogValue implements slog.LogValuer.
func (c RawRSAConfig) LogValue() slog.Value { return slog.StringValue(c.describe()) }
