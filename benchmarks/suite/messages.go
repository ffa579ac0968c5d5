package suite

import (
	"cmp"
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
// and the AWS Go ESDK, with the 64 MiB encrypt also on N workers; the
// signed suite at 1 KiB (and 1 MiB in the full list); and the KMS keyring
// with and without a cache beside Tink's KMS envelope AEAD. phicrypt's
// records measure EncryptAppend and Open into a reused buffer, as raw GCM
// reuses dst; Encrypt and Decrypt, with fresh output, are the table's
// "alloc" rows. Tink's AEAD and the AWS Go ESDK have no append form and
// allocate their output.
func messageCases(env *Env, o Options) []Case {
	var cs []Case
	for _, n := range o.MessageSizes() {
		cs = append(cs,
			rawSeal(env, n, 1), rawOpen(env, n),
			phiEncrypt(env, n, 0, 1), phiDecrypt(env, n, 0),
			phiMessage(env, message{op: opEncrypt, size: n, alloc: true}),
			phiMessage(env, message{op: opDecrypt, size: n, alloc: true}),
			tinkAEADEncrypt(env, n), tinkAEADDecrypt(env, n),
			awsEncrypt(env, n, Suite0478), awsDecrypt(env, n, Suite0478))
	}
	cs = append(cs, phiEncrypt(env, 64*MiB, 0, ParallelWorkers()))
	signed := []int64{KiB}
	if !o.Quick {
		signed = append(signed, MiB)
	}
	for _, n := range signed {
		cs = append(cs,
			phiMessage(env, message{op: opEncrypt, size: n, suite: Suite0578}),
			phiMessage(env, message{op: opDecrypt, size: n, suite: Suite0578}),
			awsEncrypt(env, n, Suite0578), awsDecrypt(env, n, Suite0578))
	}
	cs = append(cs, cachedEncrypt(env, false), cachedEncrypt(env, true), cachedMiss(env), cachedDecrypt(env, false), cachedDecrypt(env, true),
		kmsEncrypt(env), tinkEnvelope(env))
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

// The ops of phicrypt's message cases.
const (
	opEncrypt = "message-encrypt"
	opDecrypt = "message-decrypt"
)

// message is one of phicrypt's in-memory message cases under the raw AES
// keyring.
type message struct {
	op          string // opEncrypt or opDecrypt
	size        int64
	suite       string // "" for Suite0478
	frameLength int    // 0 for the default
	workers     int    // encrypt only: Config.Workers, named in the case when set
	// alloc measures Encrypt and Decrypt, which return fresh output, as a
	// table-only row beside the record's append forms.
	alloc bool
}

func phiMessage(env *Env, m message) Case {
	suite := cmp.Or(m.suite, Suite0478)
	variants := []string{suiteVariant(suite), frameVariant(m.frameLength)}
	workers := 0
	if m.op == opEncrypt {
		workers = max(m.workers, 1)
		if m.workers > 0 {
			variants = append(variants, workersVariant(m.workers))
		}
	}
	if m.alloc {
		variants = append(variants, "alloc")
	}
	cfg := phicrypt.Config{Suite: suiteOf(suite), FrameLength: m.frameLength, Workers: m.workers}
	return Case{
		Name: name(ImplPhicrypt, m.op, m.size, variants...), Impl: ImplPhicrypt, Op: m.op,
		Suite: suite, Size: m.size, Workers: workers, FrameLength: m.frameLength, NoJSON: m.alloc,
		Bench: func(b *testing.B) {
			enc, pt := encryptor(b, env, cfg), env.Plaintext(m.size)
			if m.op == opEncrypt {
				encryptLoop(b, enc, pt, m.alloc, nil)
				return
			}
			decryptLoop(b, enc, encryptOnce(b, enc, pt), m.size, m.alloc, nil)
		},
	}
}

// phiEncrypt is the message-encrypt record at size with frame length fl
// (0: the default) on workers (named w2, w4... when more than one).
func phiEncrypt(env *Env, size int64, fl, workers int) Case {
	m := message{op: opEncrypt, size: size, frameLength: fl}
	if workers > 1 {
		m.workers = workers
	}
	return phiMessage(env, m)
}

func phiDecrypt(env *Env, size int64, fl int) Case {
	return phiMessage(env, message{op: opDecrypt, size: size, frameLength: fl})
}

func encryptOnce(b *testing.B, enc *phicrypt.Encryptor, pt []byte) []byte {
	msg, err := enc.Encrypt(context.Background(), pt, nil)
	if err != nil {
		b.Fatal(err)
	}
	return msg
}

// appendLoop runs appendTo once with no buffer (the first miss of a
// cache, and the output buffer's size), then measures size bytes an op:
// appendTo into that reused buffer for the records, as raw GCM reuses dst,
// or fresh when alloc, so the cost of a fresh output stays in the table.
// With counting set it reports the KMS calls of the measured ops.
func appendLoop(b *testing.B, size int64, alloc bool, counting *keyring.CountingKMS, appendTo func(dst []byte) ([]byte, error), fresh func() error) {
	out, err := appendTo(nil)
	if err != nil {
		b.Fatal(err)
	}
	measure(b, size, counting, func() error {
		if alloc {
			return fresh()
		}
		out, err = appendTo(out[:0])
		return err
	})
}

// encryptLoop measures EncryptAppend of pt (Encrypt when alloc).
func encryptLoop(b *testing.B, enc *phicrypt.Encryptor, pt []byte, alloc bool, counting *keyring.CountingKMS) {
	ctx := context.Background()
	appendLoop(b, int64(len(pt)), alloc, counting,
		func(dst []byte) ([]byte, error) { return enc.EncryptAppend(ctx, dst, pt, nil) },
		func() error { _, err := enc.Encrypt(ctx, pt, nil); return err })
}

// decryptLoop measures Open of msg, whose plaintext is size bytes
// (Decrypt when alloc). The records use Open: like cipher.AEAD's Open,
// which raw GCM's row measures, it returns the plaintext alone and checks
// the context the caller relies on through expect, as GCM checks its
// additional data. DecryptAppend would also build the map of the
// message's context that it returns, which raw GCM has no counterpart
// for; Decrypt, in the alloc row, returns that map and fresh output.
func decryptLoop(b *testing.B, enc *phicrypt.Encryptor, msg []byte, size int64, alloc bool, counting *keyring.CountingKMS) {
	ctx := context.Background()
	appendLoop(b, size, alloc, counting,
		func(dst []byte) ([]byte, error) { return enc.Open(ctx, dst, msg, nil) },
		func() error { _, _, err := enc.Decrypt(ctx, msg, nil); return err })
}

// CacheKMSLatency is what the kmsmock behind the cached-encrypt cases adds
// to every call: a KMS in the same region, a few milliseconds away, so a
// cache miss costs what it costs in production and a hit shows it does
// not wait.
const CacheKMSLatency = 5 * time.Millisecond

// kmsEncryptor is an Encryptor over a KMS keyring on a kmsmock that adds
// latency to every call, whose client counts its calls, with cache when it
// is not nil.
func kmsEncryptor(b *testing.B, env *Env, latency time.Duration, cache *phicrypt.Cache) (*phicrypt.Encryptor, *keyring.CountingKMS) {
	client, arn, err := env.KMSWithLatency(latency)
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

func newCache(b *testing.B, cfg phicrypt.CacheConfig) *phicrypt.Cache {
	cache, err := phicrypt.NewCache(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cache.Close() })
	return cache
}

// hitCache keeps a data key for an hour: after the first message, hits.
var hitCache = phicrypt.CacheConfig{MaxAge: time.Hour, RefreshAhead: time.Minute}

func totalCalls(c *keyring.CountingKMS) uint64 {
	if c == nil {
		return 0
	}
	k := c.Calls()
	return k.GenerateDataKey + k.Encrypt + k.Decrypt
}

// reportKMS reports the KMS calls made since before, per iteration (none
// without c).
func reportKMS(b *testing.B, c *keyring.CountingKMS, before uint64) {
	if c != nil {
		b.ReportMetric(float64(totalCalls(c)-before)/float64(b.N), KMSCallsMetric)
	}
}

// cachedEncrypt is a 1 KiB message under a KMS keyring on kmsmock,
// CacheKMSLatency away, behind a phicrypt.Cache: one GenerateDataKey, then
// cache hits (alloc: through Encrypt, a table-only row).
func cachedEncrypt(env *Env, alloc bool) Case {
	variant := ""
	if alloc {
		variant = "alloc"
	}
	return Case{
		Name: name(ImplPhicrypt, "cached-encrypt", KiB, variant), Impl: ImplPhicrypt, Op: "cached-encrypt",
		Suite: Suite0478, Size: KiB, Workers: 1, KMSLatency: CacheKMSLatency, NoJSON: alloc,
		Bench: func(b *testing.B) {
			enc, counting := kmsEncryptor(b, env, CacheKMSLatency, newCache(b, hitCache))
			encryptLoop(b, enc, env.Plaintext(KiB), alloc, counting)
		},
	}
}

// cachedMiss is cachedEncrypt with a cache that allows one message per
// data key, so that every message misses and waits for a GenerateDataKey
// CacheKMSLatency away. Its record has kms_calls_per_op 1, which tells it
// from the hit's.
func cachedMiss(env *Env) Case {
	return Case{
		Name: name(ImplPhicrypt, "cached-encrypt", KiB, "miss"), Impl: ImplPhicrypt, Op: "cached-encrypt",
		Suite: Suite0478, Size: KiB, Workers: 1, KMSLatency: CacheKMSLatency,
		Bench: func(b *testing.B) {
			miss := phicrypt.CacheConfig{MaxAge: time.Hour, MaxMessages: 1}
			enc, counting := kmsEncryptor(b, env, CacheKMSLatency, newCache(b, miss))
			encryptLoop(b, enc, env.Plaintext(KiB), false, counting)
		},
	}
}

// cachedDecrypt decrypts a 1 KiB message whose data key the cache holds
// (alloc: through Decrypt, with its fresh output). The record schema has no
// op for it, so it shows in the table only.
func cachedDecrypt(env *Env, alloc bool) Case {
	variant := ""
	if alloc {
		variant = "alloc"
	}
	return Case{
		Name: name(ImplPhicrypt, "cached-decrypt", KiB, variant), Impl: ImplPhicrypt, Op: opDecrypt,
		Suite: Suite0478, Size: KiB, KMSLatency: CacheKMSLatency, NoJSON: true,
		Bench: func(b *testing.B) {
			enc, counting := kmsEncryptor(b, env, CacheKMSLatency, newCache(b, hitCache))
			decryptLoop(b, enc, encryptOnce(b, enc, env.Plaintext(KiB)), KiB, alloc, counting)
		},
	}
}

// kmsEncrypt is a 1 KiB message under the KMS keyring without a cache: one
// GenerateDataKey over loopback HTTP per message (no added latency), the
// counterpart of Tink's KMS envelope AEAD. Its record has kms_calls_per_op
// 1, which tells it from the raw AES keyring's.
func kmsEncrypt(env *Env) Case {
	return Case{
		Name: name(ImplPhicrypt, opEncrypt, KiB, "kms"), Impl: ImplPhicrypt, Op: opEncrypt,
		Suite: Suite0478, Size: KiB, Workers: 1,
		Bench: func(b *testing.B) {
			enc, counting := kmsEncryptor(b, env, 0, nil)
			encryptLoop(b, enc, env.Plaintext(KiB), false, counting)
		},
	}
}
