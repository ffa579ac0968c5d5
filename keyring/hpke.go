package keyring

import (
	"context"
	"crypto/hpke"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/phicrypt/phicrypt/internal/wire"
)

// HPKEEscrowProviderID is the provider id of the encrypted data keys that
// HPKEEscrow writes. Other ESDKs do not know it and skip such keys, so a
// message may carry one beside its KMS keys.
const HPKEEscrowProviderID = "phicrypt-hpke"

// ErrHPKEEscrowPublicOnly means an escrow keyring made with NewHPKEEscrow
// (the public key only) was asked to unwrap a data key written for its key:
// only custodians, with the private key (NewHPKEEscrowRecovery), can.
var ErrHPKEEscrowPublicOnly = errors.New("keyring: the HPKE escrow keyring holds only the public key and cannot unwrap; custodians unwrap with the escrow private key (NewHPKEEscrowRecovery)")

// The one HPKE suite (RFC 9180 and draft-ietf-hpke-pq identifiers; see
// HPKEEscrow for why this one) and the sizes it fixes.
const (
	hpkeEscrowVersion = 0x01
	hpkeEscrowKEMID   = 0x647A // MLKEM768-X25519
	hpkeEscrowKDFID   = 0x0001 // HKDF-SHA256
	hpkeEscrowAEADID  = 0x0002 // AES-256-GCM

	hpkeEscrowEncSize = 1120 // ML-KEM-768 ciphertext (1088) + X25519 share (32)
	hpkeEscrowTagSize = 16
	// hpkeEscrowInfoHeader is the provider info before the key name:
	// version, KEM, KDF and AEAD ids.
	hpkeEscrowInfoHeader = 7
)

// HPKEEscrowMaxNameLength caps an escrow key name, so that provider info
// stays small and bounded.
const HPKEEscrowMaxNameLength = 255

func hpkeEscrowKEM() hpke.KEM   { return hpke.MLKEM768X25519() }
func hpkeEscrowKDF() hpke.KDF   { return hpke.HKDFSHA256() }
func hpkeEscrowAEAD() hpke.AEAD { return hpke.AES256GCM() }

// HPKEEscrow seals data keys to an escrow public key with HPKE (RFC 9180,
// base mode, single-shot), so that data stays recoverable when KMS access
// is lost. Services carry the encrypt-only side (NewHPKEEscrow, the public
// key) as a Multi child beside their KMS keyring; custodians reassemble the
// private key only to recover (NewHPKEEscrowRecovery). It is safe for
// concurrent use.
//
// The suite is fixed. PHI is kept for decades, so an escrowed data key must
// stay secret against an adversary who records messages now and has a
// quantum computer later:
//
//   - KEM MLKEM768-X25519 (X-Wing, 0x647A): a hybrid that holds while
//     either ML-KEM-768 (FIPS 203, post-quantum, NIST category 3) or X25519
//     (classical, long studied) holds, so neither a flaw in the young
//     lattice scheme nor a quantum computer alone opens the key;
//   - KDF HKDF-SHA256 (0x0001): the hybrid's 32-byte shared secret needs no
//     more, and SHA-256 keeps 128-bit security against quantum search;
//   - AEAD AES-256-GCM (0x0002): a 256-bit key keeps 128-bit security
//     against Grover's search (AES-128 would keep 64), and it is the cipher
//     of every phicrypt message. Each wrapped key is a single-shot HPKE
//     context of its own, so a GCM nonce is never used twice.
//
// The suite ids travel in each key's provider info, so a later suite can
// be told apart; this keyring refuses any other. Each encrypted data key is
//
//	provider id    "phicrypt-hpke" (HPKEEscrowProviderID)
//	provider info  version (01) || KEM id (64 7A) || KDF id (00 01) || AEAD id (00 02) || key name
//	ciphertext     enc (1120 bytes) || AES-256-GCM ciphertext of the data key || 16-byte tag
//
// HPKE's single-shot Seal takes no additional data, so the provider id,
// the provider info and the serialized encryption context go into HPKE's
// info, which the key schedule authenticates: a key moved to another
// message, key name or suite does not open. docs/FORMAT.md, "HPKE escrow
// EDKs", has every byte.
type HPKEEscrow struct {
	name         string
	providerInfo []byte
	pub          hpke.PublicKey
	priv         hpke.PrivateKey // nil: encrypt only
}

// NewHPKEEscrow returns the encrypt-only escrow keyring of a service: it
// wraps every data key to pub under the key name name, and cannot unwrap
// (ErrHPKEEscrowPublicOnly).
func NewHPKEEscrow(name string, pub *HPKEEscrowPublicKey) (*HPKEEscrow, error) {
	if pub == nil || pub.k == nil {
		return nil, errors.New("keyring: NewHPKEEscrow needs the escrow public key")
	}
	return newHPKEEscrow(name, pub.k, nil)
}

// NewHPKEEscrowRecovery returns the custodians' escrow keyring: it unwraps
// the data keys written under name for priv's public key, and wraps as
// NewHPKEEscrow does.
func NewHPKEEscrowRecovery(name string, priv *HPKEEscrowPrivateKey) (*HPKEEscrow, error) {
	if priv == nil || priv.k == nil {
		return nil, errors.New("keyring: NewHPKEEscrowRecovery needs the escrow private key")
	}
	return newHPKEEscrow(name, priv.k.PublicKey(), priv.k)
}

func newHPKEEscrow(name string, pub hpke.PublicKey, priv hpke.PrivateKey) (*HPKEEscrow, error) {
	if name == "" || !utf8.ValidString(name) || len(name) > HPKEEscrowMaxNameLength {
		return nil, fmt.Errorf("keyring: an HPKE escrow key name must be 1 to %d bytes of UTF-8", HPKEEscrowMaxNameLength)
	}
	info := make([]byte, 0, hpkeEscrowInfoHeader+len(name))
	info = append(info, hpkeEscrowVersion)
	info = binary.BigEndian.AppendUint16(info, hpkeEscrowKEMID)
	info = binary.BigEndian.AppendUint16(info, hpkeEscrowKDFID)
	info = binary.BigEndian.AppendUint16(info, hpkeEscrowAEADID)
	info = append(info, name...)
	return &HPKEEscrow{name: name, providerInfo: info, pub: pub, priv: priv}, nil
}

// String names the keyring and its key name, without key material.
func (e HPKEEscrow) String() string {
	if e.priv == nil {
		return "HPKEEscrow(" + e.name + ", public key only)"
	}
	return "HPKEEscrow(" + e.name + ")"
}

// Format implements fmt.Formatter: String whatever the verb.
func (e HPKEEscrow) Format(f fmt.State, _ rune) { formatRedacted(f, e.String()) }

// LogValue implements slog.LogValuer.
func (e HPKEEscrow) LogValue() slog.Value { return slog.StringValue(e.String()) }

// OnEncrypt generates the data key if the materials have none, then seals
// it to the escrow public key.
func (e *HPKEEscrow) OnEncrypt(_ context.Context, m *EncryptionMaterials) error {
	if err := m.checkDataKey(); err != nil {
		return err
	}
	info, err := hpkeEscrowInfo(e.providerInfo, m.EncryptionContext)
	if err != nil {
		return err
	}
	dk := m.DataKey
	if dk == nil {
		dk = make(Secret, m.DataKeyLength)
		rand.Read(dk)
	}
	ct, err := hpke.Seal(e.pub, hpkeEscrowKDF(), hpkeEscrowAEAD(), info, dk)
	if err != nil {
		if m.DataKey == nil {
			dk.Wipe()
		}
		return fmt.Errorf("keyring: %s: sealing the data key: %w", e, err)
	}
	m.DataKey = dk
	m.EncryptedDataKeys = append(m.EncryptedDataKeys,
		EncryptedDataKey{ProviderID: HPKEEscrowProviderID, ProviderInfo: slices.Clone(e.providerInfo), Ciphertext: ct})
	return nil
}

// OnDecrypt tries, in order, every encrypted data key written for this
// keyring's key name. A key of another suite or version under this name,
// or of the wrong length, is refused before HPKE sees it.
func (e *HPKEEscrow) OnDecrypt(_ context.Context, m *DecryptionMaterials, edks []EncryptedDataKey) error {
	if m.DataKey != nil {
		return ErrDataKeyPresent
	}
	var (
		attempts []error
		info     []byte
	)
	want := hpkeEscrowEncSize + m.DataKeyLength + hpkeEscrowTagSize
	for _, edk := range edks {
		mine, err := e.matches(edk)
		if !mine {
			continue
		}
		switch {
		case err != nil:
			attempts = append(attempts, err)
			continue
		case e.priv == nil:
			attempts = append(attempts, publicOnlyError{keyring: e.String()})
			continue
		case len(edk.Ciphertext) != want:
			attempts = append(attempts, fmt.Errorf("%s: the wrapped key is %d bytes; this suite and data key make %d", e, len(edk.Ciphertext), want))
			continue
		}
		if info == nil {
			if info, err = hpkeEscrowInfo(e.providerInfo, m.EncryptionContext); err != nil {
				return err
			}
		}
		dk, err := hpke.Open(e.priv, hpkeEscrowKDF(), hpkeEscrowAEAD(), info, edk.Ciphertext)
		if err != nil || len(dk) != m.DataKeyLength {
			Secret(dk).Wipe()
			attempts = append(attempts, fmt.Errorf("%s: the wrapped key does not open (wrong escrow key or encryption context)", e))
			continue
		}
		m.DataKey = dk
		return nil
	}
	return unwrapError(attempts)
}

// publicOnlyError is ErrHPKEEscrowPublicOnly for one keyring: it reads as
// that keyring's failure (beside the others an unwrap failure lists) and
// matches the sentinel with errors.Is.
type publicOnlyError struct{ keyring string }

func (e publicOnlyError) Error() string {
	return e.keyring + ": " + strings.TrimPrefix(ErrHPKEEscrowPublicOnly.Error(), "keyring: ")
}

func (e publicOnlyError) Unwrap() error { return ErrHPKEEscrowPublicOnly }

// matches reports whether edk is written under this keyring's provider id
// and key name, with an error when it is but its version or suite is not
// the one this keyring reads. An unknown version is refused whatever name
// it carries, since its layout cannot be trusted to place the name.
func (e *HPKEEscrow) matches(edk EncryptedDataKey) (bool, error) {
	if edk.ProviderID != HPKEEscrowProviderID {
		return false, nil
	}
	info := edk.ProviderInfo
	if len(info) < hpkeEscrowInfoHeader {
		return true, fmt.Errorf("%s: an encrypted data key's provider info is %d bytes, shorter than its %d-byte header", e, len(info), hpkeEscrowInfoHeader)
	}
	if info[0] != hpkeEscrowVersion {
		return true, fmt.Errorf("%s: an encrypted data key has provider info version %d; this keyring reads version %d", e, info[0], hpkeEscrowVersion)
	}
	if string(info[hpkeEscrowInfoHeader:]) != e.name {
		return false, nil
	}
	kem, kdf, aead := binary.BigEndian.Uint16(info[1:]), binary.BigEndian.Uint16(info[3:]), binary.BigEndian.Uint16(info[5:])
	if kem != hpkeEscrowKEMID || kdf != hpkeEscrowKDFID || aead != hpkeEscrowAEADID {
		return true, fmt.Errorf("%s: an encrypted data key uses HPKE suite KEM 0x%04X, KDF 0x%04X, AEAD 0x%04X; this keyring reads only KEM 0x%04X (MLKEM768-X25519), KDF 0x%04X (HKDF-SHA256), AEAD 0x%04X (AES-256-GCM)",
			e, kem, kdf, aead, hpkeEscrowKEMID, hpkeEscrowKDFID, hpkeEscrowAEADID)
	}
	return true, nil
}

// hpkeEscrowInfo is HPKE's info for a key with the given provider info
// under the encryption context ec:
//
//	uint16 length || provider id || uint16 length || provider info || serialized ec
//
// with ec serialized as in the message header (wire.AppendContext; nothing
// at all for an empty context). The two length prefixes make the encoding
// unambiguous; the context runs to the end.
func hpkeEscrowInfo(providerInfo []byte, ec map[string]string) ([]byte, error) {
	info := make([]byte, 0, 4+len(HPKEEscrowProviderID)+len(providerInfo)+64)
	info = binary.BigEndian.AppendUint16(info, uint16(len(HPKEEscrowProviderID)))
	info = append(info, HPKEEscrowProviderID...)
	info = binary.BigEndian.AppendUint16(info, uint16(len(providerInfo)))
	info = append(info, providerInfo...)
	info, err := wire.AppendContext(info, ec)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return info, nil
}
