package keyring

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"strconv"
	"time"

	"github.com/phicrypt/phicrypt/internal/shamir"
)

// ThresholdConfig configures a threshold keyring.
type ThresholdConfig struct {
	// Threshold is M, how many shares recover the data key: at least 2
	// (a threshold of 1 would let any one child open every message; use
	// Multi for that) and at most len(Children).
	Threshold int
	// Children wrap one share each, in order: share i (1 to N) by
	// Children[i-1]. N = len(Children), at most 255. Decryption asks
	// Children[i-1] for share i, so a keyring that reads must list the same
	// keyrings in the same order as the one that wrote (a child that can
	// no longer unwrap, say a KMS key the reader may not use, only makes
	// its share unavailable). Each child should be a key in the hands of a
	// different custodian; the same keyring twice is refused.
	Children []Keyring
}

// Threshold splits each message's data key M-of-N with Shamir's secret
// sharing over GF(2^8) and has each of N child keyrings wrap one share, so
// that any M of the children, and no fewer, can unwrap the data key: no one
// custodian's key opens a message. It writes one encrypted data key per
// share, under its own provider id (ThresholdProviderID; the format is in
// docs/FORMAT.md), so a message carries N of them: raise
// phicrypt.Config.MaxEncryptedDataKeys (default 5) to at least N plus the
// encrypted data keys of any other keyring the message is written for,
// on the writer and on every reader.
//
// Every share of a message carries a random group id, which binds the
// shares of one message together, and a key check (HMAC-SHA-256 keyed by
// the data key over the group), so a data key combined from shares that
// do not belong together is refused instead of returned.
type Threshold struct {
	m        int
	children []Keyring
}

var (
	// ErrThresholdShares means fewer than the threshold of one message's
	// shares could be unwrapped: too few child keyrings could (a disabled
	// key, denied access), or the message holds too few shares. The
	// error lists why each share failed.
	ErrThresholdShares = errors.New("keyring: fewer shares of the data key could be unwrapped than the threshold needs")
	// ErrThresholdTampered means a threshold share is corrupt or was
	// altered: an encrypted data key does not parse, shares of one group
	// disagree on the threshold, the key check or their indexes, or the
	// shares combine to a key that fails the message's key check.
	ErrThresholdTampered = errors.New("keyring: a threshold share is corrupt or was altered")
	// ErrThresholdMixed means the message's threshold shares come from
	// different messages (they carry different group ids): enough shares
	// were there, but no one message's shares reach the threshold.
	ErrThresholdMixed = errors.New("keyring: the threshold shares come from different messages")
)

// NewThreshold returns a threshold keyring. It refuses a threshold below 2
// or above the number of children, more than 255 children, and a nil or
// repeated child.
func NewThreshold(cfg ThresholdConfig) (*Threshold, error) {
	n := len(cfg.Children)
	switch {
	case cfg.Threshold < 2:
		return nil, fmt.Errorf("keyring: a threshold keyring needs a threshold of at least 2, not %d (one share alone would open every message: use Multi)", cfg.Threshold)
	case n < cfg.Threshold:
		return nil, fmt.Errorf("keyring: a threshold of %d needs at least %d child keyrings; there are %d", cfg.Threshold, cfg.Threshold, n)
	case n > shamir.MaxShares:
		return nil, fmt.Errorf("keyring: a threshold keyring has at most %d child keyrings, not %d", shamir.MaxShares, n)
	}
	for i, c := range cfg.Children {
		if c == nil {
			return nil, fmt.Errorf("keyring: threshold child keyring %d is nil", i+1)
		}
		for j := range i {
			if sameKeyring(cfg.Children[j], c) {
				return nil, fmt.Errorf("keyring: threshold child keyrings %d and %d are the same keyring (one custodian would hold two shares)", j+1, i+1)
			}
		}
	}
	return &Threshold{m: cfg.Threshold, children: append([]Keyring(nil), cfg.Children...)}, nil
}

// sameKeyring reports whether a and b are the same value (the same
// pointer, for the keyrings of this package); values of types that cannot
// be compared are taken to differ.
func sameKeyring(a, b Keyring) bool {
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	return ta == tb && ta.Comparable() && a == b
}

// String names the keyring by its threshold, without its children.
func (t Threshold) String() string {
	return "Threshold(" + strconv.Itoa(t.m) + " of " + strconv.Itoa(len(t.children)) + ")"
}

// OnEncrypt generates the data key if the materials have none, splits it
// into N shares, has each child wrap its share (in order, one after
// another) under the materials' encryption context, and appends one
// encrypted data key per share. Any failure fails the whole call and
// leaves m as it was.
func (t *Threshold) OnEncrypt(ctx context.Context, m *EncryptionMaterials) error {
	if err := m.checkDataKey(); err != nil {
		return err
	}
	if m.DataKeyLength < 1 || m.DataKeyLength > shamir.MaxSecretLength {
		return fmt.Errorf("keyring: the threshold keyring cannot split a %d-byte data key", m.DataKeyLength)
	}
	dk := m.DataKey
	if dk == nil {
		dk = make(Secret, m.DataKeyLength)
		rand.Read(dk)
	}
	edks, validFor, err := t.wrapShares(ctx, m, dk)
	if err != nil {
		if m.DataKey == nil {
			dk.Wipe()
		}
		return err
	}
	m.DataKey = dk
	m.EncryptedDataKeys = append(m.EncryptedDataKeys[:len(m.EncryptedDataKeys):len(m.EncryptedDataKeys)], edks...)
	for _, d := range validFor {
		m.LimitValidity(d)
	}
	return nil
}

// wrapShares splits dk and has each child wrap its share. It returns the
// EDKs and the validity bounds the children set.
func (t *Threshold) wrapShares(ctx context.Context, m *EncryptionMaterials, dk Secret) ([]EncryptedDataKey, []time.Duration, error) {
	n := len(t.children)
	shares, err := shamir.Split(dk, n, t.m)
	if err != nil {
		return nil, nil, fmt.Errorf("keyring: splitting the data key: %w", err)
	}
	defer func() {
		for _, s := range shares {
			clear(s.Y)
		}
	}()
	var group [thresholdGroupIDLen]byte
	rand.Read(group[:])
	check := thresholdKeyCheck(dk, thresholdInfo(group, t.m, n, 0))
	edks := make([]EncryptedDataKey, 0, n)
	var validFor []time.Duration
	for i, child := range t.children {
		x := i + 1
		childEDKs, d, err := wrapShare(ctx, child, m, shares[i].Y)
		if err != nil {
			return nil, nil, wrapStep(err, "threshold child keyring %d of %d wrapping its share", x, n)
		}
		ct, err := marshalThresholdCiphertext(check, childEDKs)
		if err != nil {
			return nil, nil, fmt.Errorf("keyring: threshold share %d: %w", x, err)
		}
		edks = append(edks, EncryptedDataKey{ProviderID: ThresholdProviderID, ProviderInfo: thresholdInfo(group, t.m, n, x), Ciphertext: ct})
		if d > 0 {
			validFor = append(validFor, d)
		}
	}
	return edks, validFor, nil
}

// wrapShare has child wrap share as the data key of materials like m's
// (same suite and encryption context, no EDKs yet) and returns the EDKs it
// made and the validity bound it set.
func wrapShare(ctx context.Context, child Keyring, m *EncryptionMaterials, share []byte) ([]EncryptedDataKey, time.Duration, error) {
	cm := &EncryptionMaterials{SuiteID: m.SuiteID, DataKeyLength: len(share),
		EncryptionContext: maps.Clone(m.EncryptionContext), DataKey: Secret(append([]byte(nil), share...))}
	defer cm.DataKey.Wipe()
	if err := child.OnEncrypt(ctx, cm); err != nil {
		return nil, 0, err
	}
	if subtle.ConstantTimeCompare(cm.DataKey, share) != 1 {
		return nil, 0, errors.New("keyring: the child keyring replaced the share it was given")
	}
	if len(cm.EncryptedDataKeys) == 0 {
		return nil, 0, errors.New("keyring: the child keyring made no encrypted data key")
	}
	return cm.EncryptedDataKeys, cm.ValidFor, nil
}

// Format implements fmt.Formatter: String whatever the verb.
func (t Threshold) Format(f fmt.State, _ rune) { formatRedacted(f, t.String()) }

// LogValue implements slog.LogValuer.
func (t Threshold) LogValue() slog.Value { return slog.StringValue(t.String()) }

// String describes the configuration by its threshold and number of
// children, never the children themselves (a keyring of the caller's own
// might print its key).
func (c ThresholdConfig) String() string {
	return "ThresholdConfig{" + strconv.Itoa(c.Threshold) + " of " + strconv.Itoa(len(c.Children)) + "}"
}

// Format implements fmt.Formatter: String whatever the verb.
func (c ThresholdConfig) Format(f fmt.State, _ rune) { formatRedacted(f, c.String()) }

// MarshalJSON implements json.Marshaler with what String shows.
func (c ThresholdConfig) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// LogValue implements slog.LogValuer.
func (c ThresholdConfig) LogValue() slog.Value { return slog.StringValue(c.String()) }
