// Command quickstart shows phicrypt's building blocks on embedded defaults,
// with no cloud account: it starts the kmsmock KMS emulator in-process, makes
// a key and an alias, and generates and decrypts a data key under an
// encryption context through the real aws-sdk-go-v2 KMS client.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/phicrypt/phicrypt/kmsmock"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	l, err := kmsmock.Start(kmsmock.Config{}, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Fprintf(out, "1. started kmsmock (an AWS KMS emulator) at %s\n", l.URL)

	admin := l.Client("quickstart-admin")
	key, err := admin.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("quickstart PHI wrapping key")})
	if err != nil {
		return fmt.Errorf("CreateKey: %w", err)
	}
	fmt.Fprintf(out, "2. created KMS key %s\n", aws.ToString(key.KeyMetadata.Arn))

	const alias = "alias/quickstart-phi"
	if _, err := admin.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: key.KeyMetadata.KeyId}); err != nil {
		return fmt.Errorf("CreateAlias: %w", err)
	}
	fmt.Fprintf(out, "3. named it %s\n", alias)

	// The encryption context is bound to the wrapped data key: KMS refuses
	// to unwrap it under any other context. Its values may be PHI, so they
	// are never printed or logged, and kmsmock's trail stores them hashed.
	ec := map[string]string{"tenant": "general-hospital", "table": "patients"}
	dk, err := admin.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(alias), KeySpec: types.DataKeySpecAes256, EncryptionContext: ec})
	if err != nil {
		return fmt.Errorf("GenerateDataKey: %w", err)
	}
	defer clear(dk.Plaintext)
	fmt.Fprintf(out, "4. generated a %d-byte data key; its wrapped form is %d bytes (context keys: tenant, table)\n",
		len(dk.Plaintext), len(dk.CiphertextBlob))

	dec, err := admin.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec})
	if err != nil {
		return fmt.Errorf("Decrypt: %w", err)
	}
	defer clear(dec.Plaintext)
	if subtle.ConstantTimeCompare(dec.Plaintext, dk.Plaintext) != 1 {
		return errors.New("the unwrapped data key differs from the generated one")
	}
	fmt.Fprintf(out, "5. unwrapped it with Decrypt (no key id needed: the blob names its key); it matches\n")

	wrong := map[string]string{"tenant": "another-hospital", "table": "patients"}
	_, err = admin.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: wrong})
	var invalid *types.InvalidCiphertextException
	if !errors.As(err, &invalid) {
		return fmt.Errorf("Decrypt under another tenant's context: want InvalidCiphertextException, got %v", err)
	}
	fmt.Fprintf(out, "6. under another tenant's context KMS refused it: InvalidCiphertextException\n")

	fmt.Fprintf(out, "7. KMS calls: %v; trail events: %d\n", l.CallCounts(), len(l.Trail()))
	return nil
}
