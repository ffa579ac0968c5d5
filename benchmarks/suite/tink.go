package suite

import (
	"context"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/tink-crypto/tink-go/v2/aead"
	aeadsubtle "github.com/tink-crypto/tink-go/v2/aead/subtle"
)

func tinkAEAD(b *testing.B, env *Env) *aeadsubtle.AESGCM {
	a, err := aeadsubtle.NewAESGCM(env.RawKey())
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// tinkAEADEncrypt is Tink's AES-256-GCM (random nonce, allocating its
// output) on size bytes.
func tinkAEADEncrypt(env *Env, size int64) Case {
	return Case{
		Name: name(ImplTink, "aead-encrypt", size), Impl: ImplTink, Op: "aead-encrypt", Size: size,
		Bench: func(b *testing.B) {
			a, pt := tinkAEAD(b, env), env.Plaintext(size)
			measure(b, size, nil, func() error {
				_, err := a.Encrypt(pt, nil)
				return err
			})
		},
	}
}

func tinkAEADDecrypt(env *Env, size int64) Case {
	return Case{
		Name: name(ImplTink, "aead-decrypt", size), Impl: ImplTink, Op: "aead-decrypt", Size: size,
		Bench: func(b *testing.B) {
			a := tinkAEAD(b, env)
			ct, err := a.Encrypt(env.Plaintext(size), nil)
			if err != nil {
				b.Fatal(err)
			}
			measure(b, size, nil, func() error {
				_, err := a.Decrypt(ct, nil)
				return err
			})
		},
	}
}

// kmsAEAD is the key-encryption AEAD of Tink's envelope: KMS Encrypt and
// Decrypt on kmsmock, the associated data (when any) hex-encoded into the
// encryption context as Tink's own AWS KMS AEAD does.
type kmsAEAD struct {
	client *kms.Client
	arn    string
}

func adContext(ad []byte) map[string]string {
	if len(ad) == 0 {
		return nil
	}
	return map[string]string{"associatedData": hex.EncodeToString(ad)}
}

func (k kmsAEAD) Encrypt(pt, ad []byte) ([]byte, error) {
	out, err := k.client.Encrypt(context.Background(), &kms.EncryptInput{KeyId: &k.arn, Plaintext: pt, EncryptionContext: adContext(ad)})
	if err != nil {
		return nil, err
	}
	return out.CiphertextBlob, nil
}

func (k kmsAEAD) Decrypt(ct, ad []byte) ([]byte, error) {
	out, err := k.client.Decrypt(context.Background(), &kms.DecryptInput{KeyId: &k.arn, CiphertextBlob: ct, EncryptionContext: adContext(ad)})
	if err != nil {
		return nil, err
	}
	if out.Plaintext == nil {
		return nil, errors.New("kms: no plaintext")
	}
	return out.Plaintext, nil
}

// tinkEnvelope is Tink's KMS envelope AEAD over kmsmock on 1 KiB: a fresh
// AES-256-GCM data key per message, wrapped by one KMS Encrypt call.
func tinkEnvelope(env *Env) Case {
	return Case{
		Name: name(ImplTink, "envelope-encrypt", KiB), Impl: ImplTink, Op: "envelope-encrypt", Size: KiB,
		Bench: func(b *testing.B) {
			client, arn, err := env.KMS()
			if err != nil {
				b.Fatal(err)
			}
			a := aead.NewKMSEnvelopeAEAD2(aead.AES256GCMKeyTemplate(), kmsAEAD{client: client, arn: arn})
			pt := env.Plaintext(KiB)
			measure(b, KiB, nil, func() error {
				_, err := a.Encrypt(pt, nil)
				return err
			})
			b.ReportMetric(1, KMSCallsMetric)
		},
	}
}
