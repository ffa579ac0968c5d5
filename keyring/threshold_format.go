package keyring

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
)

// The threshold keyring's encrypted data keys (docs/FORMAT.md, "Threshold
// keyring EDKs"): one per share, under provider id ThresholdProviderID.
//
//	provider info  version (1) || group id (16) || M (1) || N (1) || share index x (1)
//	ciphertext     key check (32) || child EDK count c (1) ||
//	               c × (uint16 len || provider id || uint16 len || provider info || uint16 len || ciphertext)
//
// The key check is HMAC-SHA-256, keyed by the data key, over
// thresholdCheckLabel and the provider info's first 19 bytes (version,
// group id, M, N): the same in every share of a message.

// ThresholdProviderID is the provider id of the threshold keyring's
// encrypted data keys. Other ESDK implementations skip EDKs of a provider
// id they do not know.
const ThresholdProviderID = "phicrypt-threshold"

const (
	thresholdVersion      = 1
	thresholdGroupIDLen   = 16
	thresholdInfoLen      = 1 + thresholdGroupIDLen + 3
	thresholdCheckLen     = sha256.Size
	thresholdMaxChildEDKs = 8      // EDKs one child keyring may make for its share
	thresholdMaxEDKBytes  = 0xffff // what one EDK field of the message header holds
	thresholdCheckLabel   = "phicrypt-threshold key check v1"
)

// thresholdShare is one parsed threshold EDK.
type thresholdShare struct {
	groupID  [thresholdGroupIDLen]byte
	m, n, x  int
	check    []byte
	children []EncryptedDataKey // the child keyring's EDKs of this share
}

// thresholdInfo returns the provider info of share x of group (the first
// 19 bytes are also the key check's input).
func thresholdInfo(group [thresholdGroupIDLen]byte, m, n, x int) []byte {
	info := make([]byte, 0, thresholdInfoLen)
	info = append(info, thresholdVersion)
	info = append(info, group[:]...)
	return append(info, byte(m), byte(n), byte(x))
}

// thresholdKeyCheck is HMAC-SHA-256(dataKey, label || version || group id || M || N).
func thresholdKeyCheck(dataKey []byte, groupInfo []byte) []byte {
	mac := hmac.New(sha256.New, dataKey)
	mac.Write([]byte(thresholdCheckLabel))
	mac.Write(groupInfo[:thresholdInfoLen-1])
	return mac.Sum(nil)
}

// marshalThresholdCiphertext lays out a share's ciphertext.
func marshalThresholdCiphertext(check []byte, children []EncryptedDataKey) ([]byte, error) {
	if len(children) == 0 || len(children) > thresholdMaxChildEDKs {
		return nil, fmt.Errorf("a child keyring made %d encrypted data keys for its share; 1 to %d fit", len(children), thresholdMaxChildEDKs)
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddBytes(check)
	b.AddUint8(uint8(len(children)))
	for _, c := range children {
		if c.ProviderID == "" || !utf8.ValidString(c.ProviderID) {
			return nil, errors.New("a child keyring made an encrypted data key with an empty or non-UTF-8 provider id")
		}
		for _, field := range [][]byte{[]byte(c.ProviderID), c.ProviderInfo, c.Ciphertext} {
			if len(field) > 0xffff {
				return nil, errors.New("a child keyring made an encrypted data key with a field over 65535 bytes")
			}
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(field) })
		}
	}
	out, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	if len(out) > thresholdMaxEDKBytes {
		return nil, fmt.Errorf("a share's encrypted data key would be %d bytes; a message holds at most %d", len(out), thresholdMaxEDKBytes)
	}
	return out, nil
}

// parseThresholdShare parses a threshold EDK. It reports ok = false, with
// no error, for an EDK of a threshold keyring with another number of
// children (not this keyring's); an error means the EDK is malformed.
func parseThresholdShare(edk EncryptedDataKey, children int) (s thresholdShare, ok bool, err error) {
	info := edk.ProviderInfo
	if len(info) == 0 || info[0] != thresholdVersion {
		v := -1
		if len(info) > 0 {
			v = int(info[0])
		}
		return s, false, fmt.Errorf("a share's format version is %d; this keyring reads version %d", v, thresholdVersion)
	}
	if len(info) != thresholdInfoLen {
		return s, false, fmt.Errorf("a share's provider info is %d bytes, not %d", len(info), thresholdInfoLen)
	}
	copy(s.groupID[:], info[1:1+thresholdGroupIDLen])
	s.m, s.n, s.x = int(info[17]), int(info[18]), int(info[19])
	if s.n != children {
		return s, false, nil
	}
	if s.m < 2 || s.m > s.n || s.x < 1 || s.x > s.n {
		return s, false, fmt.Errorf("a share says it is share %d of %d with threshold %d", s.x, s.n, s.m)
	}
	if s.check, s.children, err = parseThresholdCiphertext(edk.Ciphertext); err != nil {
		return s, false, fmt.Errorf("share %d: %w", s.x, err)
	}
	return s, true, nil
}

func parseThresholdCiphertext(ct []byte) (check []byte, children []EncryptedDataKey, err error) {
	in := cryptobyte.String(ct)
	var count uint8
	if !in.ReadBytes(&check, thresholdCheckLen) || !in.ReadUint8(&count) {
		return nil, nil, errors.New("the encrypted data key is cut short")
	}
	if count == 0 || count > thresholdMaxChildEDKs {
		return nil, nil, fmt.Errorf("the encrypted data key holds %d child keys; 1 to %d are allowed", count, thresholdMaxChildEDKs)
	}
	for range count {
		var id, info, body cryptobyte.String
		if !in.ReadUint16LengthPrefixed(&id) || !in.ReadUint16LengthPrefixed(&info) || !in.ReadUint16LengthPrefixed(&body) {
			return nil, nil, errors.New("the encrypted data key is cut short")
		}
		if len(id) == 0 || !utf8.Valid(id) {
			return nil, nil, errors.New("a child key has an empty or non-UTF-8 provider id")
		}
		children = append(children, EncryptedDataKey{ProviderID: string(id), ProviderInfo: info, Ciphertext: body})
	}
	if !in.Empty() {
		return nil, nil, fmt.Errorf("%d bytes follow the encrypted data key", len(in))
	}
	return check, children, nil
}
