package phicrypt_test

// Known-answer and negative vectors (testdata/vectors/*.json), one scenario
// per file. Each negative vector names the stage at which decryption must
// fail and the sentinel it must wrap. The files are checked in and replayed
// on every run; to regenerate them (after a deliberate format change only):
//
//	PHICRYPT_WRITE_VECTORS=1 go test -run TestVectors ./phicrypt/
//
// Negative messages are made at generation time by mutating a positive
// message (or, for shapes phicrypt never writes, by the independent writer
// in format_model_test.go), and stored as bytes.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

const vectorDir = "testdata/vectors"

// vector is one file in testdata/vectors.
type vector struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Suite is the algorithm suite the message was written with.
	Suite        string `json:"suite"`
	WrappingKey  string `json:"wrapping_key"` // hex
	KeyNamespace string `json:"key_namespace"`
	KeyName      string `json:"key_name"`
	Message      string `json:"message"` // base64 (standard, padded)
	// Positive vectors: the plaintext (hex) and encryption context Decrypt
	// returns.
	Plaintext *string           `json:"plaintext,omitempty"`
	Context   map[string]string `json:"context,omitempty"`
	// Negative vectors: where Decrypt must fail and with which sentinel.
	Failure *vectorFailure `json:"failure,omitempty"`
}

type vectorFailure struct {
	Stage    string `json:"stage"`    // a phicrypt.Stage value
	Sentinel string `json:"sentinel"` // the name of a phicrypt sentinel
}

var vectorSentinels = map[string]error{
	"ErrMalformed":        phicrypt.ErrMalformed,
	"ErrAuthentication":   phicrypt.ErrAuthentication,
	"ErrCommitmentPolicy": phicrypt.ErrCommitmentPolicy,
	"ErrLimit":            phicrypt.ErrLimit,
	"ErrContext":          phicrypt.ErrContext,
	"ErrNoKey":            phicrypt.ErrNoKey,
}

// requiredVectors are scenarios the set must always hold.
var requiredVectors = []string{
	"decrypt-committed-empty",
	"decrypt-committed-three-frames",
	"decrypt-committed-exact-multiple-of-frame",
	"decrypt-signed-empty",
	"decrypt-signed-three-frames",
	"decrypt-signed-exact-multiple-of-frame",
	"refuse-unknown-version",
	"refuse-unknown-suite",
	"refuse-zero-encrypted-data-keys",
	"refuse-bad-commitment-key",
	"refuse-bad-header-tag",
	"refuse-frame-tag-flipped",
	"refuse-truncated-final-frame",
	"refuse-trailing-bytes",
	"refuse-bad-signature",
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(vectorDir, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, paths, "no vectors in %s; run PHICRYPT_WRITE_VECTORS=1 go test -run TestVectors ./phicrypt/", vectorDir)
	var vs []vector
	for _, p := range paths {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		var v vector
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&v), p)
		require.Equal(t, strings.TrimSuffix(filepath.Base(p), ".json"), v.Name, "a vector's file is named after it")
		require.True(t, (v.Plaintext == nil) != (v.Failure == nil), "%s: a vector has a plaintext or a failure, not both", v.Name)
		vs = append(vs, v)
	}
	return vs
}

func (v vector) decode(t testing.TB) (key, msg []byte) {
	t.Helper()
	key, err := hex.DecodeString(v.WrappingKey)
	require.NoError(t, err)
	msg, err = base64.StdEncoding.DecodeString(v.Message)
	require.NoError(t, err)
	return key, msg
}

func TestVectors(t *testing.T) {
	if os.Getenv("PHICRYPT_WRITE_VECTORS") == "1" {
		writeVectors(t)
	}
	vs := loadVectors(t)
	names := map[string]bool{}
	for _, v := range vs {
		names[v.Name] = true
	}
	for _, name := range requiredVectors {
		require.True(t, names[name], "the vector %s is missing", name)
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) { replayVector(t, v) })
	}
}

func replayVector(t *testing.T, v vector) {
	key, msg := v.decode(t)
	kr, err := keyring.NewRawAES(v.KeyNamespace, v.KeyName, key)
	require.NoError(t, err)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr})
	require.NoError(t, err)
	pt, ec, err := enc.Decrypt(context.Background(), msg, nil)
	if v.Failure == nil {
		require.NoError(t, err, v.Description)
		want, err := hex.DecodeString(*v.Plaintext)
		require.NoError(t, err)
		require.Equal(t, want, append([]byte{}, pt...))
		if len(v.Context) == 0 {
			require.Empty(t, ec)
		} else {
			require.Equal(t, v.Context, ec)
		}
		return
	}
	require.Error(t, err, v.Description)
	require.Nil(t, pt)
	require.Nil(t, ec)
	sentinel, ok := vectorSentinels[v.Failure.Sentinel]
	require.True(t, ok, "unknown sentinel %q", v.Failure.Sentinel)
	var me *phicrypt.MessageError
	require.True(t, errors.As(err, &me), "not a *MessageError: %v", err)
	require.Equal(t, phicrypt.Stage(v.Failure.Stage), me.Stage, "%s: %v", v.Description, err)
	require.ErrorIs(t, err, sentinel, v.Description)
}

// The keys are the AES test keys of NIST SP 800-38A, F.5.1 and F.5.5.
const (
	vectorNamespace = "phicrypt-vectors"
	vectorKeyName   = "aes-256-key"
	vectorKeyHex    = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"
	vectorKey128Hex = "2b7e151628aed2a6abf7158809cf4f3c"
)

// vectorWriter makes the vector set; it runs only when regenerating.
type vectorWriter struct {
	t       *testing.T
	key     []byte
	kr      keyring.Keyring
	vectors []vector
}

func writeVectors(t *testing.T) {
	key, err := hex.DecodeString(vectorKeyHex)
	require.NoError(t, err)
	kr, err := keyring.NewRawAES(vectorNamespace, vectorKeyName, key)
	require.NoError(t, err)
	w := &vectorWriter{t: t, key: key, kr: kr}
	w.positives()
	w.headerNegatives()
	w.bodyNegatives()
	w.modelNegatives()

	old, err := filepath.Glob(filepath.Join(vectorDir, "*.json"))
	require.NoError(t, err)
	for _, p := range old {
		require.NoError(t, os.Remove(p))
	}
	require.NoError(t, os.MkdirAll(vectorDir, 0o755))
	seen := map[string]bool{}
	for _, v := range w.vectors {
		require.False(t, seen[v.Name], "duplicate vector %s", v.Name)
		seen[v.Name] = true
		data, err := json.MarshalIndent(v, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(vectorDir, v.Name+".json"), append(data, '\n'), 0o644))
	}
	t.Logf("wrote %d vectors to %s", len(w.vectors), vectorDir)
}

// encrypt writes a message with phicrypt under the vector key.
func (w *vectorWriter) encrypt(suite phicrypt.Suite, frameLength int, pt []byte, ec map[string]string) []byte {
	enc, err := phicrypt.New(phicrypt.Config{Keyring: w.kr, Suite: suite, FrameLength: frameLength})
	require.NoError(w.t, err)
	msg, err := enc.Encrypt(context.Background(), pt, ec)
	require.NoError(w.t, err)
	return msg
}

func (w *vectorWriter) model(m modelMessage) []byte {
	m.wrappingKey, m.namespace, m.keyName = w.key, vectorNamespace, vectorKeyName
	return buildModelMessage(w.t, m)
}

func (w *vectorWriter) positive(name, desc string, suite phicrypt.Suite, msg, pt []byte, ec map[string]string) {
	w.positiveUnder(name, desc, suite, msg, pt, ec, vectorKeyHex, vectorKeyName)
}

func (w *vectorWriter) positiveUnder(name, desc string, suite phicrypt.Suite, msg, pt []byte, ec map[string]string, keyHex, keyName string) {
	p := hex.EncodeToString(pt)
	w.vectors = append(w.vectors, vector{
		Name: name, Description: desc, Suite: suiteHex(suite),
		WrappingKey: keyHex, KeyNamespace: vectorNamespace, KeyName: keyName,
		Message: base64.StdEncoding.EncodeToString(msg), Plaintext: &p, Context: ec,
	})
}

func (w *vectorWriter) negative(name, desc string, suite phicrypt.Suite, msg []byte, stage phicrypt.Stage, sentinel string) {
	_, ok := vectorSentinels[sentinel]
	require.True(w.t, ok, sentinel)
	w.vectors = append(w.vectors, vector{
		Name: name, Description: desc, Suite: suiteHex(suite),
		WrappingKey: vectorKeyHex, KeyNamespace: vectorNamespace, KeyName: vectorKeyName,
		Message: base64.StdEncoding.EncodeToString(msg), Failure: &vectorFailure{Stage: string(stage), Sentinel: sentinel},
	})
}

func suiteHex(s phicrypt.Suite) string {
	return "0x" + hex.EncodeToString(binary.BigEndian.AppendUint16(nil, uint16(s)))
}

// vectorPlaintext is deterministic filler, so regenerated vectors differ
// only where the format is randomized.
func vectorPlaintext(n int) []byte {
	pt := make([]byte, n)
	for i := range pt {
		pt[i] = byte(i*7 + 3)
	}
	return pt
}

var vectorContext = map[string]string{"tenant": "general-hospital", "table": "notes", "ünïcode-kéy": "välue ✓"}

func (w *vectorWriter) positives() {
	for _, s := range []struct {
		prefix string
		suite  phicrypt.Suite
	}{{"committed", phicrypt.SuiteCommitted}, {"signed", phicrypt.SuiteCommittedSigned}} {
		pt := vectorPlaintext(150)
		w.positive("decrypt-"+s.prefix+"-empty", "empty plaintext, empty encryption context: one empty final frame",
			s.suite, w.encrypt(s.suite, 0, nil, nil), nil, nil)
		w.positive("decrypt-"+s.prefix+"-three-frames", "150 bytes at frame length 64 with an encryption context: two regular frames and a final frame of 22 bytes",
			s.suite, w.encrypt(s.suite, 64, pt, vectorContext), pt, vectorContext)
		w.positive("decrypt-"+s.prefix+"-exact-multiple-of-frame", "128 bytes at frame length 64: one regular frame and a full final frame",
			s.suite, w.encrypt(s.suite, 64, pt[:128], vectorContext), pt[:128], vectorContext)
		w.positive("decrypt-"+s.prefix+"-empty-plaintext-with-context", "empty plaintext with an encryption context",
			s.suite, w.encrypt(s.suite, 64, []byte{}, vectorContext), nil, vectorContext)
		w.positive("decrypt-"+s.prefix+"-no-context", "a plaintext with an empty encryption context",
			s.suite, w.encrypt(s.suite, 64, pt[:100], nil), pt[:100], nil)
	}
	pt := vectorPlaintext(5)
	w.positive("decrypt-committed-one-byte-frames", "5 bytes at frame length 1: four regular frames and a final frame of 1 byte",
		phicrypt.SuiteCommitted, w.encrypt(phicrypt.SuiteCommitted, 1, pt, vectorContext), pt, vectorContext)

	// A 128-bit wrapping key.
	key128, err := hex.DecodeString(vectorKey128Hex)
	require.NoError(w.t, err)
	kr128, err := keyring.NewRawAES(vectorNamespace, "aes-128-key", key128)
	require.NoError(w.t, err)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr128, FrameLength: 64})
	require.NoError(w.t, err)
	pt = vectorPlaintext(70)
	msg, err := enc.Encrypt(context.Background(), pt, vectorContext)
	require.NoError(w.t, err)
	w.positiveUnder("decrypt-committed-aes-128-wrapping-key", "a data key wrapped under a 128-bit raw AES key",
		phicrypt.SuiteCommitted, msg, pt, vectorContext, vectorKey128Hex, "aes-128-key")

	// Two encrypted data keys, the first for a keyring the reader lacks.
	first, err := keyring.NewRawAES("another-namespace", vectorKeyName, bytes.Repeat([]byte{0x42}, 32))
	require.NoError(w.t, err)
	multi, err := keyring.NewMulti(first, w.kr)
	require.NoError(w.t, err)
	enc, err = phicrypt.New(phicrypt.Config{Keyring: multi, FrameLength: 64})
	require.NoError(w.t, err)
	msg, err = enc.Encrypt(context.Background(), pt, vectorContext)
	require.NoError(w.t, err)
	w.positive("decrypt-committed-second-data-key-matches", "two encrypted data keys; the reader's key wrapped the second",
		phicrypt.SuiteCommitted, msg, pt, vectorContext)

	// Shapes phicrypt does not write but must read, from the independent
	// writer.
	pt = vectorPlaintext(128)
	w.positive("decrypt-model-regular-frames-then-empty-final-frame",
		"128 bytes at frame length 64 written as two regular frames and an empty final frame (message-body.md allows either form)",
		phicrypt.SuiteCommitted, w.model(modelMessage{suite: phicrypt.SuiteCommitted, frameLength: 64, context: vectorContext,
			frames: []modelFrame{{seq: 1, plaintext: pt[:64]}, {seq: 2, plaintext: pt[64:]}, {seq: 3, final: true}}}), pt, vectorContext)
	w.positive("decrypt-model-single-full-final-frame", "64 bytes at frame length 64: one full final frame",
		phicrypt.SuiteCommitted, w.model(modelMessage{suite: phicrypt.SuiteCommitted, frameLength: 64,
			frames: splitFrames(pt[:64], 64)}), pt[:64], nil)
	w.positive("decrypt-model-legacy-empty-context", "an empty encryption context written as a zero pair count (00 02 00 00), as older SDKs did",
		phicrypt.SuiteCommitted, w.model(modelMessage{suite: phicrypt.SuiteCommitted, frameLength: 64, legacyEmptyContext: true,
			frames: splitFrames(pt[:10], 64)}), pt[:10], nil)
	pt = vectorPlaintext(150)
	w.positive("decrypt-model-committed-three-frames", "the independent writer: 150 bytes at frame length 64 with an encryption context",
		phicrypt.SuiteCommitted, w.model(modelMessage{suite: phicrypt.SuiteCommitted, frameLength: 64, context: vectorContext,
			frames: splitFrames(pt, 64)}), pt, vectorContext)
	w.positive("decrypt-model-signed-three-frames", "the independent writer, signed suite: 150 bytes at frame length 64 with an encryption context",
		phicrypt.SuiteCommittedSigned, w.model(modelMessage{suite: phicrypt.SuiteCommittedSigned, frameLength: 64, context: vectorContext,
			frames: splitFrames(pt, 64)}), pt, vectorContext)
}

// mutate returns a copy of msg changed by f.
func mutate(msg []byte, f func(m []byte) []byte) []byte { return f(slices.Clone(msg)) }

func (w *vectorWriter) headerNegatives() {
	const C = phicrypt.SuiteCommitted
	pt := vectorPlaintext(150)
	msg := w.encrypt(C, 64, pt, vectorContext)
	l := dissectMessage(w.t, msg)
	flip := func(s span) []byte { return flipBit(msg, s.start+s.len()/2, 3) }

	w.negative("refuse-unknown-version", "the version byte is 03", C,
		mutate(msg, func(m []byte) []byte { m[0] = 3; return m }), phicrypt.StageHeader, "ErrMalformed")
	w.negative("refuse-version-1-byte-on-version-2-header", "the version byte is 01 with a version 2 header after it", C,
		mutate(msg, func(m []byte) []byte { m[0] = 1; return m }), phicrypt.StageHeader, "ErrMalformed")
	w.negative("refuse-unknown-suite", "the algorithm suite is 0x0479", C,
		mutate(msg, func(m []byte) []byte { m[2] = 0x79; return m }), phicrypt.StageHeader, "ErrMalformed")
	w.negative("refuse-suite-changed-to-signed", "an unsigned message relabelled 0x0578: its context lacks the signing key", C,
		mutate(msg, func(m []byte) []byte { m[1] = 0x05; return m }), phicrypt.StageHeader, "ErrMalformed")
	w.negative("refuse-base64-encoded", "the message is base64 text, not bytes", C,
		[]byte(base64.StdEncoding.EncodeToString(msg)), phicrypt.StageHeader, "ErrMalformed")
	w.negative("refuse-context-length-overruns", "the encryption context length points past its pairs", C,
		mutate(msg, func(m []byte) []byte {
			binary.BigEndian.PutUint16(m[l.context.start:], uint16(l.context.len()-2+1))
			return m
		}), phicrypt.StageHeader, "ErrMalformed")
	w.negative("refuse-context-value-changed", "one byte of a context value changed: the data key no longer unwraps", C,
		flipBit(msg, bytes.Index(msg, []byte("general-hospital")), 0), phicrypt.StageEDK, "ErrNoKey")
	w.negative("refuse-zero-encrypted-data-keys", "the encrypted data key count is 0 and the key is removed", C,
		mutate(msg, func(m []byte) []byte {
			m[l.edkCount.start], m[l.edkCount.start+1] = 0, 0
			return append(m[:l.edkCount.end], m[l.edks[0].ciphertext.end:]...)
		}), phicrypt.StageEDK, "ErrMalformed")
	w.negative("refuse-edk-ciphertext-flipped", "a bit of the wrapped data key flipped", C,
		flip(l.edks[0].ciphertext), phicrypt.StageEDK, "ErrNoKey")
	w.negative("refuse-edk-provider-id-changed", "the key namespace in the encrypted data key changed", C,
		flip(l.edks[0].providerID), phicrypt.StageEDK, "ErrNoKey")
	w.negative("refuse-message-id-flipped", "a bit of the message ID flipped: the derived commitment key differs", C,
		flip(l.messageID), phicrypt.StageCommitment, "ErrAuthentication")
	w.negative("refuse-bad-commitment-key", "a bit of the stored commitment key flipped", C,
		flip(l.commitKey), phicrypt.StageCommitment, "ErrAuthentication")
	w.negative("refuse-bad-header-tag", "a bit of the header tag flipped", C,
		flip(l.headerTag), phicrypt.StageHeader, "ErrAuthentication")
	w.negative("refuse-frame-length-changed", "the frame length changed from 64 to 65: the header tag covers it", C,
		mutate(msg, func(m []byte) []byte { m[l.frameLength.end-1] = 65; return m }), phicrypt.StageHeader, "ErrAuthentication")
	w.negative("refuse-frame-length-over-limit", "the frame length patched to 8 MiB, over the default 4 MiB cap (checked before authentication)", C,
		mutate(msg, func(m []byte) []byte { binary.BigEndian.PutUint32(m[l.frameLength.start:], 8<<20); return m }),
		phicrypt.StageHeader, "ErrLimit")
	w.negative("refuse-frame-length-zero", "the frame length patched to 0", C,
		mutate(msg, func(m []byte) []byte { binary.BigEndian.PutUint32(m[l.frameLength.start:], 0); return m }),
		phicrypt.StageHeader, "ErrMalformed")
	w.negative("refuse-content-type-non-framed", "the content type patched to 01 (non-framed) in a version 2 header", C,
		mutate(msg, func(m []byte) []byte { m[l.contentType.start] = 1; return m }), phicrypt.StageHeader, "ErrMalformed")
	w.negative("refuse-header-truncated", "the message ends inside its header", C,
		msg[:l.headerTag.start+5], phicrypt.StageHeader, "ErrMalformed")

	// Six encrypted data keys (one of them the reader's) against the
	// default cap of five.
	keyrings := []keyring.Keyring{w.kr}
	for i := range 5 {
		kr, err := keyring.NewRawAES("other-namespace", "key-"+string(rune('a'+i)), bytes.Repeat([]byte{byte(i)}, 32))
		require.NoError(w.t, err)
		keyrings = append(keyrings, kr)
	}
	multi, err := keyring.NewMulti(keyrings[0], keyrings[1:]...)
	require.NoError(w.t, err)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: multi, MaxEncryptedDataKeys: 6})
	require.NoError(w.t, err)
	six, err := enc.Encrypt(context.Background(), pt, vectorContext)
	require.NoError(w.t, err)
	w.negative("refuse-too-many-encrypted-data-keys", "six encrypted data keys; the default cap is five", C,
		six, phicrypt.StageEDK, "ErrLimit")
}

func (w *vectorWriter) bodyNegatives() {
	const C, S = phicrypt.SuiteCommitted, phicrypt.SuiteCommittedSigned
	pt := vectorPlaintext(150)
	msg := w.encrypt(C, 64, pt, vectorContext)
	l := dissectMessage(w.t, msg)
	f1, f2, fin := l.frames[0], l.frames[1], l.frames[2]
	cut := func(parts ...span) []byte {
		var m []byte
		for _, p := range parts {
			m = append(m, msg[p.start:p.end]...)
		}
		return m
	}

	w.negative("refuse-frame-tag-flipped", "a bit of the first frame's tag flipped", C,
		flipBit(msg, f1.tag.start+7, 0), phicrypt.StageFrame, "ErrAuthentication")
	w.negative("refuse-frame-ciphertext-flipped", "a bit of the second frame's ciphertext flipped", C,
		flipBit(msg, f2.content.start+10, 5), phicrypt.StageFrame, "ErrAuthentication")
	w.negative("refuse-final-frame-tag-flipped", "a bit of the final frame's tag flipped", C,
		flipBit(msg, fin.tag.end-1, 7), phicrypt.StageFrame, "ErrAuthentication")
	w.negative("refuse-frame-iv-changed", "the first frame's IV is not its sequence number", C,
		flipBit(msg, f1.iv.start, 0), phicrypt.StageFrame, "ErrAuthentication")
	w.negative("refuse-frames-swapped", "frames 1 and 2 swapped", C,
		cut(l.header, f2.all, f1.all, fin.all), phicrypt.StageFrame, "ErrAuthentication")
	w.negative("refuse-frame-duplicated", "frame 1 repeated", C,
		cut(l.header, f1.all, f1.all, f2.all, fin.all), phicrypt.StageFrame, "ErrAuthentication")
	w.negative("refuse-frame-dropped", "frame 2 removed", C,
		cut(l.header, f1.all, fin.all), phicrypt.StageFrame, "ErrAuthentication")
	w.negative("refuse-final-frame-moved-earlier", "the final frame moved before frame 2", C,
		cut(l.header, f1.all, fin.all, f2.all), phicrypt.StageFrame, "ErrAuthentication")
	w.negative("refuse-final-frame-missing", "the message ends after its last regular frame", C,
		cut(l.header, f1.all, f2.all), phicrypt.StageFrame, "ErrMalformed")
	w.negative("refuse-body-missing", "the message ends after its header", C,
		cut(l.header), phicrypt.StageFrame, "ErrMalformed")
	w.negative("refuse-truncated-final-frame", "the last 5 bytes of the final frame removed", C,
		msg[:len(msg)-5], phicrypt.StageFrame, "ErrMalformed")
	w.negative("refuse-final-frame-longer-than-frame-length", "the final frame's length field says 65 at frame length 64", C,
		mutate(msg, func(m []byte) []byte { binary.BigEndian.PutUint32(m[fin.length.start:], 65); return m }),
		phicrypt.StageFrame, "ErrMalformed")
	w.negative("refuse-trailing-bytes", "one byte after the final frame", C,
		append(slices.Clone(msg), 0), phicrypt.StageFrame, "ErrMalformed")

	smsg := w.encrypt(S, 64, pt, vectorContext)
	sl := dissectMessage(w.t, smsg)
	sfin := sl.frames[2]
	w.negative("refuse-bad-signature", "a bit of the signature flipped", S,
		flipBit(smsg, sl.signature.start+sl.signature.len()/2, 2), phicrypt.StageSignature, "ErrAuthentication")
	w.negative("refuse-signature-missing", "a signed message without its footer", S,
		smsg[:sl.footer.start], phicrypt.StageSignature, "ErrMalformed")
	w.negative("refuse-signature-truncated", "the last byte of the signature removed", S,
		smsg[:len(smsg)-1], phicrypt.StageSignature, "ErrMalformed")
	w.negative("refuse-signature-length-zero", "the signature length is 0", S,
		append(slices.Clone(smsg[:sl.footer.start]), 0, 0), phicrypt.StageSignature, "ErrMalformed")
	other := w.encrypt(S, 64, pt, vectorContext)
	ol := dissectMessage(w.t, other)
	w.negative("refuse-signature-from-other-message", "the footer of another message with the same plaintext and context", S,
		append(slices.Clone(smsg[:sl.footer.start]), other[ol.footer.start:]...), phicrypt.StageSignature, "ErrAuthentication")
	w.negative("refuse-signed-frame-tag-flipped", "a bit of the final frame's tag flipped in a signed message", S,
		flipBit(smsg, sfin.tag.start, 1), phicrypt.StageFrame, "ErrAuthentication")
	w.negative("refuse-signed-trailing-bytes", "one byte after the footer", S,
		append(slices.Clone(smsg), 0), phicrypt.StageFrame, "ErrMalformed")
	w.negative("refuse-signed-footer-dropped-suite-unsigned", "a signed message relabelled 0x0478 with its footer removed", S,
		mutate(smsg[:sl.footer.start], func(m []byte) []byte { m[1] = 0x04; return m }), phicrypt.StageHeader, "ErrMalformed")
}

// modelNegatives are messages whose tags, commitment and signature all
// verify, so only the structural checks can refuse them.
func (w *vectorWriter) modelNegatives() {
	const C = phicrypt.SuiteCommitted
	pt := vectorPlaintext(150)
	w.negative("refuse-model-signing-key-in-unsigned-suite", "an 0x0478 message whose context carries aws-crypto-public-key", C,
		w.model(modelMessage{suite: C, frameLength: 64, publicKeyUnsigned: true, frames: splitFrames(pt, 64)}),
		phicrypt.StageHeader, "ErrMalformed")
	w.negative("refuse-model-frame-length-zero", "a framed message with frame length 0 and a valid header tag", C,
		w.model(modelMessage{suite: C, frameLength: 0, frames: []modelFrame{{seq: 1, final: true}}}),
		phicrypt.StageHeader, "ErrMalformed")
	w.negative("refuse-model-first-sequence-number-2", "frames numbered from 2, each tag valid", C,
		w.model(modelMessage{suite: C, frameLength: 64, frames: []modelFrame{{seq: 2, plaintext: pt[:64]}, {seq: 3, final: true, plaintext: pt[64:70]}}}),
		phicrypt.StageFrame, "ErrAuthentication")
	w.negative("refuse-model-sequence-number-skipped", "frames numbered 1, 3, each tag valid", C,
		w.model(modelMessage{suite: C, frameLength: 64, frames: []modelFrame{{seq: 1, plaintext: pt[:64]}, {seq: 3, final: true, plaintext: pt[64:70]}}}),
		phicrypt.StageFrame, "ErrAuthentication")
	w.negative("refuse-model-final-frame-not-last", "a valid final frame followed by a valid regular frame", C,
		w.model(modelMessage{suite: C, frameLength: 64, frames: []modelFrame{{seq: 1, final: true, plaintext: pt[:10]}, {seq: 2, plaintext: pt[:64]}}}),
		phicrypt.StageFrame, "ErrMalformed")
	w.negative("refuse-model-final-frame-too-long", "a final frame of 65 bytes at frame length 64, tag valid", C,
		w.model(modelMessage{suite: C, frameLength: 64, frames: []modelFrame{{seq: 1, final: true, plaintext: pt[:65]}}}),
		phicrypt.StageFrame, "ErrMalformed")
	w.negative("refuse-model-no-final-frame", "two valid regular frames and no final frame", C,
		w.model(modelMessage{suite: C, frameLength: 64, frames: []modelFrame{{seq: 1, plaintext: pt[:64]}, {seq: 2, plaintext: pt[64:128]}}}),
		phicrypt.StageFrame, "ErrMalformed")
}
