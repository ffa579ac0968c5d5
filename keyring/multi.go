package keyring

import (
	"context"
	"errors"
)

// Multi combines keyrings (framework/multi-keyring.md): on encrypt the
// generator makes the data key and every child wraps it too, so any one of
// them can later unwrap it; on decrypt they are tried in turn, generator
// first, until one succeeds.
type Multi struct {
	generator Keyring
	children  []Keyring
}

// NewMulti returns a multi-keyring. generator may be nil when the keyring is
// only used to decrypt, or when the data key comes from elsewhere.
func NewMulti(generator Keyring, children ...Keyring) (*Multi, error) {
	if generator == nil && len(children) == 0 {
		return nil, errors.New("keyring: a multi-keyring needs a generator or children")
	}
	for _, c := range children {
		if c == nil {
			return nil, errors.New("keyring: nil child keyring")
		}
	}
	return &Multi{generator: generator, children: children}, nil
}

// OnEncrypt runs the generator, then every child. Any failure fails the
// whole call and leaves m as it was.
func (mk *Multi) OnEncrypt(ctx context.Context, m *EncryptionMaterials) error {
	work := *m
	work.EncryptedDataKeys = append([]EncryptedDataKey(nil), m.EncryptedDataKeys...)
	if mk.generator != nil {
		if err := mk.generator.OnEncrypt(ctx, &work); err != nil {
			return err
		}
		if work.DataKey == nil {
			return errors.New("keyring: the generator made no data key")
		}
	} else if work.DataKey == nil {
		return errors.New("keyring: a multi-keyring without a generator needs materials that already hold a data key")
	}
	for _, c := range mk.children {
		if err := c.OnEncrypt(ctx, &work); err != nil {
			if m.DataKey == nil {
				work.DataKey.Wipe()
			}
			return err
		}
	}
	*m = work
	return nil
}

// OnDecrypt tries the generator and then each child until one unwraps a key.
func (mk *Multi) OnDecrypt(ctx context.Context, m *DecryptionMaterials, edks []EncryptedDataKey) error {
	if m.DataKey != nil {
		return ErrDataKeyPresent
	}
	var attempts []error
	all := mk.children
	if mk.generator != nil {
		all = append([]Keyring{mk.generator}, all...)
	}
	for _, k := range all {
		err := k.OnDecrypt(ctx, m, edks)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrNoMatchingKey) {
			attempts = append(attempts, err)
		}
	}
	return unwrapError(attempts)
}
