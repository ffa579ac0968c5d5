package phicrypt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// A message moves to another wrapping key by replacing its header: the
// body is kept byte for byte.
func ExampleEncryptor_RewrapHeader() {
	ctx := context.Background()
	oldKR, _ := keyring.NewRawAES("example", "old-key", bytes.Repeat([]byte{1}, 32))
	newKR, _ := keyring.NewRawAES("example", "new-key", bytes.Repeat([]byte{2}, 32))
	oldEnc, _ := phicrypt.New(phicrypt.Config{Keyring: oldKR})
	newEnc, _ := phicrypt.New(phicrypt.Config{Keyring: newKR})
	ec := map[string]string{"tenant": "clinic-7"}

	msg, _ := oldEnc.Encrypt(ctx, []byte("chest x-ray report"), ec)
	hl, _ := oldEnc.HeaderLength(msg)
	header, err := oldEnc.RewrapHeader(ctx, msg, ec, newKR)
	if err != nil {
		fmt.Println(err)
		return
	}
	rewrapped := append(header, msg[hl:]...)

	pt, _, err := newEnc.Decrypt(ctx, rewrapped, ec)
	fmt.Println(string(pt), err)
	_, _, err = oldEnc.Decrypt(ctx, rewrapped, ec)
	fmt.Println(errors.Is(err, phicrypt.ErrNoKey))
	// Output:
	// chest x-ray report <nil>
	// true
}
