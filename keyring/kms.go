package keyring

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/service/kms"
)

const kmsProviderID = "aws-kms"

// KMSClient is the part of the aws-sdk-go-v2 KMS client the keyrings use;
// *kms.Client satisfies it.
type KMSClient interface {
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Encrypt(ctx context.Context, in *kms.EncryptInput, optFns ...func(*kms.Options)) (*kms.EncryptOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

// KMSConfig configures a strict KMS keyring.
type KMSConfig struct {
	Client KMSClient
	// Generator is the key that makes each message's data key
	// (GenerateDataKey). Empty means the keyring only wraps a data key
	// another keyring made, as a child of a Multi.
	Generator string
	// Keys additionally wrap the data key (Encrypt), for example a key in
	// a second region.
	Keys        []string
	GrantTokens []string
}

// NewKMS returns a keyring over named KMS keys (the ESDK's "strict" AWS KMS
// keyring). On encrypt the generator makes the data key and every other key
// wraps it; on decrypt only encrypted data keys naming one of these keys are
// tried, with that key named in the Decrypt call. Decryption matches by key
// ARN, as the specification requires: a keyring configured with an alias or
// a bare key id encrypts but never decrypts (ErrNoMatchingKey). Name keys by
// ARN for a keyring that decrypts.
func NewKMS(cfg KMSConfig) (Keyring, error) {
	if cfg.Client == nil {
		return nil, errors.New("keyring: KMSConfig.Client is required")
	}
	if cfg.Generator == "" && len(cfg.Keys) == 0 {
		return nil, errors.New("keyring: a KMS keyring needs a Generator or Keys")
	}
	var gen Keyring
	if cfg.Generator != "" {
		gen = &kmsKey{client: cfg.Client, id: cfg.Generator, grants: cfg.GrantTokens}
	}
	var children []Keyring
	for _, id := range cfg.Keys {
		if id == "" {
			return nil, errors.New("keyring: empty KMS key identifier")
		}
		children = append(children, &kmsKey{client: cfg.Client, id: id, grants: cfg.GrantTokens})
	}
	if gen != nil && len(children) == 0 {
		return gen, nil
	}
	return NewMulti(gen, children...)
}

// kmsKey is the strict keyring for one KMS key.
type kmsKey struct {
	client KMSClient
	id     string
	grants []string
}

func (k *kmsKey) String() string { return "KMS(" + k.id + ")" }

func (k *kmsKey) OnEncrypt(ctx context.Context, m *EncryptionMaterials) error {
	if err := m.checkDataKey(); err != nil {
		return err
	}
	if m.DataKey == nil {
		out, err := k.client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
			KeyId: &k.id, NumberOfBytes: int32Ptr(m.DataKeyLength), EncryptionContext: m.EncryptionContext, GrantTokens: k.grants,
		})
		if err != nil {
			return fmt.Errorf("keyring: KMS GenerateDataKey with %s: %w", k.id, err)
		}
		arn := deref(out.KeyId)
		if len(out.Plaintext) != m.DataKeyLength {
			Secret(out.Plaintext).Wipe()
			return fmt.Errorf("keyring: KMS returned a %d-byte data key; want %d", len(out.Plaintext), m.DataKeyLength)
		}
		if _, ok := parseKeyARN(arn); !ok {
			Secret(out.Plaintext).Wipe()
			return errors.New("keyring: KMS GenerateDataKey did not return a key ARN")
		}
		m.DataKey = out.Plaintext
		m.EncryptedDataKeys = append(m.EncryptedDataKeys, EncryptedDataKey{kmsProviderID, []byte(arn), out.CiphertextBlob})
		return nil
	}
	out, err := k.client.Encrypt(ctx, &kms.EncryptInput{
		KeyId: &k.id, Plaintext: m.DataKey, EncryptionContext: m.EncryptionContext, GrantTokens: k.grants,
	})
	if err != nil {
		return fmt.Errorf("keyring: KMS Encrypt with %s: %w", k.id, err)
	}
	arn := deref(out.KeyId)
	if _, ok := parseKeyARN(arn); !ok {
		return errors.New("keyring: KMS Encrypt did not return a key ARN")
	}
	m.EncryptedDataKeys = append(m.EncryptedDataKeys, EncryptedDataKey{kmsProviderID, []byte(arn), out.CiphertextBlob})
	return nil
}

func (k *kmsKey) OnDecrypt(ctx context.Context, m *DecryptionMaterials, edks []EncryptedDataKey) error {
	return kmsUnwrap(ctx, m, edks, k.client, k.grants, func(edk EncryptedDataKey, _ keyARN) bool {
		return string(edk.ProviderInfo) == k.id
	})
}

// kmsUnwrap tries, in order, the aws-kms EDKs that want accepts, asking KMS
// to decrypt each with the key its provider info names. An aws-kms EDK that
// does not name a key ARN fails the whole call, as the specification
// requires.
func kmsUnwrap(ctx context.Context, m *DecryptionMaterials, edks []EncryptedDataKey, c KMSClient, grants []string,
	want func(EncryptedDataKey, keyARN) bool) error {
	if m.DataKey != nil {
		return ErrDataKeyPresent
	}
	var attempts []error
	for _, edk := range edks {
		if edk.ProviderID != kmsProviderID {
			continue
		}
		arn, ok := parseKeyARN(string(edk.ProviderInfo))
		if !ok || arn.resourceType != "key" {
			return errors.New("keyring: an aws-kms encrypted data key does not name a KMS key ARN")
		}
		if !want(edk, arn) {
			continue
		}
		dk, err := kmsDecrypt(ctx, c, string(edk.ProviderInfo), edk, m, grants)
		if err != nil {
			attempts = append(attempts, err)
			continue
		}
		m.DataKey = dk
		return nil
	}
	return unwrapError(attempts)
}

// kmsDecrypt asks KMS to unwrap one EDK with the key named keyID and checks
// the answer as the ESDK specification requires.
func kmsDecrypt(ctx context.Context, c KMSClient, keyID string, edk EncryptedDataKey, m *DecryptionMaterials, grants []string) (Secret, error) {
	out, err := c.Decrypt(ctx, &kms.DecryptInput{
		KeyId: &keyID, CiphertextBlob: edk.Ciphertext, EncryptionContext: m.EncryptionContext, GrantTokens: grants,
	})
	if err != nil {
		return nil, fmt.Errorf("KMS Decrypt with %s: %w", keyID, err)
	}
	if deref(out.KeyId) != keyID || len(out.Plaintext) != m.DataKeyLength {
		Secret(out.Plaintext).Wipe()
		return nil, fmt.Errorf("KMS Decrypt with %s answered for another key or with a wrong-length key", keyID)
	}
	return out.Plaintext, nil
}

// DiscoveryFilter limits a discovery keyring to keys of one partition and
// some accounts.
type DiscoveryFilter struct {
	Partition  string
	AccountIDs []string
}

// KMSDiscoveryConfig configures a discovery keyring.
type KMSDiscoveryConfig struct {
	Client KMSClient
	// Filter, when set, limits the keys tried. Without it the keyring asks
	// KMS to decrypt with whatever key each encrypted data key names, which
	// is only safe when KMS key policies are the whole access control.
	Filter      *DiscoveryFilter
	GrantTokens []string
}

// NewKMSDiscovery returns a decrypt-only keyring that unwraps with the key
// each aws-kms encrypted data key names (the ESDK's "discovery" keyring).
func NewKMSDiscovery(cfg KMSDiscoveryConfig) (Keyring, error) {
	if cfg.Client == nil {
		return nil, errors.New("keyring: KMSDiscoveryConfig.Client is required")
	}
	if f := cfg.Filter; f != nil && (f.Partition == "" || len(f.AccountIDs) == 0 || slices.Contains(f.AccountIDs, "")) {
		return nil, errors.New("keyring: a discovery filter needs a partition and non-empty account ids")
	}
	return &kmsDiscovery{cfg: cfg}, nil
}

type kmsDiscovery struct{ cfg KMSDiscoveryConfig }

func (d *kmsDiscovery) String() string { return "KMSDiscovery" }

func (d *kmsDiscovery) OnEncrypt(context.Context, *EncryptionMaterials) error {
	return errors.New("keyring: a KMS discovery keyring cannot encrypt; name keys with NewKMS")
}

func (d *kmsDiscovery) OnDecrypt(ctx context.Context, m *DecryptionMaterials, edks []EncryptedDataKey) error {
	return kmsUnwrap(ctx, m, edks, d.cfg.Client, d.cfg.GrantTokens, func(_ EncryptedDataKey, arn keyARN) bool {
		f := d.cfg.Filter
		return f == nil || arn.partition == f.Partition && slices.Contains(f.AccountIDs, arn.account)
	})
}

func int32Ptr(n int) *int32 {
	v := int32(n)
	return &v
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
