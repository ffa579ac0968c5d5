package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// An outside review of keyctl recover. A service that wraps each data key
// with more KMS keys than phicrypt's default cap of five encrypted data
// keys (docs/FORMAT.md section 9 tells it to raise
// phicrypt.Config.MaxEncryptedDataKeys: a threshold keyring, several
// regions) plus the escrow key must still be recoverable. The recovery
// writes no plaintext or encryption-context value anywhere: not in the
// message directory (temporary files), the configuration directory (the
// audit log, the position file) nor on stdout or stderr. And what
// docs/OPERATIONS.md's break-glass runbook promises: escrow init prints
// the public key's SHA-256 to keep; a refused share names its file.
func TestRecoverOutsideRunbookPromises(t *testing.T) {
	w, _, ids := recoveryWorld(t)
	dir := w.dir
	ctx := t.Context()

	escrowDir, pub := w.escrow2of3()

	// The service: a generator and four more KMS keys (other regions),
	// and the escrow key: six EDKs a message.
	svc := kmsClient(w.kmsURL, servicePrincipal)
	var arns []string
	for range 5 {
		k, err := svc.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("a service key, soon lost")})
		require.NoError(t, err)
		arns = append(arns, aws.ToString(k.KeyMetadata.Arn))
	}
	kmsKeyring, err := keyring.NewKMS(keyring.KMSConfig{Client: svc, Generator: arns[0], Keys: arns[1:]})
	require.NoError(t, err)
	escrow, err := keyring.NewHPKEEscrow("escrow-2026", pub)
	require.NoError(t, err)
	both, err := keyring.NewMulti(kmsKeyring, escrow)
	require.NoError(t, err)
	service, err := phicrypt.New(phicrypt.Config{Keyring: both, MaxEncryptedDataKeys: 6})
	require.NoError(t, err)
	const canary = "CANARY-PHI-ctx-7731"
	msgDir := filepath.Join(dir, "messages")
	require.NoError(t, os.MkdirAll(msgDir, 0o700))
	plain := "CANARY-PHI-body-Jane-Doe-1970-01-01 discharge summary"
	// "s" is written under the signed suite (the AWS ESDKs' default):
	// its signature covers the header recover replaces.
	signer, err := phicrypt.New(phicrypt.Config{Keyring: both, MaxEncryptedDataKeys: 6, Suite: phicrypt.SuiteCommittedSigned})
	require.NoError(t, err)
	for name, e := range map[string]*phicrypt.Encryptor{"a": service, "b": service, "s": signer} {
		ct, err := e.Encrypt(ctx, []byte(plain), map[string]string{"tenant": "general-hospital", "patient": canary})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(msgDir, name), ct, 0o600))
	}

	k2 := w.createRecoveryKey()
	req := filepath.Join(dir, "recover.json")
	w.approvedRecover(ids, k2, req)
	share := func(who string) string { return filepath.Join(escrowDir, "escrow-2026."+who+".share") }

	// docs/OPERATIONS.md: a share that belongs to another escrow key, or is
	// given twice, "is refused with a clear error naming the file".
	otherDir := filepath.Join(dir, "other")
	printed := w.ok("escrow", "init", "--name", "escrow-other", "--threshold", "2", "--custodian", "alice", "--custodian", "bob", "--out-dir", otherDir)
	// The runbook: "keep the printed public_key_sha256".
	otherPub := readEscrowPublicKey(t, filepath.Join(otherDir, "escrow-other.escrow.pub"))
	require.Contains(t, printed, fmt.Sprintf("%x", custody.EscrowKeyDigest(otherPub)), "escrow init prints the public key's SHA-256 the runbook says to keep")
	foreign := filepath.Join(otherDir, "escrow-other.bob.share")
	w.fails(1, foreign, "recover", req, "--messages", msgDir, "--share", share("alice"), "--share", foreign)
	w.fails(1, share("bob"), "recover", req, "--messages", msgDir, "--share", share("bob"), "--share", share("bob"))
	out, errOut, code := w.run("recover", req, "--messages", msgDir, "--share", share("alice"), "--share", share("bob"), "--progress", "lines")
	require.Equal(t, 0, code, "messages of six EDKs (MaxEncryptedDataKeys 6), signed or not, must be recoverable: %s", errOut)

	k2Only, err := keyring.NewKMS(keyring.KMSConfig{Client: svc, Keys: []string{k2}})
	require.NoError(t, err)
	restored, err := phicrypt.New(phicrypt.Config{Keyring: k2Only})
	require.NoError(t, err)
	for _, name := range []string{"a", "b", "s"} {
		ct, err := os.ReadFile(filepath.Join(msgDir, name))
		require.NoError(t, err)
		pt, _, err := restored.Decrypt(ctx, ct, nil)
		require.NoError(t, err, "message %s", name)
		require.Equal(t, plain, string(pt))
	}

	// Nothing the recovery wrote holds the plaintext or a context value.
	for _, s := range []string{out, errOut} {
		require.NotContains(t, s, canary)
		require.NotContains(t, s, "CANARY-PHI-body")
	}
	entries, err := os.ReadDir(msgDir)
	require.NoError(t, err)
	require.Len(t, entries, 3, "no temporary file is left beside the messages")
	require.NoError(t, filepath.WalkDir(filepath.Join(dir, "keyctl"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		require.False(t, bytes.Contains(b, []byte(canary)), "%s holds an encryption-context value", path)
		require.False(t, bytes.Contains(b, []byte("CANARY-PHI-body")), "%s holds plaintext", path)
		return nil
	}))
}
