package keyring_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// A service writes every data key twice: under KMS, and under an escrow
// RSA public key whose private half only the custodians hold. With the KMS
// key disabled, the private key alone still reads the message.
func ExampleNewRawRSA() {
	ctx := context.Background()
	l, err := kmsmock.Start(kmsmock.Config{}, "") // an in-process KMS on 127.0.0.1
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	kmsClient := l.Client("svc")
	key, err := kmsClient.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		fmt.Println(err)
		return
	}
	escrowKey, err := rsa.GenerateKey(rand.Reader, 3072) // the custodians keep this
	if err != nil {
		fmt.Println(err)
		return
	}

	// The service: KMS generates, the escrow public key wraps a copy.
	gen, err := keyring.NewKMS(keyring.KMSConfig{Client: kmsClient, Generator: aws.ToString(key.KeyMetadata.Arn)})
	if err != nil {
		fmt.Println(err)
		return
	}
	escrow, err := keyring.NewRawRSA(keyring.RawRSAConfig{Namespace: "hospital-escrow", Name: "escrow-2026",
		PublicKey: &escrowKey.PublicKey, Padding: keyring.RSAPaddingOAEPSHA256})
	if err != nil {
		fmt.Println(err)
		return
	}
	service, err := keyring.NewMulti(gen, escrow)
	if err != nil {
		fmt.Println(err)
		return
	}
	enc, err := phicrypt.New(phicrypt.Config{Keyring: service})
	if err != nil {
		fmt.Println(err)
		return
	}
	msg, err := enc.Encrypt(ctx, []byte("discharge summary"), map[string]string{"tenant": "general-hospital"})
	if err != nil {
		fmt.Println(err)
		return
	}

	// KMS access is lost.
	if _, err := kmsClient.DisableKey(ctx, &kms.DisableKeyInput{KeyId: key.KeyMetadata.Arn}); err != nil {
		fmt.Println(err)
		return
	}
	_, _, err = enc.Decrypt(ctx, msg, nil)
	fmt.Println("service:", err != nil)

	// The custodians' keyring, from the private key alone.
	recovery, err := keyring.NewRawRSA(keyring.RawRSAConfig{Namespace: "hospital-escrow", Name: "escrow-2026",
		PrivateKey: escrowKey, Padding: keyring.RSAPaddingOAEPSHA256})
	if err != nil {
		fmt.Println(err)
		return
	}
	dec, err := phicrypt.New(phicrypt.Config{Keyring: recovery})
	if err != nil {
		fmt.Println(err)
		return
	}
	pt, ec, err := dec.Decrypt(ctx, msg, map[string]string{"tenant": "general-hospital"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("recovered:", string(pt), ec["tenant"])
	// Output:
	// service: true
	// recovered: discharge summary general-hospital
}
