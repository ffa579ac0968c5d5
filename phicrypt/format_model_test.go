package phicrypt_test

// An independent model of the version 2 message format, written from the
// specification (data-format/message-header.md, message-body.md,
// message-footer.md, client-apis/key-derivation.md,
// framework/raw-aes-keyring.md) rather than from phicrypt's code. The tests
// use it two ways: dissectMessage finds the fields of a message phicrypt
// wrote, so tampering can aim at one field; buildModelMessage writes messages
// phicrypt did not, with valid tags, so the vectors can hold shapes phicrypt
// never writes but must read (and structural errors that no tag catches).

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

// span is a half-open byte range [start, end) of a message.
type span struct{ start, end int }

func (s span) len() int { return s.end - s.start }

type edkLayout struct{ providerID, providerInfo, ciphertext span }

type frameLayout struct {
	final            bool
	all              span
	seq, iv, content span
	length           span // final frame only
	tag              span
}

// msgLayout is where each field of a version 2 message lies.
type msgLayout struct {
	suite                    phicrypt.Suite
	version, suiteID         span
	messageID, context       span // context: the uint16 length and the pairs
	edkCount                 span
	edks                     []edkLayout
	contentType, frameLength span
	commitKey, headerTag     span
	header                   span // the whole header, tag included
	frames                   []frameLayout
	footer, signature        span // signed suites; signature excludes its length
}

// layoutReader walks a message, recording spans.
type layoutReader struct {
	t   testing.TB
	msg []byte
	off int
}

func (r *layoutReader) take(n int) span {
	r.t.Helper()
	require.LessOrEqual(r.t, r.off+n, len(r.msg), "dissectMessage: the message is too short")
	s := span{r.off, r.off + n}
	r.off += n
	return s
}

func (r *layoutReader) u16() (span, int) {
	s := r.take(2)
	return s, int(binary.BigEndian.Uint16(r.msg[s.start:]))
}

func (r *layoutReader) u32() (span, uint32) {
	s := r.take(4)
	return s, binary.BigEndian.Uint32(r.msg[s.start:])
}

// dissectMessage finds the fields of a well-formed framed version 2 message.
func dissectMessage(t testing.TB, msg []byte) msgLayout {
	t.Helper()
	r := &layoutReader{t: t, msg: msg}
	var l msgLayout
	l.version = r.take(1)
	require.Equal(t, byte(2), msg[0], "dissectMessage reads version 2 only")
	var id int
	l.suiteID, id = r.u16()
	l.suite = phicrypt.Suite(id)
	l.messageID = r.take(32)
	ctxLen, n := r.u16()
	l.context = span{ctxLen.start, r.take(n).end}
	var count int
	l.edkCount, count = r.u16()
	for range count {
		var e edkLayout
		_, n = r.u16()
		e.providerID = r.take(n)
		_, n = r.u16()
		e.providerInfo = r.take(n)
		_, n = r.u16()
		e.ciphertext = r.take(n)
		l.edks = append(l.edks, e)
	}
	l.contentType = r.take(1)
	require.Equal(t, byte(2), msg[l.contentType.start], "dissectMessage reads framed messages only")
	var frameLength uint32
	l.frameLength, frameLength = r.u32()
	l.commitKey = r.take(32)
	l.headerTag = r.take(16)
	l.header = span{0, r.off}
	for {
		f := frameLayout{all: span{start: r.off}}
		var seq uint32
		f.seq, seq = r.u32()
		if seq == 0xFFFFFFFF {
			f.final = true
			f.seq, _ = r.u32()
		}
		f.iv = r.take(12)
		n := frameLength
		if f.final {
			f.length, n = r.u32()
		}
		f.content = r.take(int(n))
		f.tag = r.take(16)
		f.all.end = r.off
		l.frames = append(l.frames, f)
		if f.final {
			break
		}
	}
	if l.suite == phicrypt.SuiteCommittedSigned {
		_, n = r.u16()
		l.signature = r.take(n)
		l.footer = span{l.signature.start - 2, l.signature.end}
	}
	require.Equal(t, len(msg), r.off, "dissectMessage: bytes follow the message")
	return l
}

// modelFrame is one frame to write: the model seals whatever it is given, so
// frames may be out of order or misshapen on purpose.
type modelFrame struct {
	seq       uint32
	final     bool
	plaintext []byte
}

// modelMessage describes a message for buildModelMessage.
type modelMessage struct {
	suite       phicrypt.Suite
	wrappingKey []byte
	namespace   string
	keyName     string
	context     map[string]string
	frameLength uint32
	frames      []modelFrame
	// legacyEmptyContext writes an empty context as a zero pair count
	// (00 02 00 00), as some older SDKs did, instead of 00 00.
	legacyEmptyContext bool
	// publicKeyUnsigned puts a signing key in the context of an unsigned
	// suite's message, which the format forbids.
	publicKeyUnsigned bool
}

// splitFrames cuts pt into frames the way the ESDK writes them: full regular
// frames, then a final frame holding the rest (a full one when len(pt) is a
// multiple of the frame length).
func splitFrames(pt []byte, frameLength int) []modelFrame {
	var frames []modelFrame
	seq := uint32(1)
	for len(pt) > frameLength {
		frames = append(frames, modelFrame{seq: seq, plaintext: pt[:frameLength]})
		pt = pt[frameLength:]
		seq++
	}
	return append(frames, modelFrame{seq: seq, final: true, plaintext: pt})
}

// modelSerializeContext is the ESDK's context serialization: pair count, then
// the pairs sorted by key bytes, each string with a uint16 length. An empty
// context is no bytes at all.
func modelSerializeContext(ec map[string]string) []byte {
	if len(ec) == 0 {
		return nil
	}
	keys := make([]string, 0, len(ec))
	for k := range ec {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := binary.BigEndian.AppendUint16(nil, uint16(len(keys)))
	for _, k := range keys {
		out = modelAppendShort(out, []byte(k))
		out = modelAppendShort(out, []byte(ec[k]))
	}
	return out
}

func modelAppendShort(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

func modelGCM(t testing.TB, key []byte) cipher.AEAD {
	t.Helper()
	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	aead, err := cipher.NewGCM(block)
	require.NoError(t, err)
	return aead
}

// modelCompressedKey is the base64 compressed P-384 point the format keeps
// under aws-crypto-public-key.
func modelCompressedKey(t testing.TB, k *ecdsa.PrivateKey) string {
	t.Helper()
	raw, err := k.PublicKey.Bytes() // 04 || X || Y
	require.NoError(t, err)
	size := (len(raw) - 1) / 2
	compressed := append([]byte{0x02 | raw[len(raw)-1]&1}, raw[1:1+size]...)
	return base64.StdEncoding.EncodeToString(compressed)
}

// buildModelMessage writes m with a fresh data key, message ID and (for the
// signed suite) signing key, with every tag and the signature valid.
func buildModelMessage(t testing.TB, m modelMessage) []byte {
	t.Helper()
	dataKey, messageID := make([]byte, 32), make([]byte, 32)
	rand.Read(dataKey)
	rand.Read(messageID)
	signed := m.suite == phicrypt.SuiteCommittedSigned
	ec := map[string]string{}
	for k, v := range m.context {
		ec[k] = v
	}
	var signingKey *ecdsa.PrivateKey
	if signed || m.publicKeyUnsigned {
		var err error
		signingKey, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		require.NoError(t, err)
		ec["aws-crypto-public-key"] = modelCompressedKey(t, signingKey)
	}
	serialized := modelSerializeContext(ec)
	section := serialized
	if len(ec) == 0 && m.legacyEmptyContext {
		section = []byte{0, 0}
	}

	// Raw AES keyring: provider info = name || tag bits || IV length || IV,
	// ciphertext = GCM(wrapping key, IV, data key, AAD = serialized context).
	wrapIV := make([]byte, 12)
	rand.Read(wrapIV)
	info := append([]byte(m.keyName), 0, 0, 0, 128, 0, 0, 0, 12)
	info = append(info, wrapIV...)
	wrapped := modelGCM(t, m.wrappingKey).Seal(nil, wrapIV, dataKey, serialized)

	// Key derivation (HKDF-SHA512, salt = message ID).
	prk, err := hkdf.Extract(sha512.New, dataKey, messageID)
	require.NoError(t, err)
	suiteBytes := binary.BigEndian.AppendUint16(nil, uint16(m.suite))
	encKey, err := hkdf.Expand(sha512.New, prk, string(suiteBytes)+"DERIVEKEY", 32)
	require.NoError(t, err)
	commitKey, err := hkdf.Expand(sha512.New, prk, "COMMITKEY", 32)
	require.NoError(t, err)
	aead := modelGCM(t, encKey)

	msg := []byte{2}
	msg = append(msg, suiteBytes...)
	msg = append(msg, messageID...)
	msg = modelAppendShort(msg, section)
	msg = binary.BigEndian.AppendUint16(msg, 1)
	msg = modelAppendShort(msg, []byte(m.namespace))
	msg = modelAppendShort(msg, info)
	msg = modelAppendShort(msg, wrapped)
	msg = append(msg, 2)
	msg = binary.BigEndian.AppendUint32(msg, m.frameLength)
	msg = append(msg, commitKey...)
	msg = aead.Seal(msg, make([]byte, 12), nil, msg)

	for _, f := range m.frames {
		iv := binary.BigEndian.AppendUint32(make([]byte, 8), f.seq)
		kind := "AWSKMSEncryptionClient Frame"
		if f.final {
			kind = "AWSKMSEncryptionClient Final Frame"
			msg = binary.BigEndian.AppendUint32(msg, 0xFFFFFFFF)
		}
		aad := append(slices.Clone(messageID), kind...)
		aad = binary.BigEndian.AppendUint32(aad, f.seq)
		aad = binary.BigEndian.AppendUint64(aad, uint64(len(f.plaintext)))
		msg = binary.BigEndian.AppendUint32(msg, f.seq)
		msg = append(msg, iv...)
		if f.final {
			msg = binary.BigEndian.AppendUint32(msg, uint32(len(f.plaintext)))
		}
		msg = aead.Seal(msg, iv, f.plaintext, aad)
	}
	if signed {
		digest := sha512.Sum384(msg)
		sig, err := ecdsa.SignASN1(rand.Reader, signingKey, digest[:])
		require.NoError(t, err)
		msg = modelAppendShort(msg, sig)
	}
	return msg
}
