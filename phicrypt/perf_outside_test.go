package phicrypt_test

// Outside review of the performance work (issue 13): pooled scratch, reused
// keyring materials and parallel sealing, checked through the public API.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

func outsideRawAES(t testing.TB, name string) *keyring.RawAES {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	kr, err := keyring.NewRawAES("outside", name, key)
	require.NoError(t, err)
	return kr
}

func outsideEncryptor(t testing.TB, cfg phicrypt.Config) *phicrypt.Encryptor {
	t.Helper()
	e, err := phicrypt.New(cfg)
	require.NoError(t, err)
	return e
}

func outsideCache(t testing.TB) *phicrypt.Cache {
	t.Helper()
	c, err := phicrypt.NewCache(phicrypt.CacheConfig{MaxAge: time.Minute, MaxMessages: 1 << 20, MaxBytes: 1 << 40, Capacity: 64})
	require.NoError(t, err)
	return c
}

// TestOutsideConcurrentAliasing runs Encrypt, Decrypt and NewReaderAt on
// one Encryptor from many goroutines, each with its own context values,
// and scribbles over everything it gets back: no call may see another's
// plaintext or context, and nothing returned may share memory with pooled
// state.
func TestOutsideConcurrentAliasing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cache bool
		suite phicrypt.Suite
	}{{"nocache", false, 0}, {"cache", true, 0}, {"signed", true, phicrypt.SuiteCommittedSigned}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := phicrypt.Config{Keyring: outsideRawAES(t, "k"), FrameLength: 1024, Suite: tc.suite, Workers: 2}
			if tc.cache {
				cfg.Cache = outsideCache(t)
			}
			e := outsideEncryptor(t, cfg)
			ctx := context.Background()
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 30 {
						// Half the goroutines share one context (cache hits), half have their own.
						ec := map[string]string{"tenant": "t", "g": fmt.Sprint(g % 2), "i": fmt.Sprint(i)}
						if g%2 == 0 {
							ec = map[string]string{"tenant": "t"}
						}
						want := maps.Clone(ec)
						size := []int{0, 1, 1023, 1024, 5000, 70000}[i%6]
						pt := bytes.Repeat([]byte{byte(g*31 + i)}, size)
						msg, err := e.Encrypt(ctx, pt, ec)
						if !assertNoErr(t, err) {
							return
						}
						clear(ec) // the caller reuses its map
						keep := bytes.Clone(msg)
						got, gotEC, err := e.Decrypt(ctx, msg, nil)
						if !assertNoErr(t, err) {
							return
						}
						if !bytes.Equal(got, pt) || !maps.Equal(gotEC, want) {
							t.Errorf("g%d i%d: decrypt gave another message's plaintext or context", g, i)
							return
						}
						ra, err := e.NewReaderAt(ctx, bytes.NewReader(msg), int64(len(msg)), want)
						if !assertNoErr(t, err) {
							return
						}
						if size > 0 {
							p := make([]byte, size/2+1)
							n, err := ra.ReadAt(p, int64(size/3))
							if err != nil && err != io.EOF || !bytes.Equal(p[:n], pt[size/3:size/3+n]) {
								t.Errorf("g%d i%d: ReadAt: %v", g, i, err)
								return
							}
						}
						if !maps.Equal(ra.EncryptionContext(), want) {
							t.Errorf("g%d i%d: ReaderAt context differs", g, i)
						}
						// Scribble over what we got back; later calls must not see it.
						for k := range gotEC {
							gotEC[k] = "scribbled"
						}
						gotEC["extra"] = "x"
						clear(got)
						got2, gotEC2, err := e.Decrypt(ctx, keep, want)
						if !assertNoErr(t, err) {
							return
						}
						if !bytes.Equal(got2, pt) || !maps.Equal(gotEC2, want) || !bytes.Equal(msg, keep) {
							t.Errorf("g%d i%d: a returned context, plaintext or message shares memory with another call", g, i)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

func assertNoErr(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Errorf("unexpected error: %v", err)
		return false
	}
	return true
}

// TestOutsideEncryptAppendKeepsDst checks that EncryptAppend leaves dst's
// prefix alone and that a message is not changed by the next one.
func TestOutsideEncryptAppendKeepsDst(t *testing.T) {
	e := outsideEncryptor(t, phicrypt.Config{Keyring: outsideRawAES(t, "k"), Cache: outsideCache(t), Workers: 2, FrameLength: 4096})
	ctx := context.Background()
	prefix := []byte("prefix-bytes")
	buf := make([]byte, len(prefix), 8<<20)
	copy(buf, prefix)
	pt := make([]byte, 3<<20)
	rand.Read(pt)
	msg, err := e.EncryptAppend(ctx, buf, pt, nil)
	require.NoError(t, err)
	require.Equal(t, prefix, msg[:len(prefix)])
	first := bytes.Clone(msg)
	msg2, err := e.EncryptAppend(ctx, nil, pt, nil)
	require.NoError(t, err)
	require.Equal(t, first, msg)
	for _, m := range [][]byte{msg[len(prefix):], msg2} {
		got, _, err := e.Decrypt(ctx, m, nil)
		require.NoError(t, err)
		require.Equal(t, pt, got)
	}
}

// TestOutsideEncryptAppendOverlap: a dst whose spare capacity holds the
// plaintext (the crypto/cipher idiom plaintext[:0]) cannot be encrypted in
// place, since the header comes first. The call must not return a message
// that silently holds other bytes: the message goes to a new array.
func TestOutsideEncryptAppendOverlap(t *testing.T) {
	ctx := context.Background()
	for _, workers := range []int{1, 2} {
		for _, size := range []int{100, 5000, 3 << 20} {
			t.Run(fmt.Sprintf("w%d/%d", workers, size), func(t *testing.T) {
				e := outsideEncryptor(t, phicrypt.Config{Keyring: outsideRawAES(t, "k"), Workers: workers, FrameLength: 4096})
				buf := make([]byte, size, 2*size+4096)
				rand.Read(buf)
				pt := bytes.Clone(buf)
				var msg []byte
				var err error
				panicked := func() (p bool) {
					defer func() { p = recover() != nil }()
					msg, err = e.EncryptAppend(ctx, buf[:0], buf[:size], nil)
					return false
				}()
				require.False(t, panicked, "EncryptAppend(buf[:0], buf) panicked; it writes the message elsewhere")
				require.NoError(t, err)
				got, _, err := e.Decrypt(ctx, msg, nil)
				require.NoError(t, err)
				require.Equal(t, pt, got, "EncryptAppend(buf[:0], buf) returned a message of other bytes than the plaintext given")
			})
			t.Run(fmt.Sprintf("w%d/%d/after", workers, size), func(t *testing.T) {
				// The plaintext in dst's written part is fine: the message goes after it.
				e := outsideEncryptor(t, phicrypt.Config{Keyring: outsideRawAES(t, "k"), Workers: workers, FrameLength: 4096})
				buf := make([]byte, size, 2*size+4096)
				rand.Read(buf)
				pt := bytes.Clone(buf)
				msg, err := e.EncryptAppend(ctx, buf, buf, nil)
				require.NoError(t, err)
				require.Equal(t, pt, msg[:size])
				got, _, err := e.Decrypt(ctx, msg[size:], nil)
				require.NoError(t, err)
				require.Equal(t, pt, got)
			})
		}
	}
}

// TestOutsideParallelSizes seals with Workers > 1 at frame lengths and
// sizes around the parallel threshold and batch size, and reads back with
// an Encryptor of another configuration, whole, streamed and by range.
func TestOutsideParallelSizes(t *testing.T) {
	ctx := context.Background()
	kr := outsideRawAES(t, "k")
	reader := outsideEncryptor(t, phicrypt.Config{Keyring: kr, Cache: outsideCache(t), MaxFrameLength: 4 << 20})
	const mib = 1 << 20
	for _, suite := range []phicrypt.Suite{phicrypt.SuiteCommitted, phicrypt.SuiteCommittedSigned} {
		for _, fl := range []int{64, 4096, 128 << 10, mib, 3 * mib} {
			for _, size := range []int{mib - 1, mib, mib + 1, 2 * fl, 3*mib + 17, 4 * mib} {
				if fl == 64 && size > 2*mib {
					continue // many tiny frames: slow under -race and nothing new
				}
				t.Run(fmt.Sprintf("%v/fl%d/%d", suite, fl, size), func(t *testing.T) {
					w := outsideEncryptor(t, phicrypt.Config{Keyring: kr, Suite: suite, FrameLength: fl, Workers: 3})
					pt := make([]byte, size)
					rand.Read(pt)
					msg, err := w.Encrypt(ctx, pt, map[string]string{"a": "b"})
					require.NoError(t, err)
					got, ec, err := reader.Decrypt(ctx, msg, map[string]string{"a": "b"})
					require.NoError(t, err)
					require.True(t, bytes.Equal(pt, got))
					require.Equal(t, map[string]string{"a": "b"}, ec)
					r, err := reader.NewReader(ctx, bytes.NewReader(msg), nil)
					require.NoError(t, err)
					streamed, err := io.ReadAll(r)
					require.NoError(t, err)
					require.True(t, bytes.Equal(pt, streamed))
					ra, err := reader.NewReaderAt(ctx, bytes.NewReader(msg), int64(len(msg)), nil)
					require.NoError(t, err)
					p := make([]byte, 3*fl/2+1)
					off := int64(size) - int64(len(p)) - 1
					off = max(off, 0)
					n, err := ra.ReadAt(p, off)
					if err != io.EOF {
						require.NoError(t, err)
					}
					require.True(t, bytes.Equal(pt[off:off+int64(n)], p[:n]))
					// The same message from one worker has the same length.
					one := outsideEncryptor(t, phicrypt.Config{Keyring: kr, Suite: suite, FrameLength: fl})
					msg1, err := one.Encrypt(ctx, pt, map[string]string{"a": "b"})
					require.NoError(t, err)
					if suite == phicrypt.SuiteCommitted {
						require.Equal(t, len(msg1), len(msg))
					}
				})
			}
		}
	}
}

// keptKeyring keeps the data key it makes and the encrypted data key it
// makes, as the Keyring contract allows (setting copies of the data key in
// the materials, which become phicrypt's), and records the copies it gave.
type keptKeyring struct {
	mu    sync.Mutex
	key   keyring.Secret
	edk   keyring.EncryptedDataKey
	orig  []byte
	given []keyring.Secret
}

func (k *keptKeyring) giveKey() keyring.Secret {
	c := keyring.Secret(bytes.Clone(k.key))
	k.given = append(k.given, c)
	return c
}

// givenWiped reports whether every copy handed out is wiped.
func (k *keptKeyring) givenWiped() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, g := range k.given {
		if !bytes.Equal(g, make([]byte, len(g))) {
			return false
		}
	}
	return len(k.given) > 0
}

func newKeptKeyring() *keptKeyring {
	k := &keptKeyring{key: make(keyring.Secret, 32)}
	rand.Read(k.key)
	k.orig = bytes.Clone(k.key)
	k.edk = keyring.EncryptedDataKey{ProviderID: "kept", ProviderInfo: []byte("info"), Ciphertext: []byte("not-really-wrapped")}
	return k
}

func (k *keptKeyring) OnEncrypt(_ context.Context, m *keyring.EncryptionMaterials) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(m.DataKey) == 0 {
		m.DataKey = k.giveKey()
	}
	m.EncryptedDataKeys = append(m.EncryptedDataKeys, k.edk)
	return nil
}

func (k *keptKeyring) OnDecrypt(_ context.Context, m *keyring.DecryptionMaterials, edks []keyring.EncryptedDataKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, e := range edks {
		if e.ProviderID == "kept" && bytes.Equal(e.Ciphertext, k.edk.Ciphertext) {
			m.DataKey = k.giveKey()
			return nil
		}
	}
	return fmt.Errorf("no key")
}

func (k *keptKeyring) intact() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return bytes.Equal(k.key, k.orig) && string(k.edk.Ciphertext) == "not-really-wrapped" && string(k.edk.ProviderInfo) == "info"
}

// TestOutsideKeyringKeepsWhatItMakes: the Keyring doc says a keyring may
// keep the encrypted data keys it makes, and that the data key it sets is
// the caller's to wipe. Such a keyring must not find what it keeps changed
// after phicrypt used it, and phicrypt must wipe what it was given.
func TestOutsideKeyringKeepsWhatItMakes(t *testing.T) {
	ctx := context.Background()
	for _, cache := range []bool{false, true} {
		t.Run(fmt.Sprintf("cache=%v", cache), func(t *testing.T) {
			k := newKeptKeyring()
			cfg := phicrypt.Config{Keyring: k}
			if cache {
				c, err := phicrypt.NewCache(phicrypt.CacheConfig{MaxAge: time.Minute, MaxMessages: 1, MaxBytes: 1 << 20, Capacity: 1})
				require.NoError(t, err)
				cfg.Cache = c
			}
			e := outsideEncryptor(t, cfg)
			for i := range 3 {
				msg, err := e.Encrypt(ctx, []byte("hello"), map[string]string{"i": fmt.Sprint(i)})
				require.NoError(t, err)
				_, _, err = e.Decrypt(ctx, msg, nil)
				require.NoError(t, err)
				require.True(t, k.intact(), "message %d: the keyring's own data key or encrypted data key was changed by phicrypt", i)
				if !cache {
					require.True(t, k.givenWiped(), "message %d: a data key phicrypt was given is not wiped after the call", i)
				}
			}
		})
	}
}

// lentCheckKeyring wraps a keyring and checks, during the call, that the
// materials and edks it was lent are what the message holds, then
// records copies to compare afterwards.
type lentCheckKeyring struct {
	inner keyring.Keyring
	t     *testing.T
}

func (l *lentCheckKeyring) OnEncrypt(ctx context.Context, m *keyring.EncryptionMaterials) error {
	ec := maps.Clone(m.EncryptionContext)
	before := len(m.EncryptedDataKeys)
	err := l.inner.OnEncrypt(ctx, m)
	if !maps.Equal(ec, m.EncryptionContext) {
		l.t.Errorf("the encryption context changed during OnEncrypt")
	}
	if err == nil && len(m.EncryptedDataKeys) <= before {
		l.t.Errorf("no EDK appended")
	}
	return err
}

func (l *lentCheckKeyring) OnDecrypt(ctx context.Context, m *keyring.DecryptionMaterials, edks []keyring.EncryptedDataKey) error {
	ec := maps.Clone(m.EncryptionContext)
	cp := make([]keyring.EncryptedDataKey, len(edks))
	for i, e := range edks {
		cp[i] = keyring.EncryptedDataKey{ProviderID: e.ProviderID, ProviderInfo: bytes.Clone(e.ProviderInfo), Ciphertext: bytes.Clone(e.Ciphertext)}
	}
	err := l.inner.OnDecrypt(ctx, m, edks)
	if !maps.Equal(ec, m.EncryptionContext) {
		l.t.Errorf("the encryption context changed during OnDecrypt")
	}
	for i := range edks {
		if edks[i].ProviderID != cp[i].ProviderID || !bytes.Equal(edks[i].ProviderInfo, cp[i].ProviderInfo) || !bytes.Equal(edks[i].Ciphertext, cp[i].Ciphertext) {
			l.t.Errorf("an EDK changed during OnDecrypt")
		}
	}
	return err
}

// TestOutsideBuiltinKeyringsConcurrent runs every built-in keyring kind
// under one Encryptor from several goroutines with distinct contexts,
// scribbling over messages and contexts after each call: a keyring that
// kept a lent map or EDK would fail (or race) on the next message.
func TestOutsideBuiltinKeyringsConcurrent(t *testing.T) {
	env := testkeys.New(t, testkeys.Options{})
	kmsKR, err := keyring.NewKMS(keyring.KMSConfig{Client: env.Client, Generator: env.ARN})
	require.NoError(t, err)
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	rsaKR, err := keyring.NewRawRSA(keyring.RawRSAConfig{Namespace: "esc", Name: "rsa", PublicKey: &priv.PublicKey, PrivateKey: priv, Padding: keyring.RSAPaddingOAEPSHA256})
	require.NoError(t, err)
	hk, err := keyring.GenerateHPKEEscrowKey()
	require.NoError(t, err)
	hpkeKR, err := keyring.NewHPKEEscrowRecovery("hpke", hk)
	require.NoError(t, err)
	a, b, c := outsideRawAES(t, "a"), outsideRawAES(t, "b"), outsideRawAES(t, "c")
	multi, err := keyring.NewMulti(a, rsaKR, hpkeKR, kmsKR)
	require.NoError(t, err)
	thr, err := keyring.NewThreshold(keyring.ThresholdConfig{Threshold: 2, Children: []keyring.Keyring{a, b, c}})
	require.NoError(t, err)
	for name, kr := range map[string]keyring.Keyring{"kms": kmsKR, "multi": multi, "threshold": thr, "rsa": rsaKR, "hpke": hpkeKR} {
		t.Run(name, func(t *testing.T) {
			for _, cache := range []bool{false, true} {
				cfg := phicrypt.Config{Keyring: &lentCheckKeyring{inner: kr, t: t}}
				if cache {
					cfg.Cache = outsideCache(t)
				}
				e := outsideEncryptor(t, cfg)
				ctx := context.Background()
				var wg sync.WaitGroup
				for g := range 4 {
					wg.Go(func() {
						for i := range 5 {
							ec := map[string]string{"g": fmt.Sprint(g), "i": fmt.Sprint(i)}
							want := maps.Clone(ec)
							pt := []byte(fmt.Sprintf("plaintext %d %d", g, i))
							msg, err := e.Encrypt(ctx, pt, ec)
							if !assertNoErr(t, err) {
								return
							}
							ec["g"] = "scribbled"
							got, gotEC, err := e.Decrypt(ctx, msg, nil)
							if !assertNoErr(t, err) {
								return
							}
							if !bytes.Equal(got, pt) || !maps.Equal(gotEC, want) {
								t.Errorf("%s: wrong plaintext or context", name)
							}
							clear(msg) // the caller reuses its message buffer
							gotEC["g"] = "scribbled"
						}
					})
				}
				wg.Wait()
			}
		})
	}
}

// TestOutsideNoSecretsInPooledBuffers: after a message holding a canary
// plaintext, later outputs (successful or failed) never hold the canary,
// nor a known data key.
func TestOutsideNoSecretsInPooledBuffers(t *testing.T) {
	ctx := context.Background()
	canary := bytes.Repeat([]byte("CANARY-PHI-0123456789-"), 400) // ~8.8 KB, several frames
	k := newKeptKeyring()
	for _, cache := range []bool{false, true} {
		cfg := phicrypt.Config{Keyring: k, FrameLength: 1024}
		if cache {
			cfg.Cache = outsideCache(t)
		}
		e := outsideEncryptor(t, cfg)
		secretMsg, err := e.Encrypt(ctx, canary, map[string]string{"patient": "CANARY-CTX-VALUE"})
		require.NoError(t, err)
		_, _, err = e.Decrypt(ctx, secretMsg, nil)
		require.NoError(t, err)
		ra, err := e.NewReaderAt(ctx, bytes.NewReader(secretMsg), int64(len(secretMsg)), nil)
		require.NoError(t, err)
		p := make([]byte, 5000)
		_, err = ra.ReadAt(p, 100)
		require.NoError(t, err)

		check := func(what string, b []byte) {
			t.Helper()
			b = b[:cap(b)]
			require.False(t, bytes.Contains(b, canary[:32]), "%s holds the earlier plaintext", what)
			require.False(t, bytes.Contains(b, []byte("CANARY-CTX-VALUE")), "%s holds the earlier context", what)
			require.False(t, bytes.Contains(b, k.orig), "%s holds the data key", what)
		}
		other := make([]byte, len(canary))
		msg, err := e.Encrypt(ctx, other, map[string]string{"x": "y"})
		require.NoError(t, err)
		check("a later message", msg)
		// A tampered later message: the failed decrypt's output and the
		// ReaderAt's failed read must not show the canary.
		bad := bytes.Clone(msg)
		bad[len(bad)-5] ^= 1
		out, _, err := e.Decrypt(ctx, bad, nil)
		require.Error(t, err)
		check("a failed decrypt", out)
		dst := make([]byte, 0, 3*len(canary))
		out, _, err = e.DecryptAppend(ctx, dst, bad, nil)
		require.Error(t, err)
		check("a failed DecryptAppend's dst", out)
		check("a failed DecryptAppend's buffer", dst)
		ra, err = e.NewReaderAt(ctx, bytes.NewReader(bad), int64(len(bad)), nil)
		if err == nil {
			q := make([]byte, len(canary))
			_, err = ra.ReadAt(q, 0)
			require.Error(t, err)
			check("a failed ReadAt", q)
		}
	}
}

// TestOutsideDecryptAppendOverlap: DecryptAppend(msg[:0], msg), the
// crypto/cipher idiom for opening in place, either works or panics on the
// caller's goroutine; it never returns other bytes.
func TestOutsideDecryptAppendOverlap(t *testing.T) {
	ctx := context.Background()
	for _, size := range []int{0, 100, 5000, 3 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			e := outsideEncryptor(t, phicrypt.Config{Keyring: outsideRawAES(t, "k"), FrameLength: 4096})
			pt := make([]byte, size)
			rand.Read(pt)
			msg, err := e.Encrypt(ctx, pt, nil)
			require.NoError(t, err)
			var got []byte
			panicked := func() (p bool) {
				defer func() { p = recover() != nil }()
				got, _, err = e.DecryptAppend(ctx, msg[:0], msg, nil)
				return false
			}()
			if panicked {
				return
			}
			require.NoError(t, err)
			require.True(t, bytes.Equal(pt, got), "DecryptAppend(msg[:0], msg) returned other bytes than the plaintext")
		})
	}
}

// TestOutsideReaderAtConcurrent reads one ReaderAt from many goroutines,
// while other ReaderAts of other frame lengths share the Encryptor's
// pools, and checks every byte.
func TestOutsideReaderAtConcurrent(t *testing.T) {
	ctx := context.Background()
	kr := outsideRawAES(t, "k")
	reader := outsideEncryptor(t, phicrypt.Config{Keyring: kr})
	type msg struct {
		pt []byte
		ra *phicrypt.ReaderAt
	}
	var msgs []msg
	for _, fl := range []int{1000, 1024, 4096, 65536, 100000} {
		w := outsideEncryptor(t, phicrypt.Config{Keyring: kr, FrameLength: fl, Workers: 2})
		pt := make([]byte, 1<<20+fl/3)
		rand.Read(pt)
		m, err := w.Encrypt(ctx, pt, nil)
		require.NoError(t, err)
		ra, err := reader.NewReaderAt(ctx, bytes.NewReader(m), int64(len(m)), nil)
		require.NoError(t, err)
		msgs = append(msgs, msg{pt, ra})
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			var seed [2]byte
			for i := range 40 {
				m := msgs[(g+i)%len(msgs)]
				rand.Read(seed[:])
				off := int64(seed[0]) * int64(len(m.pt)) / 256
				p := make([]byte, int(seed[1])*300+1)
				n, err := m.ra.ReadAt(p, off)
				if err != nil && err != io.EOF || !bytes.Equal(p[:n], m.pt[off:off+int64(n)]) {
					t.Errorf("g%d: ReadAt(%d, %d) = %d, %v, or wrong bytes", g, len(p), off, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestOutsideStreamWorkers writes streams with Workers > 1 in uneven
// writes and reads them back whole and by range.
func TestOutsideStreamWorkers(t *testing.T) {
	ctx := context.Background()
	kr := outsideRawAES(t, "k")
	reader := outsideEncryptor(t, phicrypt.Config{Keyring: kr})
	for _, fl := range []int{100, 4096, 1 << 20} {
		for _, size := range []int{0, 1, fl, 3*fl + 7, 5 << 20} {
			t.Run(fmt.Sprintf("fl%d/%d", fl, size), func(t *testing.T) {
				w := outsideEncryptor(t, phicrypt.Config{Keyring: kr, FrameLength: fl, Workers: 3})
				pt := make([]byte, size)
				rand.Read(pt)
				var out bytes.Buffer
				wc, err := w.NewWriter(ctx, &out, map[string]string{"k": "v"})
				require.NoError(t, err)
				for rest := pt; len(rest) > 0; {
					n := min(len(rest), 1+len(rest)%7919)
					_, err := wc.Write(rest[:n])
					require.NoError(t, err)
					rest = rest[n:]
				}
				require.NoError(t, wc.Close())
				got, ec, err := reader.Decrypt(ctx, out.Bytes(), nil)
				require.NoError(t, err)
				require.True(t, bytes.Equal(pt, got))
				require.Equal(t, map[string]string{"k": "v"}, ec)
			})
		}
	}
}

// TestOutsideReaderRefusesLargerFrames: a reader whose MaxFrameLength is
// below the message's frame length refuses it with an error, through every
// entry point, after parallel sealing made it.
func TestOutsideReaderRefusesLargerFrames(t *testing.T) {
	ctx := context.Background()
	kr := outsideRawAES(t, "k")
	w := outsideEncryptor(t, phicrypt.Config{Keyring: kr, FrameLength: 1 << 20, MaxFrameLength: 1 << 20, Workers: 2})
	pt := make([]byte, 3<<20)
	msg, err := w.Encrypt(ctx, pt, nil)
	require.NoError(t, err)
	r := outsideEncryptor(t, phicrypt.Config{Keyring: kr, MaxFrameLength: 64 << 10, Cache: outsideCache(t)})
	_, _, err = r.Decrypt(ctx, msg, nil)
	require.ErrorIs(t, err, phicrypt.ErrLimit)
	_, err = r.NewReaderAt(ctx, bytes.NewReader(msg), int64(len(msg)), nil)
	require.ErrorIs(t, err, phicrypt.ErrLimit)
	sr, err := r.NewReader(ctx, bytes.NewReader(msg), nil)
	if err == nil {
		_, err = io.ReadAll(sr)
	}
	require.ErrorIs(t, err, phicrypt.ErrLimit)
}
