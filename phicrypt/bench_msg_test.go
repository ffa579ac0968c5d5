package phicrypt_test

import (
	"context"
	"testing"

	"github.com/phicrypt/phicrypt/phicrypt"
)

// The 1 KiB message benchmarks with a cached data key (raw AES keyring, so
// the keyring costs nothing on a hit either way), through the allocating
// Encrypt and Decrypt and through the Append forms into a buffer with
// room. Quote them against BenchmarkRawGCMSeal1KiB from the same run:
//
//	go test ./phicrypt/ -run '^$' -bench 'RawGCMSeal1KiB|1KiBCached$|1KiBCachedAppend' -benchmem -count 5

func cachedEncryptor(b *testing.B) *phicrypt.Encryptor {
	enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(b), Cache: newCache(b, phicrypt.CacheConfig{})})
	if err != nil {
		b.Fatal(err)
	}
	return enc
}

var benchContext = map[string]string{"tenant": "general-hospital"}

func BenchmarkEncrypt1KiBCached(b *testing.B) {
	enc, pt := cachedEncryptor(b), make([]byte, 1024)
	benchOp(b, len(pt), func() error { _, err := enc.Encrypt(context.Background(), pt, benchContext); return err })
}

func BenchmarkEncrypt1KiBCachedAppend(b *testing.B) {
	enc, pt, dst := cachedEncryptor(b), make([]byte, 1024), make([]byte, 0, 4096)
	benchOp(b, len(pt), func() error {
		_, err := enc.EncryptAppend(context.Background(), dst[:0], pt, benchContext)
		return err
	})
}

func BenchmarkDecrypt1KiBCached(b *testing.B) {
	enc := cachedEncryptor(b)
	msg := sealed1KiB(b, enc, benchContext)
	benchOp(b, 1024, func() error { _, _, err := enc.Decrypt(context.Background(), msg, nil); return err })
}

func BenchmarkDecrypt1KiBCachedAppend(b *testing.B) {
	enc, dst := cachedEncryptor(b), make([]byte, 0, 4096)
	msg := sealed1KiB(b, enc, benchContext)
	benchOp(b, 1024, func() error {
		_, _, err := enc.DecryptAppend(context.Background(), dst[:0], msg, nil)
		return err
	})
}

func BenchmarkOpen1KiBCached(b *testing.B) {
	enc := cachedEncryptor(b)
	msg := sealed1KiB(b, enc, benchContext)
	benchOp(b, 1024, func() error { _, err := enc.Open(context.Background(), nil, msg, benchContext); return err })
}

// benchOp runs op once per iteration over size bytes, reporting its
// allocations (the closure is made once, before the loop).
func benchOp(b *testing.B, size int, op func() error) {
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
}

// sealed1KiB is a message of 1 KiB of zeros under ec.
func sealed1KiB(b *testing.B, enc *phicrypt.Encryptor, ec map[string]string) []byte {
	msg, err := enc.Encrypt(context.Background(), make([]byte, 1024), ec)
	if err != nil {
		b.Fatal(err)
	}
	return msg
}

// The same without an encryption context, as phibench's message cases run
// (its cached-encrypt and cached-decrypt, and message-encrypt and
// message-decrypt without a cache), through Encrypt and Decrypt:
//
//	go test ./phicrypt/ -run '^$' -bench 'RawGCMSeal1KiB|1KiBNoContext' -benchmem -count 5
func BenchmarkEncrypt1KiBCachedNoContext(b *testing.B) {
	benchEncryptNoContext(b, cachedEncryptor(b))
}

func BenchmarkDecrypt1KiBCachedNoContext(b *testing.B) {
	benchDecryptNoContext(b, cachedEncryptor(b))
}

func BenchmarkEncrypt1KiBNoContext(b *testing.B) {
	benchEncryptNoContext(b, uncachedEncryptor(b))
}

func BenchmarkDecrypt1KiBNoContext(b *testing.B) {
	benchDecryptNoContext(b, uncachedEncryptor(b))
}

func uncachedEncryptor(b *testing.B) *phicrypt.Encryptor {
	enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(b)})
	if err != nil {
		b.Fatal(err)
	}
	return enc
}

func benchEncryptNoContext(b *testing.B, enc *phicrypt.Encryptor) {
	pt := make([]byte, 1024)
	benchOp(b, len(pt), func() error { _, err := enc.Encrypt(context.Background(), pt, nil); return err })
}

func benchDecryptNoContext(b *testing.B, enc *phicrypt.Encryptor) {
	msg := sealed1KiB(b, enc, nil)
	benchOp(b, 1024, func() error { _, _, err := enc.Decrypt(context.Background(), msg, nil); return err })
}
