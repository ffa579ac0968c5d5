package suite

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"testing"
)

// rawGCM is AES-256-GCM from crypto/cipher with a random nonce, the
// baseline every ratio is taken against.
func rawGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // the key is always 32 bytes
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		panic(err)
	}
	return aead
}

// rawSeal seals size bytes count times per iteration, reusing dst.
func rawSeal(env *Env, size int64, count int) Case {
	variant := ""
	if count > 1 {
		variant = fmt.Sprintf("x%d", count)
	}
	return Case{
		Name: name(ImplRawGCM, "seal", size, variant), Impl: ImplRawGCM, Op: "seal",
		Size: size, Count: max(count, 1),
		Bench: func(b *testing.B) {
			aead := rawGCM(env.RawKey())
			pt := env.Plaintext(size)
			out := make([]byte, 0, size+64)
			b.SetBytes(size * int64(max(count, 1)))
			b.ReportAllocs()
			for b.Loop() {
				for range max(count, 1) {
					out = aead.Seal(out[:0], nil, pt, nil)
				}
			}
		},
	}
}

// rawOpen opens one sealed message of size bytes, reusing dst.
func rawOpen(env *Env, size int64) Case {
	return Case{
		Name: name(ImplRawGCM, "open", size), Impl: ImplRawGCM, Op: "open", Size: size,
		Bench: func(b *testing.B) {
			aead := rawGCM(env.RawKey())
			ct := aead.Seal(nil, nil, env.Plaintext(size), nil)
			out := make([]byte, 0, size)
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if out, err = aead.Open(out[:0], nil, ct, nil); err != nil {
					b.Fatal(err)
				}
			}
		},
	}
}
