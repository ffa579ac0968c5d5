package suite

import (
	"context"
	"testing"

	mpl "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygenerated"
	mpltypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygeneratedtypes"
	esdk "github.com/aws/aws-encryption-sdk/releases/go/encryption-sdk/awscryptographyencryptionsdksmithygenerated"
	esdktypes "github.com/aws/aws-encryption-sdk/releases/go/encryption-sdk/awscryptographyencryptionsdksmithygeneratedtypes"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// awsPeer is the AWS Encryption SDK for Go v0.4.0 at its defaults
// (require-encrypt-require-decrypt) with a raw AES keyring over the shared
// key, writing the frame length phicrypt writes by default.
type awsPeer struct {
	client  *esdk.Client
	keyring mpltypes.IKeyring
}

func newAWSPeer(b *testing.B, env *Env) *awsPeer {
	p, err := makeAWSPeer(env)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func makeAWSPeer(env *Env) (*awsPeer, error) {
	c, err := esdk.NewClient(esdktypes.AwsEncryptionSdkConfig{})
	if err != nil {
		return nil, err
	}
	m, err := mpl.NewClient(mpltypes.MaterialProvidersConfig{})
	if err != nil {
		return nil, err
	}
	kr, err := m.CreateRawAesKeyring(context.Background(), mpltypes.CreateRawAesKeyringInput{
		KeyNamespace: rawNamespace, KeyName: rawName, WrappingKey: env.RawKey(),
		WrappingAlg: mpltypes.AesWrappingAlgAlgAes256GcmIv12Tag16,
	})
	if err != nil {
		return nil, err
	}
	return &awsPeer{client: c, keyring: kr}, nil
}

func (p *awsPeer) encrypt(pt []byte, suite string) ([]byte, error) {
	return p.encryptContext(pt, suite, nil)
}

func (p *awsPeer) encryptContext(pt []byte, suite string, ec map[string]string) ([]byte, error) {
	id := mpltypes.ESDKAlgorithmSuiteId(suite)
	fl := int64(phicrypt.DefaultFrameLength)
	out, err := p.client.Encrypt(context.Background(), esdktypes.EncryptInput{
		Plaintext: pt, AlgorithmSuiteId: &id, FrameLength: &fl, Keyring: p.keyring, EncryptionContext: ec,
	})
	if err != nil {
		return nil, err
	}
	return out.Ciphertext, nil
}

func (p *awsPeer) decrypt(msg []byte) ([]byte, error) {
	out, err := p.client.Decrypt(context.Background(), esdktypes.DecryptInput{Ciphertext: msg, Keyring: p.keyring})
	if err != nil {
		return nil, err
	}
	return out.Plaintext, nil
}

func awsEncrypt(env *Env, size int64, suite string) Case {
	return Case{
		Name: name(ImplAWS, "message-encrypt", size, suiteVariant(suite)), Impl: ImplAWS, Op: "message-encrypt",
		Suite: suite, Size: size,
		Bench: func(b *testing.B) {
			p, pt := newAWSPeer(b, env), env.Plaintext(size)
			measure(b, size, nil, func() error {
				_, err := p.encrypt(pt, suite)
				return err
			})
		},
	}
}

func awsDecrypt(env *Env, size int64, suite string) Case {
	return Case{
		Name: name(ImplAWS, "message-decrypt", size, suiteVariant(suite)), Impl: ImplAWS, Op: "message-decrypt",
		Suite: suite, Size: size,
		Bench: func(b *testing.B) {
			p := newAWSPeer(b, env)
			msg, err := p.encrypt(env.Plaintext(size), suite)
			if err != nil {
				b.Fatal(err)
			}
			measure(b, size, nil, func() error {
				_, err := p.decrypt(msg)
				return err
			})
		},
	}
}

// suiteVariant names the suite in a case name when it is not the default.
func suiteVariant(suite string) string {
	if suite == Suite0478 {
		return ""
	}
	return suite
}
