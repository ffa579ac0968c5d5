package suite

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/phicrypt/phicrypt/phicrypt"
)

// RoundTrip encrypts pt under ec, decrypts the message, checks that the
// plaintext came back, and returns how long each half took: one cycle of
// AWS's esdk-performance-testing.
type RoundTrip func(pt []byte, ec map[string]string) (encrypt, decrypt time.Duration, err error)

var errRoundTrip = errors.New("suite: the round trip returned another plaintext")

// timed is the RoundTrip of encrypt and decrypt: it times each half and
// checks that the plaintext came back.
func timed(encrypt func(pt []byte, ec map[string]string) ([]byte, error), decrypt func(msg []byte, ec map[string]string) ([]byte, error)) RoundTrip {
	return func(pt []byte, ec map[string]string) (time.Duration, time.Duration, error) {
		t0 := time.Now()
		msg, err := encrypt(pt, ec)
		if err != nil {
			return 0, 0, err
		}
		t1 := time.Now()
		got, err := decrypt(msg, ec)
		if err != nil {
			return 0, 0, err
		}
		t2 := time.Now()
		if !bytes.Equal(got, pt) {
			return 0, 0, errRoundTrip
		}
		return t1.Sub(t0), t2.Sub(t1), nil
	}
}

// PhicryptRoundTrip is a RoundTrip of phicrypt's Encrypt and Decrypt under
// the raw AES keyring, suite 0x0478 and the default frame length: fresh
// output each time, as the AWS ESDK's calls return.
func PhicryptRoundTrip(env *Env) (RoundTrip, error) {
	kr, err := rawAESKeyring(env)
	if err != nil {
		return nil, err
	}
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr})
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	return timed(
		func(pt []byte, ec map[string]string) ([]byte, error) { return enc.Encrypt(ctx, pt, ec) },
		func(msg []byte, ec map[string]string) ([]byte, error) {
			pt, _, err := enc.Decrypt(ctx, msg, ec)
			return pt, err
		}), nil
}

// AWSRoundTrip is a RoundTrip of the AWS Go ESDK under its raw AES keyring
// over the same key, suite 0x0478 and phicrypt's default frame length.
func AWSRoundTrip(env *Env) (RoundTrip, error) {
	p, err := makeAWSPeer(env)
	if err != nil {
		return nil, err
	}
	return timed(
		func(pt []byte, ec map[string]string) ([]byte, error) { return p.encryptContext(pt, Suite0478, ec) },
		func(msg []byte, _ map[string]string) ([]byte, error) { return p.decrypt(msg) }), nil
}
