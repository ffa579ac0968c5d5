package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// A service wraps every data key to the escrow public key beside its usual
// keyring (KMS in production; raw AES keys here, to keep the example
// self-contained). When the usual key is lost, custodians reassemble the
// escrow private key and move each message to a new key by rewriting its
// header only: no plaintext is produced on the way.
func ExampleNewHPKEEscrow() {
	ctx := context.Background()
	ec := map[string]string{"tenant": "general-hospital"}

	// Custodians, once: generate the escrow key, hand services its public
	// key and split its seed into shares (keyctl does this).
	escrowKey, _ := keyring.GenerateHPKEEscrowKey()
	publicKey := escrowKey.PublicKey().Bytes()
	seed := escrowKey.RevealSeed()

	// A service: its usual keyring plus the escrow keyring, which can only
	// wrap.
	pub, _ := keyring.ParseHPKEEscrowPublicKey(publicKey)
	escrow, _ := keyring.NewHPKEEscrow("escrow-2026", pub)
	usual, _ := keyring.NewRawAES("example", "usual-key", bytes.Repeat([]byte{1}, 32))
	both, _ := keyring.NewMulti(usual, escrow)
	service, _ := phicrypt.New(phicrypt.Config{Keyring: both})
	msg, _ := service.Encrypt(ctx, []byte("discharge summary"), ec)
	fmt.Println(escrow)

	// Break glass: the usual key is gone. A quorum of custodians rebuilds
	// the escrow private key and rewraps the message to a new key.
	recovered, _ := keyring.ParseHPKEEscrowPrivateKey(seed)
	seed.Wipe()
	recovery, _ := keyring.NewHPKEEscrowRecovery("escrow-2026", recovered)
	fmt.Println(recovery)
	custodians, _ := phicrypt.New(phicrypt.Config{Keyring: recovery})
	newKey, _ := keyring.NewRawAES("example", "new-key", bytes.Repeat([]byte{2}, 32))
	hl, _ := custodians.HeaderLength(msg)
	header, err := custodians.RewrapHeader(ctx, msg, ec, newKey)
	if err != nil {
		fmt.Println(err)
		return
	}
	rewrapped := append(header, msg[hl:]...)

	// The service, now configured with the new key, reads the message.
	restored, _ := phicrypt.New(phicrypt.Config{Keyring: newKey})
	pt, _, err := restored.Decrypt(ctx, rewrapped, ec)
	fmt.Println(string(pt), err)
	// Output:
	// HPKEEscrow(escrow-2026, public key only)
	// HPKEEscrow(escrow-2026)
	// discharge summary <nil>
}

// An escrow key is made once; its public key is what services are
// configured with, its seed what custodians split into shares.
func ExampleGenerateHPKEEscrowKey() {
	key, err := keyring.GenerateHPKEEscrowKey()
	if err != nil {
		fmt.Println(err)
		return
	}
	seed := key.RevealSeed()
	defer seed.Wipe()
	fmt.Println(len(key.PublicKey().Bytes()), len(seed))
	fmt.Println(key) // never its bytes

	again, _ := keyring.ParseHPKEEscrowPrivateKey(seed)
	fmt.Println(bytes.Equal(again.PublicKey().Bytes(), key.PublicKey().Bytes()))
	// Output:
	// 1216 32
	// HPKEEscrowPrivateKey(MLKEM768-X25519, [REDACTED])
	// true
}

// Only the keyring holding the private key unwraps what the escrow public
// key wrapped.
func ExampleNewHPKEEscrowRecovery() {
	ctx := context.Background()
	ec := map[string]string{"tenant": "general-hospital"}
	key, _ := keyring.GenerateHPKEEscrowKey()
	escrow, _ := keyring.NewHPKEEscrow("escrow-2026", key.PublicKey())
	service, _ := phicrypt.New(phicrypt.Config{Keyring: escrow})
	msg, _ := service.Encrypt(ctx, []byte("lab result"), ec)

	_, _, err := service.Decrypt(ctx, msg, ec)
	fmt.Println(errors.Is(err, keyring.ErrHPKEEscrowPublicOnly))

	recovery, _ := keyring.NewHPKEEscrowRecovery("escrow-2026", key)
	custodians, _ := phicrypt.New(phicrypt.Config{Keyring: recovery})
	pt, _, err := custodians.Decrypt(ctx, msg, ec)
	fmt.Println(string(pt), err)
	// Output:
	// true
	// lab result <nil>
}
