package goesdk

import (
	"testing"

	"github.com/phicrypt/phicrypt/phicrypt"
)

// rawFrames are the frame lengths the raw AES matrix covers: the smallest
// the format allows, a small one, phicrypt's common 4 KiB and its 64 KiB
// default.
var rawFrames = []int{1, 128, 4096, 65536}

// The ESDK encrypts under its raw AES keyring; phicrypt decrypts under its
// own with the same namespace, name and key.
func TestRawAESGoESDKEncryptsPhicryptDecrypts(t *testing.T) {
	key := randomBytes(32)
	p := newGoESDK(t)
	m := withKeyring(p.rawAES(t, key))
	enc := newEncryptor(t, phicrypt.Config{Keyring: phicryptRawAES(t, key)})
	for _, v := range matrix(rawFrames) {
		t.Run(v.name, func(t *testing.T) {
			msg, err := p.encrypt(m, v.suite, v.frame, v.pt, v.ec)
			if err != nil {
				t.Fatalf("ESDK encrypt: %v", err)
			}
			phicryptReads(t, enc, msg, v)
		})
	}
}

// phicrypt encrypts under its raw AES keyring; the ESDK decrypts.
func TestRawAESPhicryptEncryptsGoESDKDecrypts(t *testing.T) {
	key := randomBytes(32)
	kr := phicryptRawAES(t, key)
	p := newGoESDK(t)
	m := withKeyring(p.rawAES(t, key))
	for _, v := range matrix(rawFrames) {
		t.Run(v.name, func(t *testing.T) {
			enc := newEncryptor(t, phicrypt.Config{Keyring: kr, Suite: v.suite, FrameLength: v.frame})
			msg, err := enc.Encrypt(t.Context(), v.pt, v.ec)
			if err != nil {
				t.Fatalf("phicrypt encrypt: %v", err)
			}
			esdkReads(t, p, m, msg, v)
		})
	}
}
