package phicrypt_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// rewrapKeyrings are the keyring a message is written with (raw AES) and
// the one it is rewrapped to (KMS on kmsmock over HTTP).
func rewrapKeyrings(t *testing.T) (from, to keyring.Keyring) {
	t.Helper()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	client := l.Client("svc")
	key, err := client.CreateKey(context.Background(), &kms.CreateKeyInput{})
	require.NoError(t, err)
	to, err = keyring.NewKMS(keyring.KMSConfig{Client: client, Generator: aws.ToString(key.KeyMetadata.Arn)})
	require.NoError(t, err)
	return rawKeyring(t), to
}

func encryptorFor(t *testing.T, kr keyring.Keyring, suite phicrypt.Suite, frame int) *phicrypt.Encryptor {
	t.Helper()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, Suite: suite, FrameLength: frame})
	require.NoError(t, err)
	return enc
}

func TestRewrapHeaderMovesTheDataKey(t *testing.T) {
	ctx := context.Background()
	from, to := rewrapKeyrings(t)
	old := encryptorFor(t, from, phicrypt.SuiteCommitted, 1024)
	now := encryptorFor(t, to, phicrypt.SuiteCommitted, 1024)
	ec := map[string]string{"tenant": "clinic-7", "table": "scans"}
	pt := randomBytes(5000)
	msg, err := old.Encrypt(ctx, pt, ec)
	require.NoError(t, err)
	hl, err := old.HeaderLength(msg)
	require.NoError(t, err)
	body := bytes.Clone(msg[hl:])

	// The whole message may follow the header.
	nh, err := old.RewrapHeader(ctx, msg, map[string]string{"tenant": "clinic-7"}, to)
	require.NoError(t, err)
	n, err := now.HeaderLength(nh)
	require.NoError(t, err)
	require.Equal(t, len(nh), n, "RewrapHeader returns the header alone")
	require.Equal(t, msg[:1+2+32], nh[:1+2+32], "version, suite and message id are kept")
	require.NotEqual(t, msg[:hl], nh)

	rewrapped := append(bytes.Clone(nh), msg[hl:]...)
	require.Equal(t, body, rewrapped[len(nh):], "the body is untouched")
	got, gotEC, err := now.Decrypt(ctx, rewrapped, ec)
	require.NoError(t, err)
	require.Equal(t, pt, got)
	require.Equal(t, ec, gotEC)
	_, _, err = old.Decrypt(ctx, rewrapped, nil)
	require.ErrorIs(t, err, phicrypt.ErrNoKey, "the old keyring no longer opens it")

	// Ranged reads open the new header too.
	m, err := now.OpenHeader(ctx, rewrapped, nil)
	require.NoError(t, err)
	l, err := m.Layout(int64(len(rewrapped)))
	require.NoError(t, err)
	start, end := l.Span(2000, 100)
	part, err := m.OpenFrames(nil, l, start, rewrapped[start:end], 2000, 100)
	require.NoError(t, err)
	require.Equal(t, pt[2000:2100], part)

	// The header only, without the body, is enough.
	nh2, err := old.RewrapHeader(ctx, msg[:hl], nil, to)
	require.NoError(t, err)
	_, _, err = now.Decrypt(ctx, append(nh2, body...), nil)
	require.NoError(t, err)
}

func TestRewrapHeaderRefusesTamperedHeaders(t *testing.T) {
	ctx := context.Background()
	from, to := rewrapKeyrings(t)
	old := encryptorFor(t, from, phicrypt.SuiteCommitted, 256)
	msg, err := old.Encrypt(ctx, randomBytes(600), map[string]string{"tenant": "clinic-7"})
	require.NoError(t, err)
	hl, err := old.HeaderLength(msg)
	require.NoError(t, err)
	// The context value's last byte (the context is the only pair, right
	// after the aad length), the commitment key, the tag.
	ctxValue := 1 + 2 + 32 + 2 + 2 + 2 + len("tenant") + 2 + len("clinic-7") - 1
	for name, c := range map[string]struct {
		off  int
		want error
	}{
		"message id":     {off: 5, want: phicrypt.ErrAuthentication},
		"context value":  {off: ctxValue, want: phicrypt.ErrNoKey}, // the raw AES keyring binds the context
		"commitment key": {off: hl - 16 - 1, want: phicrypt.ErrAuthentication},
		"frame length":   {off: hl - 16 - 32 - 1, want: phicrypt.ErrAuthentication},
		"header tag":     {off: hl - 1, want: phicrypt.ErrAuthentication},
	} {
		t.Run(name, func(t *testing.T) {
			bad := bytes.Clone(msg[:hl])
			bad[c.off] ^= 0x01
			nh, err := old.RewrapHeader(ctx, bad, nil, to)
			require.ErrorIs(t, err, c.want)
			require.Nil(t, nh)
		})
	}
	_, err = old.RewrapHeader(ctx, msg[:hl-1], nil, to)
	require.ErrorIs(t, err, phicrypt.ErrShortHeader)
}

func TestRewrapHeaderChecksTheExpectedContext(t *testing.T) {
	ctx := context.Background()
	from, to := rewrapKeyrings(t)
	old := encryptorFor(t, from, phicrypt.SuiteCommitted, 256)
	msg, err := old.Encrypt(ctx, []byte("phi"), map[string]string{"tenant": "clinic-7"})
	require.NoError(t, err)
	_, err = old.RewrapHeader(ctx, msg, map[string]string{"tenant": "clinic-8"}, to)
	require.ErrorIs(t, err, phicrypt.ErrContext)
	require.NotContains(t, err.Error(), "clinic")
	// A pair the header does not store is authenticated-only context; the
	// raw AES keyring bound the stored context alone, so it does not unwrap.
	_, err = old.RewrapHeader(ctx, msg, map[string]string{"ward": "3"}, to)
	require.ErrorIs(t, err, phicrypt.ErrNoKey)

	required, err := phicrypt.New(phicrypt.Config{Keyring: from, RequiredContextKeys: []string{"patient"}})
	require.NoError(t, err)
	_, err = required.RewrapHeader(ctx, msg, nil, to)
	require.ErrorIs(t, err, phicrypt.ErrContext)
}

func TestRewrapHeaderChecksTheNewKeyring(t *testing.T) {
	ctx := context.Background()
	from, to := rewrapKeyrings(t)
	old := encryptorFor(t, from, phicrypt.SuiteCommitted, 256)
	msg, err := old.Encrypt(ctx, []byte("phi"), nil)
	require.NoError(t, err)

	// More wrapped keys than MaxEncryptedDataKeys (5) would make readers
	// refuse the message.
	children := make([]keyring.Keyring, 5)
	for i := range children {
		children[i] = rawKeyring(t)
	}
	many, err := keyring.NewMulti(to, children...)
	require.NoError(t, err)
	_, err = old.RewrapHeader(ctx, msg, nil, many)
	require.ErrorIs(t, err, phicrypt.ErrLimit)

	_, err = old.RewrapHeader(ctx, msg, nil, newKeyring{})
	require.ErrorContains(t, err, "replaced the data key")

	_, err = old.RewrapHeader(ctx, msg, nil, nil)
	require.Error(t, err)
}

// newKeyring breaks keyring.Keyring's contract: it makes a new data key
// even when given one.
type newKeyring struct{}

func (newKeyring) OnEncrypt(_ context.Context, m *keyring.EncryptionMaterials) error {
	m.DataKey = keyring.Secret(randomBytes(m.DataKeyLength))
	m.EncryptedDataKeys = append(m.EncryptedDataKeys, keyring.EncryptedDataKey{ProviderID: "x", Ciphertext: []byte("y")})
	return nil
}

func (newKeyring) OnDecrypt(context.Context, *keyring.DecryptionMaterials, []keyring.EncryptedDataKey) error {
	return errors.New("newKeyring decrypts nothing")
}

func TestRewrapSigned(t *testing.T) {
	ctx := context.Background()
	from, to := rewrapKeyrings(t)
	old := encryptorFor(t, from, phicrypt.SuiteCommittedSigned, 512)
	now := encryptorFor(t, to, phicrypt.SuiteCommittedSigned, 512)
	ec := map[string]string{"tenant": "clinic-7"}
	pt := randomBytes(3000)
	msg, err := old.Encrypt(ctx, pt, ec)
	require.NoError(t, err)
	hl, err := old.HeaderLength(msg)
	require.NoError(t, err)
	body, footer := splitFooter(t, msg, hl, 512)

	_, err = old.RewrapHeader(ctx, msg, nil, to)
	require.ErrorIs(t, err, phicrypt.ErrSignedRewrap)

	sr, err := old.RewrapSigned(ctx, msg, ec, to)
	require.NoError(t, err)
	_, err = sr.Write(body[:100])
	require.NoError(t, err)
	_, err = sr.Write(body[100:])
	require.NoError(t, err)
	nf, err := sr.Footer(footer)
	require.NoError(t, err)
	rewrapped := append(append(bytes.Clone(sr.Header()), body...), nf...)
	got, gotEC, err := now.Decrypt(ctx, rewrapped, ec)
	require.NoError(t, err)
	require.Equal(t, pt, got)
	require.Equal(t, ec, gotEC)
	_, _, err = old.Decrypt(ctx, rewrapped, nil)
	require.ErrorIs(t, err, phicrypt.ErrNoKey)
	_, err = sr.Footer(footer)
	require.Error(t, err, "Footer signs once")

	// A body altered by someone without the old signing key is not signed
	// anew.
	sr, err = old.RewrapSigned(ctx, msg, nil, to)
	require.NoError(t, err)
	bad := bytes.Clone(body)
	bad[len(bad)/2] ^= 1
	_, _ = sr.Write(bad)
	_, err = sr.Footer(footer)
	require.ErrorIs(t, err, phicrypt.ErrAuthentication)

	// An unsigned message is RewrapHeader's.
	unsigned, err := encryptorFor(t, from, phicrypt.SuiteCommitted, 512).Encrypt(ctx, pt, nil)
	require.NoError(t, err)
	_, err = old.RewrapSigned(ctx, unsigned, nil, to)
	require.Error(t, err)
}

// splitFooter returns a signed message's body and footer, walking its
// frames (frame length frame) from the end of its header at hl.
func splitFooter(t *testing.T, msg []byte, hl, frame int) (body, footer []byte) {
	t.Helper()
	off := hl
	for {
		if bytes.Equal(msg[off:off+4], []byte{0xff, 0xff, 0xff, 0xff}) {
			n := int(msg[off+20])<<24 | int(msg[off+21])<<16 | int(msg[off+22])<<8 | int(msg[off+23])
			off += 4 + 4 + 12 + 4 + n + 16
			return msg[hl:off], msg[off:]
		}
		off += 4 + 12 + frame + 16
	}
}

// CopyBody streams a signed message's body through a SignedRewrap: the
// output is the new header's message, every frame unchanged; a message cut
// anywhere inside its body or signature, or followed by bytes, is refused
// as malformed, and an altered body fails its old signature.
func TestSignedRewrapCopyBody(t *testing.T) {
	ctx := context.Background()
	from, to := rewrapKeyrings(t)
	old := encryptorFor(t, from, phicrypt.SuiteCommittedSigned, 512)
	now := encryptorFor(t, to, phicrypt.SuiteCommittedSigned, 512)
	ec := map[string]string{"tenant": "clinic-7"}
	for _, size := range []int{0, 1, 512, 3000} {
		pt := randomBytes(size)
		msg, err := old.Encrypt(ctx, pt, ec)
		require.NoError(t, err)
		hl, err := old.HeaderLength(msg)
		require.NoError(t, err)
		body, _ := splitFooter(t, msg, hl, 512)

		sr, err := old.RewrapSigned(ctx, msg, ec, to)
		require.NoError(t, err)
		var out bytes.Buffer
		out.Write(sr.Header())
		require.NoError(t, sr.CopyBody(&out, bytes.NewReader(msg[hl:])))
		rewrapped := out.Bytes()
		require.Equal(t, body, rewrapped[len(sr.Header()):len(sr.Header())+len(body)], "size %d: the frames are copied unchanged", size)
		got, _, err := now.Decrypt(ctx, rewrapped, ec)
		require.NoError(t, err, "size %d", size)
		require.Equal(t, pt, got)
		require.Error(t, sr.CopyBody(io.Discard, bytes.NewReader(msg[hl:])), "a SignedRewrap signs one message")

		for _, cut := range []int{hl + 1, hl + len(body) - 1, hl + len(body), len(msg) - 1} {
			sr, err := old.RewrapSigned(ctx, msg, ec, to)
			require.NoError(t, err)
			err = sr.CopyBody(io.Discard, bytes.NewReader(msg[hl:cut]))
			require.ErrorIs(t, err, phicrypt.ErrMalformed, "size %d cut at %d", size, cut)
		}
		sr, err = old.RewrapSigned(ctx, msg, ec, to)
		require.NoError(t, err)
		err = sr.CopyBody(io.Discard, bytes.NewReader(append(bytes.Clone(msg[hl:]), 0)))
		require.ErrorIs(t, err, phicrypt.ErrMalformed, "size %d: a byte after the signature", size)

		bad := bytes.Clone(msg)
		bad[hl+len(body)/2] ^= 1
		sr, err = old.RewrapSigned(ctx, msg, ec, to)
		require.NoError(t, err)
		err = sr.CopyBody(io.Discard, bytes.NewReader(bad[hl:]))
		require.True(t, errors.Is(err, phicrypt.ErrAuthentication) || errors.Is(err, phicrypt.ErrMalformed), "size %d: altered body: %v", size, err)
	}
}
