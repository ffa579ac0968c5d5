package phicrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"testing"

	"github.com/phicrypt/phicrypt/internal/kdf"
)

// The work a 1 KiB message of suite 0x0478 cannot avoid, by step, to quote
// BenchmarkEncrypt1KiB and BenchmarkDecrypt1KiB (and the phibench
// message cases) against in the same run:
//
//	go test ./phicrypt/ -run '^$' -bench 'Floor|^BenchmarkEncrypt1KiBNoContext$|^BenchmarkDecrypt1KiBNoContext$' -benchmem -count 5
//
// BenchmarkFloorEncrypt1KiB is all of it for one message with the raw AES
// keyring: the random message id, data key and wrapping IV; the wrapped
// data key (AES-GCM under the wrapping key, built once); the key derivation
// (HKDF-SHA-512: ten SHA-512 compressions); the message's AES-GCM
// instance; the header tag and the one frame. Decryption does the same
// but the random bytes. The Floor* steps show where its time goes.
func BenchmarkFloorEncrypt1KiB(b *testing.B) {
	kp := newKDFPools()
	wrap := floorGCM(b)
	var random [32 + 12 + 32]byte
	var wrapped, commit, out [2048]byte
	header := make([]byte, 150) // a header body with one raw AES EDK
	pt := make([]byte, 1024)
	var fc frameCrypto
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		rand.Read(random[:])
		messageID, iv, dataKey := random[:32], random[32:44], random[44:]
		wrap.Seal(wrapped[:0], iv, dataKey, header[:24])
		aead, _ := kp.derive(&suiteCommitted, dataKey, messageID, commit[:0])
		fc.init(aead, messageID)
		clear(fc.iv[:])
		o := aead.Seal(out[:0], fc.iv[:], nil, header)
		fc.seal(o, 1, true, pt)
	}
}

// BenchmarkFloorDerive is the key derivation alone, AES-GCM instance
// included (derive builds it).
func BenchmarkFloorDerive(b *testing.B) {
	kp := newKDFPools()
	dataKey, messageID := make([]byte, 32), make([]byte, 32)
	var commit [64]byte
	b.ReportAllocs()
	for b.Loop() {
		kp.derive(&suiteCommitted, dataKey, messageID, commit[:0])
	}
}

// BenchmarkFloorHKDF is the derivation's ten SHA-512 compressions and its
// HMAC bookkeeping, without the AES-GCM instance.
func BenchmarkFloorHKDF(b *testing.B) {
	h := kdf.NewHMAC(suiteCommitted.kdfHash)
	dataKey, messageID := make([]byte, 32), make([]byte, 32)
	prk, key := make([]byte, 0, 64), make([]byte, 0, 64)
	info := []byte{0x04, 0x78}
	b.ReportAllocs()
	for b.Loop() {
		p := h.Extract(prk[:0], messageID, dataKey)
		h.Expand(key[:0], p, 32, info, labelDeriveKey)
		h.ExpandAgain(key[:0], 32, labelCommitKey)
	}
}

// BenchmarkFloorAESGCMInstance is aes.NewCipher and cipher.NewGCM.
func BenchmarkFloorAESGCMInstance(b *testing.B) {
	key := make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		block, _ := aes.NewCipher(key)
		cipher.NewGCM(block)
	}
}

func floorGCM(b *testing.B) cipher.AEAD {
	block, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	return aead
}
