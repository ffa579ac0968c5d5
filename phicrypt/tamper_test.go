package phicrypt_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

// tamperCanary stands for PHI. It is put in the plaintext and in a context
// value of every message these tests break, and must never show in an error.
const tamperCanary = "CANARY-PHI-7731"

var tamperSentinels = []error{
	phicrypt.ErrMalformed, phicrypt.ErrAuthentication, phicrypt.ErrCommitmentPolicy,
	phicrypt.ErrLimit, phicrypt.ErrContext, phicrypt.ErrNoKey,
}

// requireNoCanary fails if err, formatted any way, holds the canary.
func requireNoCanary(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	text := fmt.Sprintf("%s|%v|%+v|%#v|%q", err.Error(), err, err, err, err)
	for _, secret := range []string{tamperCanary, hex.EncodeToString([]byte(tamperCanary))} {
		if strings.Contains(text, secret) {
			t.Fatalf("an error holds the canary: %s", text)
		}
	}
}

func tamperKeyring(t testing.TB, name string) *keyring.RawAES {
	t.Helper()
	key := bytes.Repeat([]byte(name), 32)[:32]
	kr, err := keyring.NewRawAES("tamper-test", name, key)
	require.NoError(t, err)
	return kr
}

// tamperMessage is a three-frame message (frame length 64, 150 bytes of
// plaintext) and the Encryptor that reads it.
type tamperMessage struct {
	enc *phicrypt.Encryptor
	msg []byte
	ec  map[string]string
	l   msgLayout
}

func newTamperMessage(t *testing.T, suite phicrypt.Suite) *tamperMessage {
	t.Helper()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: tamperKeyring(t, "key-1"), Suite: suite, FrameLength: 64})
	require.NoError(t, err)
	pt := bytes.Repeat([]byte(tamperCanary+" note. "), 10)[:150]
	ec := map[string]string{"patient": tamperCanary + " Jane Doe", "tenant": "general-hospital"}
	msg, err := enc.Encrypt(context.Background(), pt, ec)
	require.NoError(t, err)
	tm := &tamperMessage{enc: enc, msg: msg, ec: ec, l: dissectMessage(t, msg)}
	require.Len(t, tm.l.frames, 3)
	require.Equal(t, 150-2*64, tm.l.frames[2].content.len(), "the final frame holds the rest")
	got, _, err := enc.Decrypt(context.Background(), msg, ec)
	require.NoError(t, err)
	require.Equal(t, pt, got)
	return tm
}

// refuse decrypts msg, which must fail without a panic, without plaintext,
// with a *MessageError wrapping a sentinel and without the canary.
func (tm *tamperMessage) refuse(t *testing.T, msg []byte, expect map[string]string, what string) *phicrypt.MessageError {
	t.Helper()
	var (
		pt  []byte
		ec  map[string]string
		err error
	)
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("%s: Decrypt panicked: %v", what, r)
			}
		}()
		pt, ec, err = tm.enc.Decrypt(context.Background(), msg, expect)
	}()
	if err == nil {
		t.Fatalf("%s: Decrypt accepted the message", what)
	}
	if pt != nil || ec != nil {
		t.Fatalf("%s: Decrypt failed (%v) but returned plaintext or context", what, err)
	}
	if !slices.ContainsFunc(tamperSentinels, func(s error) bool { return errors.Is(err, s) }) {
		t.Fatalf("%s: the error wraps no sentinel: %v", what, err)
	}
	var me *phicrypt.MessageError
	if !errors.As(err, &me) {
		t.Fatalf("%s: the error is not a *MessageError: %v", what, err)
	}
	requireNoCanary(t, err)
	return me
}

// requireStage checks where a refusal happened and which sentinel it wraps.
func requireStage(t *testing.T, me *phicrypt.MessageError, stage phicrypt.Stage, sentinel error, what string) {
	t.Helper()
	if me.Stage != stage || !errors.Is(me, sentinel) {
		t.Fatalf("%s: got %q at stage %q, want %v at stage %q", what, me.Error(), me.Stage, sentinel, stage)
	}
}

func flipBit(msg []byte, i, bit int) []byte {
	m := slices.Clone(msg)
	m[i] ^= 1 << bit
	return m
}

func inSpan(i int, s span) bool { return i >= s.start && i < s.end }

var tamperSuites = []phicrypt.Suite{phicrypt.SuiteCommitted, phicrypt.SuiteCommittedSigned}

func TestTamperHeaderBitFlips(t *testing.T) {
	for _, suite := range tamperSuites {
		t.Run(suite.String(), func(t *testing.T) {
			tm := newTamperMessage(t, suite)
			l := tm.l
			edk := l.edks[0]
			for i := l.header.start; i < l.header.end; i++ {
				for bit := range 8 {
					m := flipBit(tm.msg, i, bit)
					what := fmt.Sprintf("header byte %d bit %d", i, bit)
					// Once as a caller who expects the context, once as one
					// who does not: the paths differ for context flips.
					tm.refuse(t, m, nil, what+" (no expectation)")
					me := tm.refuse(t, m, tm.ec, what)
					switch {
					case inSpan(i, l.messageID):
						if me.Stage != phicrypt.StageCommitment && me.Stage != phicrypt.StageHeader {
							t.Fatalf("%s: message ID flip refused at %q", what, me.Stage)
						}
					case inSpan(i, edk.ciphertext):
						requireStage(t, me, phicrypt.StageEDK, phicrypt.ErrNoKey, what)
					case inSpan(i, l.commitKey):
						requireStage(t, me, phicrypt.StageCommitment, phicrypt.ErrAuthentication, what)
					case inSpan(i, l.headerTag):
						requireStage(t, me, phicrypt.StageHeader, phicrypt.ErrAuthentication, what)
					default:
						require.Contains(t, []phicrypt.Stage{phicrypt.StageHeader, phicrypt.StageEDK, phicrypt.StageCommitment}, me.Stage, what)
					}
				}
			}
		})
	}
}

func TestTamperBodyBitFlips(t *testing.T) {
	for _, suite := range tamperSuites {
		t.Run(suite.String(), func(t *testing.T) {
			tm := newTamperMessage(t, suite)
			for n, f := range tm.l.frames {
				for i := f.all.start; i < f.all.end; i++ {
					for bit := range 8 {
						what := fmt.Sprintf("frame %d byte %d bit %d", n+1, i, bit)
						me := tm.refuse(t, flipBit(tm.msg, i, bit), nil, what)
						if inSpan(i, f.length) {
							// A changed length reads too little or too
							// much; either way the frame is refused.
							require.Equal(t, phicrypt.StageFrame, me.Stage, what)
							continue
						}
						requireStage(t, me, phicrypt.StageFrame, phicrypt.ErrAuthentication, what)
					}
				}
			}
			for i := tm.l.footer.start; i < tm.l.footer.end; i++ {
				for bit := range 8 {
					what := fmt.Sprintf("footer byte %d bit %d", i, bit)
					me := tm.refuse(t, flipBit(tm.msg, i, bit), nil, what)
					if inSpan(i, tm.l.signature) {
						requireStage(t, me, phicrypt.StageSignature, phicrypt.ErrAuthentication, what)
					} else {
						require.Equal(t, phicrypt.StageSignature, me.Stage, what)
					}
				}
			}
		})
	}
}

func TestTamperTruncation(t *testing.T) {
	for _, suite := range tamperSuites {
		t.Run(suite.String(), func(t *testing.T) {
			tm := newTamperMessage(t, suite)
			l := tm.l
			last := l.frames[len(l.frames)-1].all.end
			// Every prefix, which covers every frame boundary and every
			// byte of the last 40.
			for n := range len(tm.msg) {
				what := fmt.Sprintf("truncated to %d of %d bytes", n, len(tm.msg))
				me := tm.refuse(t, tm.msg[:n], tm.ec, what)
				switch {
				case n < l.header.end:
					requireStage(t, me, phicrypt.StageHeader, phicrypt.ErrMalformed, what)
				case n < last:
					requireStage(t, me, phicrypt.StageFrame, phicrypt.ErrMalformed, what)
				default:
					requireStage(t, me, phicrypt.StageSignature, phicrypt.ErrMalformed, what)
				}
			}
			for _, f := range l.frames[:len(l.frames)-1] {
				what := fmt.Sprintf("cut after the frame ending at %d", f.all.end)
				requireStage(t, tm.refuse(t, tm.msg[:f.all.end], tm.ec, what), phicrypt.StageFrame, phicrypt.ErrMalformed, what)
			}
		})
	}
}

// reassemble returns the header, the frames in the order given (by index)
// and the original footer.
func (tm *tamperMessage) reassemble(order ...int) []byte {
	m := slices.Clone(tm.msg[:tm.l.header.end])
	for _, i := range order {
		f := tm.l.frames[i].all
		m = append(m, tm.msg[f.start:f.end]...)
	}
	return append(m, tm.msg[tm.l.footer.start:tm.l.footer.end]...)
}

func TestTamperFrameOrder(t *testing.T) {
	for _, suite := range tamperSuites {
		t.Run(suite.String(), func(t *testing.T) {
			tm := newTamperMessage(t, suite)
			require.Equal(t, tm.msg, tm.reassemble(0, 1, 2), "reassemble rebuilds the message")
			for _, c := range []struct {
				what  string
				order []int
			}{
				{"frames 1 and 2 swapped", []int{1, 0, 2}},
				{"final frame first", []int{2, 0, 1}},
				{"final frame second", []int{0, 2, 1}},
				{"frame 1 twice", []int{0, 0, 1, 2}},
				{"frame 2 twice", []int{0, 1, 1, 2}},
				{"frame 2 dropped", []int{0, 2}},
				{"frame 1 dropped", []int{1, 2}},
				{"final frame dropped", []int{0, 1}},
			} {
				me := tm.refuse(t, tm.reassemble(c.order...), tm.ec, c.what)
				require.Equal(t, phicrypt.StageFrame, me.Stage, c.what)
			}
			// The final frame twice: an unsigned message then has trailing
			// bytes; a signed one reads them as its footer.
			tm.refuse(t, tm.reassemble(0, 1, 2, 2), tm.ec, "final frame twice")
		})
	}
}

func TestTamperTrailingBytes(t *testing.T) {
	for _, suite := range tamperSuites {
		t.Run(suite.String(), func(t *testing.T) {
			tm := newTamperMessage(t, suite)
			for _, extra := range [][]byte{{0}, bytes.Repeat([]byte{0xA5}, 100), tm.msg} {
				what := fmt.Sprintf("%d trailing bytes", len(extra))
				me := tm.refuse(t, append(slices.Clone(tm.msg), extra...), tm.ec, what)
				require.ErrorIs(t, me, phicrypt.ErrMalformed, what)
			}
		})
	}
}

func TestEncryptedDataKeyLimit(t *testing.T) {
	ctx := context.Background()
	keyrings := make([]keyring.Keyring, 6)
	for i := range keyrings {
		keyrings[i] = tamperKeyring(t, fmt.Sprintf("key-%d", i))
	}
	multi, err := keyring.NewMulti(keyrings[0], keyrings[1:]...)
	require.NoError(t, err)

	// The writer's side applies the same cap.
	writer, err := phicrypt.New(phicrypt.Config{Keyring: multi})
	require.NoError(t, err)
	_, err = writer.Encrypt(ctx, []byte("phi"), nil)
	require.ErrorIs(t, err, phicrypt.ErrLimit)

	writer, err = phicrypt.New(phicrypt.Config{Keyring: multi, MaxEncryptedDataKeys: 6})
	require.NoError(t, err)
	msg, err := writer.Encrypt(ctx, []byte(tamperCanary), map[string]string{"patient": tamperCanary})
	require.NoError(t, err)
	require.Len(t, dissectMessage(t, msg).edks, 6)

	reader, err := phicrypt.New(phicrypt.Config{Keyring: keyrings[5]})
	require.NoError(t, err)
	tm := &tamperMessage{enc: reader}
	requireStage(t, tm.refuse(t, msg, nil, "six EDKs, default cap"), phicrypt.StageEDK, phicrypt.ErrLimit, "six EDKs")

	reader, err = phicrypt.New(phicrypt.Config{Keyring: keyrings[5], MaxEncryptedDataKeys: 6})
	require.NoError(t, err)
	pt, _, err := reader.Decrypt(ctx, msg, nil)
	require.NoError(t, err)
	require.Equal(t, tamperCanary, string(pt))
}

func TestFrameLengthLimit(t *testing.T) {
	ctx := context.Background()
	kr := tamperKeyring(t, "key-1")
	writer, err := phicrypt.New(phicrypt.Config{Keyring: kr, FrameLength: 4 << 20})
	require.NoError(t, err)
	msg, err := writer.Encrypt(ctx, []byte(tamperCanary), map[string]string{"patient": tamperCanary})
	require.NoError(t, err)

	small, err := phicrypt.New(phicrypt.Config{Keyring: kr, MaxFrameLength: 1 << 20})
	require.NoError(t, err)
	tm := &tamperMessage{enc: small}
	requireStage(t, tm.refuse(t, msg, nil, "4 MiB frames, 1 MiB cap"), phicrypt.StageHeader, phicrypt.ErrLimit, "4 MiB frames")

	def, err := phicrypt.New(phicrypt.Config{Keyring: kr})
	require.NoError(t, err)
	_, _, err = def.Decrypt(ctx, msg, nil)
	require.NoError(t, err, "4 MiB is within the default cap")

	// A frame length of 8 MiB cannot be written, and patching it in breaks
	// the header tag; but the cap is applied while parsing, before any
	// authentication, so the patched message is refused for its size.
	l := dissectMessage(t, msg)
	patched := slices.Clone(msg)
	binary.BigEndian.PutUint32(patched[l.frameLength.start:], 8<<20)
	tm = &tamperMessage{enc: def}
	requireStage(t, tm.refuse(t, patched, nil, "8 MiB frames, default cap"), phicrypt.StageHeader, phicrypt.ErrLimit, "8 MiB frames")
}

func TestBase64MessageRefused(t *testing.T) {
	for _, suite := range tamperSuites {
		t.Run(suite.String(), func(t *testing.T) {
			tm := newTamperMessage(t, suite)
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding} {
				me := tm.refuse(t, []byte(enc.EncodeToString(tm.msg)), nil, "base64")
				requireStage(t, me, phicrypt.StageHeader, phicrypt.ErrMalformed, "base64")
				require.Contains(t, me.Error(), "base64")
			}
		})
	}
}

// TestErrorsNeverHoldCanary drives the failures the tamper tests do not:
// wrong expectations, wrong keys, missing required keys and refused
// contexts on encrypt. (Every refusal in the tamper tests is checked too.)
func TestErrorsNeverHoldCanary(t *testing.T) {
	ctx := context.Background()
	tm := newTamperMessage(t, phicrypt.SuiteCommittedSigned)
	me := tm.refuse(t, tm.msg, map[string]string{"patient": tamperCanary + " John Roe"}, "wrong expected value")
	requireStage(t, me, phicrypt.StageHeader, phicrypt.ErrContext, "wrong expected value")
	tm.refuse(t, tm.msg, map[string]string{"ward": tamperCanary}, "expected pair absent from the message")

	other, err := phicrypt.New(phicrypt.Config{Keyring: tamperKeyring(t, "key-2")})
	require.NoError(t, err)
	wrongKey := &tamperMessage{enc: other}
	requireStage(t, wrongKey.refuse(t, tm.msg, nil, "other key"), phicrypt.StageEDK, phicrypt.ErrNoKey, "other key")

	sameName, err := keyring.NewRawAES("tamper-test", "key-1", bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	impostor, err := phicrypt.New(phicrypt.Config{Keyring: sameName})
	require.NoError(t, err)
	wrongKey = &tamperMessage{enc: impostor}
	requireStage(t, wrongKey.refuse(t, tm.msg, nil, "same name, other key bytes"), phicrypt.StageEDK, phicrypt.ErrNoKey, "impostor")

	strict, err := phicrypt.New(phicrypt.Config{Keyring: tamperKeyring(t, "key-1"), RequiredContextKeys: []string{"ward"}})
	require.NoError(t, err)
	missing := &tamperMessage{enc: strict}
	requireStage(t, missing.refuse(t, tm.msg, nil, "required key missing"), phicrypt.StageHeader, phicrypt.ErrContext, "required key")

	for _, c := range []struct {
		name string
		enc  *phicrypt.Encryptor
		ec   map[string]string
	}{
		{"reserved key", tm.enc, map[string]string{"aws-crypto-mine": tamperCanary}},
		{"invalid UTF-8", tm.enc, map[string]string{"patient": tamperCanary + "\xff"}},
		{"oversized context", tm.enc, map[string]string{"patient": tamperCanary + strings.Repeat("x", 70000)}},
		{"required key missing", strict, map[string]string{"patient": tamperCanary}},
	} {
		_, err := c.enc.Encrypt(ctx, []byte(tamperCanary), c.ec)
		require.ErrorIs(t, err, phicrypt.ErrContext, c.name)
		requireNoCanary(t, err)
	}
}
