package suite

import (
	"context"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// The suites the message cases write, as the JSON records name them.
const (
	Suite0478 = "0x0478"
	Suite0578 = "0x0578"
)

func suiteOf(s string) phicrypt.Suite {
	if s == Suite0578 {
		return phicrypt.SuiteCommittedSigned
	}
	return phicrypt.SuiteCommitted
}

// messageCases are in-memory messages by size beside raw GCM, Tink's AEAD
// and the AWS Go ESDK; the signed suite at 1 KiB (and 1 MiB in the full
// list); and the KMS keyring with and without a cache beside Tink's KMS
// envelope AEAD.
func messageCases(env *Env, o Options) []Case {
	var cs []Case
	for _, n := range o.MessageSizes() {
		cs = append(cs,
			rawSeal(env, n, 1), rawOpen(env, n),
			phiEncrypt(env, n, 0), phiDecrypt(env, n, 0),
			tinkAEADEncrypt(env, n), tinkAEADDecrypt(env, n),
			awsEncrypt(env, n, Suite0478), awsDecrypt(env, n, Suite0478))
	}
	signed := []int64{KiB}
	if !o.Quick {
		signed = append(signed, MiB)
	}
	for _, n := range signed {
		cs = append(cs,
			phiSuiteEncrypt(env, n, Suite0578), phiSuiteDecrypt(env, n, Suite0578),
			awsEncrypt(env, n, Suite0578), awsDecrypt(env, n, Suite0578))
	}
	cs = append(cs, cachedEncrypt(env), cachedDecrypt(env), kmsEncrypt(env), tinkEnvelope(env))
	return cs
}

// rawAESKeyring is phicrypt's raw AES keyring over the shared key, under
// the namespace and name the ESDK peer's keyring uses too.
func rawAESKeyring(env *Env) (keyring.Keyring, error) {
	return keyring.NewRawAES(rawNamespace, rawName, env.RawKey())
}

const (
	rawNamespace = "phibench"
	rawName      = "wrapping-key-1"
)

func encryptor(b *testing.B, env *Env, cfg phicrypt.Config) *phicrypt.Encryptor {
	if cfg.Keyring == nil {
		kr, err := rawAESKeyring(env)
		if err != nil {
			b.Fatal(err)
		}
		cfg.Keyring = kr
	}
	enc, err := phicrypt.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return enc
}

func frameVariant(fl int) string {
	if fl == 0 {
		return ""
	}
	return "frame" + SizeName(int64(fl))
}

func phiEncrypt(env *Env, size int64, fl int) Case {
	return Case{
		Name: name(ImplPhicrypt, "message-encrypt", size, frameVariant(fl)), Impl: ImplPhicrypt, Op: "message-encrypt",
		Suite: Suite0478, Size: size, FrameLength: fl,
		Bench: func(b *testing.B) { benchEncrypt(b, env, size, phicrypt.Config{FrameLength: fl}) },
	}
}

func phiDecrypt(env *Env, size int64, fl int) Case {
	return Case{
		Name: name(ImplPhicrypt, "message-decrypt", size, frameVariant(fl)), Impl: ImplPhicrypt, Op: "message-decrypt",
		Suite: Suite0478, Size: size, FrameLength: fl,
		Bench: func(b *testing.B) { benchDecrypt(b, env, size, phicrypt.Config{FrameLength: fl}) },
	}
}

func phiSuiteEncrypt(env *Env, size int64, suite string) Case {
	return Case{
		Name: name(ImplPhicrypt, "message-encrypt", size, suiteVariant(suite)), Impl: ImplPhicrypt, Op: "message-encrypt",
		Suite: suite, Size: size,
		Bench: func(b *testing.B) { benchEncrypt(b, env, size, phicrypt.Config{Suite: suiteOf(suite)}) },
	}
}

func phiSuiteDecrypt(env *Env, size int64, suite string) Case {
	return Case{
		Name: name(ImplPhicrypt, "message-decrypt", size, suiteVariant(suite)), Impl: ImplPhicrypt, Op: "message-decrypt",
		Suite: suite, Size: size,
		Bench: func(b *testing.B) { benchDecrypt(b, env, size, phicrypt.Config{Suite: suiteOf(suite)}) },
	}
}

func benchEncrypt(b *testing.B, env *Env, size int64, cfg phicrypt.Config) {
	enc := encryptor(b, env, cfg)
	ctx := context.Background()
	pt := env.Plaintext(size)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Encrypt(ctx, pt, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func benchDecrypt(b *testing.B, env *Env, size int64, cfg phicrypt.Config) {
	enc := encryptor(b, env, cfg)
	ctx := context.Background()
	msg, err := enc.Encrypt(ctx, env.Plaintext(size), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := enc.Decrypt(ctx, msg, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// kmsEncryptor is an Encryptor over a KMS keyring on kmsmock whose client
// counts its calls, with cache when it is not nil.
func kmsEncryptor(b *testing.B, env *Env, cache *phicrypt.Cache) (*phicrypt.Encryptor, *keyring.CountingKMS) {
	client, arn, err := env.KMS()
	if err != nil {
		b.Fatal(err)
	}
	counting := keyring.NewCountingKMS(client)
	kr, err := keyring.NewKMS(keyring.KMSConfig{Client: counting, Generator: arn})
	if err != nil {
		b.Fatal(err)
	}
	return encryptor(b, env, phicrypt.Config{Keyring: kr, Cache: cache}), counting
}

func newCache(b *testing.B) *phicrypt.Cache {
	cache, err := phicrypt.NewCache(phicrypt.CacheConfig{MaxAge: time.Hour, RefreshAhead: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cache.Close() })
	return cache
}

func totalCalls(c *keyring.CountingKMS) uint64 {
	k := c.Calls()
	return k.GenerateDataKey + k.Encrypt + k.Decrypt
}

// reportKMS reports the KMS calls made since before, per iteration.
func reportKMS(b *testing.B, c *keyring.CountingKMS, before uint64) {
	b.ReportMetric(float64(totalCalls(c)-before)/float64(b.N), KMSCallsMetric)
}

// cachedEncrypt is a 1 KiB message under a KMS keyring on kmsmock behind a
// phicrypt.Cache: one GenerateDataKey, then cache hits.
func cachedEncrypt(env *Env) Case {
	return Case{
		Name: name(ImplPhicrypt, "cached-encrypt", KiB), Impl: ImplPhicrypt, Op: "cached-encrypt",
		Suite: Suite0478, Size: KiB,
		Bench: func(b *testing.B) {
			enc, counting := kmsEncryptor(b, env, newCache(b))
			ctx := context.Background()
			pt := env.Plaintext(KiB)
			if _, err := enc.Encrypt(ctx, pt, nil); err != nil { // the one miss
				b.Fatal(err)
			}
			before := totalCalls(counting)
			b.SetBytes(KiB)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc.Encrypt(ctx, pt, nil); err != nil {
					b.Fatal(err)
				}
			}
			reportKMS(b, counting, before)
		},
	}
}

// cachedDecrypt decrypts a 1 KiB message whose data key the cache holds.
// The record schema has no op for it, so it shows in the table only.
func cachedDecrypt(env *Env) Case {
	return Case{
		Name: name(ImplPhicrypt, "cached-decrypt", KiB), Impl: ImplPhicrypt, Op: "message-decrypt",
		Suite: Suite0478, Size: KiB, NoJSON: true,
		Bench: func(b *testing.B) {
			enc, counting := kmsEncryptor(b, env, newCache(b))
			ctx := context.Background()
			msg, err := enc.Encrypt(ctx, env.Plaintext(KiB), nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := enc.Decrypt(ctx, msg, nil); err != nil { // the one miss
				b.Fatal(err)
			}
			before := totalCalls(counting)
			b.SetBytes(KiB)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := enc.Decrypt(ctx, msg, nil); err != nil {
					b.Fatal(err)
				}
			}
			reportKMS(b, counting, before)
		},
	}
}

// kmsEncrypt is a 1 KiB message under the KMS keyring without a cache: one
// GenerateDataKey over loopback HTTP per message, the counterpart of Tink's
// KMS envelope AEAD. Its record has kms_calls_per_op 1, which tells it
// from the raw AES keyring's.
func kmsEncrypt(env *Env) Case {
	return Case{
		Name: name(ImplPhicrypt, "message-encrypt", KiB, "kms"), Impl: ImplPhicrypt, Op: "message-encrypt",
		Suite: Suite0478, Size: KiB,
		Bench: func(b *testing.B) {
			enc, counting := kmsEncryptor(b, env, nil)
			ctx := context.Background()
			pt := env.Plaintext(KiB)
			before := totalCalls(counting)
			b.SetBytes(KiB)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc.Encrypt(ctx, pt, nil); err != nil {
					b.Fatal(err)
				}
			}
			reportKMS(b, counting, before)
		},
	}
}
