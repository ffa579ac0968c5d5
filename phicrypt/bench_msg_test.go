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
	enc := cachedEncryptor(b)
	pt := make([]byte, 1024)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Encrypt(context.Background(), pt, benchContext); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncrypt1KiBCachedAppend(b *testing.B) {
	enc := cachedEncryptor(b)
	pt := make([]byte, 1024)
	dst := make([]byte, 0, 4096)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.EncryptAppend(context.Background(), dst[:0], pt, benchContext); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt1KiBCached(b *testing.B) {
	enc := cachedEncryptor(b)
	msg, err := enc.Encrypt(context.Background(), make([]byte, 1024), benchContext)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := enc.Decrypt(context.Background(), msg, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt1KiBCachedAppend(b *testing.B) {
	enc := cachedEncryptor(b)
	msg, err := enc.Encrypt(context.Background(), make([]byte, 1024), benchContext)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, 4096)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := enc.DecryptAppend(context.Background(), dst[:0], msg, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen1KiBCached(b *testing.B) {
	enc := cachedEncryptor(b)
	msg, err := enc.Encrypt(context.Background(), make([]byte, 1024), benchContext)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Open(context.Background(), nil, msg, benchContext); err != nil {
			b.Fatal(err)
		}
	}
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
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Encrypt(context.Background(), pt, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func benchDecryptNoContext(b *testing.B, enc *phicrypt.Encryptor) {
	msg, err := enc.Encrypt(context.Background(), make([]byte, 1024), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := enc.Decrypt(context.Background(), msg, nil); err != nil {
			b.Fatal(err)
		}
	}
}
