// Command quickstart shows phicrypt on embedded defaults, with no cloud
// account: it starts the kmsmock KMS emulator in-process, makes a key and an
// alias, generates and decrypts a data key under an encryption context
// through the real aws-sdk-go-v2 KMS client, then encrypts and decrypts a
// message and a stream in the AWS Encryption SDK format with the KMS keyring,
// caches data keys, rotates a branch key, and seals a patient row into
// SQLite with fieldenc, finding it again by blind index; then, as key
// custodians, installs a signed policy, destroys one patient's key with
// two of three custodians' approvals (crypto-shredding), and verifies the
// audit log with its public key alone.
//
//	go run ./examples/quickstart
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
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
		return fmt.Errorf("KMS Decrypt: %w", err)
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
		return fmt.Errorf("KMS Decrypt under another tenant's context: want InvalidCiphertextException, got %v", err)
	}
	fmt.Fprintf(out, "6. under another tenant's context KMS refused it: InvalidCiphertextException\n")

	if err := messages(ctx, out, admin, aws.ToString(key.KeyMetadata.Arn)); err != nil {
		return err
	}
	if err := branchKeys(ctx, out, admin, aws.ToString(key.KeyMetadata.Arn), l); err != nil {
		return err
	}
	if err := patients(ctx, out, admin, aws.ToString(key.KeyMetadata.Arn)); err != nil {
		return err
	}
	if err := custodyDemo(ctx, out, l); err != nil {
		return err
	}
	fmt.Fprintf(out, "23. KMS calls in all: %v; trail events: %d\n", l.CallCounts(), len(l.Trail()))
	return nil
}

// messages encrypts a record and a stream with the KMS keyring.
func messages(ctx context.Context, out io.Writer, client *kms.Client, keyARN string) error {
	kr, err := keyring.NewKMS(keyring.KMSConfig{Client: client, Generator: keyARN})
	if err != nil {
		return err
	}
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, RequiredContextKeys: []string{"tenant"}})
	if err != nil {
		return err
	}
	ec := map[string]string{"tenant": "general-hospital", "record-type": "discharge-summary"}
	record := []byte("Patient: (synthetic) · Diagnosis: (synthetic) · Follow-up in 2 weeks")
	msg, err := enc.Encrypt(ctx, record, ec)
	if err != nil {
		return fmt.Errorf("encrypting the record: %w", err)
	}
	got, _, err := enc.Decrypt(ctx, msg, map[string]string{"tenant": "general-hospital"})
	if err != nil {
		return fmt.Errorf("decrypting the record: %w", err)
	}
	if !bytes.Equal(got, record) {
		return errors.New("the decrypted record differs")
	}
	fmt.Fprintf(out, "7. encrypted a %d-byte record into a %d-byte AWS Encryption SDK message (suite 0x0478, key commitment) and decrypted it\n",
		len(record), len(msg))

	// A stream: memory stays at a few 64 KiB frames whatever the size.
	const size = 8 << 20
	var sealed bytes.Buffer
	w, err := enc.NewWriter(ctx, &sealed, ec)
	if err != nil {
		return err
	}
	want := sha256.New()
	chunk := make([]byte, 100_000)
	for written := 0; written < size; written += len(chunk) {
		n := min(len(chunk), size-written)
		rand.Read(chunk[:n])
		want.Write(chunk[:n])
		if _, err := w.Write(chunk[:n]); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	r, err := enc.NewReader(ctx, &sealed, map[string]string{"tenant": "general-hospital"})
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return err
	}
	if n != size || !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
		return errors.New("the decrypted stream differs")
	}
	fmt.Fprintf(out, "8. streamed %d MiB through NewWriter and NewReader; the SHA-256 of what came out matches what went in\n", size>>20)

	_, _, err = enc.Decrypt(ctx, msg, map[string]string{"tenant": "another-hospital"})
	if !errors.Is(err, phicrypt.ErrContext) {
		return fmt.Errorf("decrypting while expecting another tenant: want ErrContext, got %v", err)
	}
	fmt.Fprintf(out, "9. decrypting while expecting another tenant was refused: %v\n", err)
	return cached(ctx, out, kr)
}

// cached shows the data-key cache: many messages, few KMS calls.
func cached(ctx context.Context, out io.Writer, kr keyring.Keyring) error {
	cache, err := phicrypt.NewCache(phicrypt.CacheConfig{MaxAge: 5 * time.Minute, MaxMessages: 1000})
	if err != nil {
		return err
	}
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, Cache: cache})
	if err != nil {
		return err
	}
	const n = 2500
	for i := range n {
		ec := map[string]string{"tenant": "general-hospital"}
		msg, err := enc.Encrypt(ctx, []byte(fmt.Sprint("observation ", i)), ec)
		if err != nil {
			return err
		}
		if _, _, err := enc.Decrypt(ctx, msg, ec); err != nil {
			return err
		}
	}
	st := cache.Stats()
	fmt.Fprintf(out, "10. with a data-key cache (at most 1000 messages per key): %d messages encrypted and decrypted with %d keyring (KMS) calls; %d cache hits\n",
		n, st.KeyringCalls, st.Hits)
	return nil
}

// branchKeys shows the hierarchical keyring: a branch key per tenant in a
// file store, wrapped by KMS, rotated while old messages stay readable.
func branchKeys(ctx context.Context, out io.Writer, client *kms.Client, keyARN string, l *kmsmock.Local) error {
	dir, err := os.MkdirTemp("", "phicrypt-quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := keystore.OpenFileStore(dir)
	if err != nil {
		return err
	}
	defer store.Close()
	// The custodian creates and rotates branch keys (custody); the service
	// only unwraps them (keyring). Here one program plays both roles.
	cfg := keyring.BranchKeysConfig{Store: store, Client: client, KMSKeyARN: keyARN, LogicalStoreName: "quickstart"}
	custodian, err := custody.NewBranchKeys(cfg)
	if err != nil {
		return err
	}
	bk, err := keyring.NewBranchKeys(cfg)
	if err != nil {
		return err
	}
	v1, err := custodian.CreateBranchKey(ctx, "tenant-general-hospital")
	if err != nil {
		return err
	}
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, CacheTTL: time.Minute,
		BranchKeyIDSupplier: func(ec map[string]string) (string, error) { return "tenant-" + ec["tenant"], nil }})
	if err != nil {
		return err
	}
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, RequiredContextKeys: []string{"tenant"}})
	if err != nil {
		return err
	}
	ec := map[string]string{"tenant": "general-hospital"}
	before := l.Calls("Decrypt")
	var msgs [][]byte
	for i := range 1000 {
		msg, err := enc.Encrypt(ctx, []byte(fmt.Sprint("vital signs ", i)), ec)
		if err != nil {
			return err
		}
		msgs = append(msgs, msg)
	}
	fmt.Fprintf(out, "11. hierarchical keyring: 1000 messages under branch key version %s… cost %d KMS call(s)\n",
		v1.Version[:8], l.Calls("Decrypt")-before)
	v2, err := custodian.Rotate(ctx, "tenant-general-hospital")
	if err != nil {
		return err
	}
	for _, msg := range msgs {
		if _, _, err := enc.Decrypt(ctx, msg, ec); err != nil {
			return fmt.Errorf("a message from before the rotation: %w", err)
		}
	}
	versions, err := store.List(ctx, "tenant-general-hospital")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "12. rotated the branch key to version %s… (%d versions stored, wrapped by KMS); the 1000 earlier messages still decrypt\n",
		v2.Version[:8], len(versions))
	return nil
}
