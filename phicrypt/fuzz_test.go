package phicrypt_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"maps"
	"runtime"
	"slices"
	"testing"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

// fuzzTarget holds the readers a fuzz input goes through and the messages
// they may accept. The seeds come from the checked-in vectors, never from a
// fresh Encrypt, so "accepted" has a fixed meaning across runs and cached
// corpora: a message is accepted only if it is, byte for byte, a positive
// vector under the vector key. Anything else accepted is a forgery.
type fuzzTarget struct {
	readers []*phicrypt.Encryptor
	valid   map[string][]byte // message -> plaintext
	// messages are the vectors under the vector key, positive first.
	messages [][]byte
}

func newFuzzTarget(f *testing.F) *fuzzTarget {
	f.Helper()
	ft := &fuzzTarget{valid: map[string][]byte{}}
	var negatives [][]byte
	for _, v := range loadVectors(f) {
		_, msg := v.decode(f)
		if v.WrappingKey != vectorKeyHex || v.KeyNamespace != vectorNamespace || v.KeyName != vectorKeyName {
			continue
		}
		if v.Failure != nil {
			negatives = append(negatives, msg)
			continue
		}
		pt, err := hex.DecodeString(*v.Plaintext)
		require.NoError(f, err)
		ft.valid[string(msg)] = pt
		ft.messages = append(ft.messages, msg)
	}
	require.NotEmpty(f, ft.messages)
	ft.messages = append(ft.messages, negatives...)
	kr := vectorKeyring(f)
	for _, policy := range []phicrypt.CommitmentPolicy{phicrypt.RequireEncryptRequireDecrypt, phicrypt.RequireEncryptAllowDecrypt} {
		// The second reader also parses version 1 headers and non-framed
		// bodies, which the default policy refuses before reading them.
		enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, CommitmentPolicy: policy})
		require.NoError(f, err)
		ft.readers = append(ft.readers, enc)
	}
	return ft
}

func vectorKeyring(t testing.TB) keyring.Keyring {
	t.Helper()
	key, err := hex.DecodeString(vectorKeyHex)
	require.NoError(t, err)
	kr, err := keyring.NewRawAES(vectorNamespace, vectorKeyName, key)
	require.NoError(t, err)
	return kr
}

// check decrypts msg with every reader, through Decrypt and DecryptAppend.
func (ft *fuzzTarget) check(t *testing.T, msg []byte) {
	for _, enc := range ft.readers {
		pt, ec, err := enc.Decrypt(context.Background(), msg, nil)
		ft.judge(t, msg, pt, ec, err)

		// DecryptAppend must leave no plaintext in dst's spare capacity
		// when it fails.
		dst := make([]byte, 3, 3+len(msg))
		copy(dst, "abc")
		out, ec, err := enc.DecryptAppend(context.Background(), dst, msg, nil)
		if err != nil {
			if slices.ContainsFunc(dst[3:cap(dst)], func(b byte) bool { return b != 0 }) {
				t.Fatalf("DecryptAppend failed (%v) and left bytes in dst", err)
			}
			ft.judge(t, msg, out, ec, err)
		} else {
			require.Equal(t, "abc", string(out[:3]))
			ft.judge(t, msg, out[3:], ec, err)
		}
	}
}

func (ft *fuzzTarget) judge(t *testing.T, msg, pt []byte, ec map[string]string, err error) {
	t.Helper()
	if err == nil {
		want, ok := ft.valid[string(msg)]
		if !ok && generated(pt, ec) {
			// A message the vector generator made under the vector key in
			// an earlier generation of testdata (Go's fuzz cache outlives
			// a regeneration): authentic, not a forgery. A mutation cannot
			// yield the generator's plaintext and context under a valid tag.
			return
		}
		if !ok {
			t.Fatalf("Decrypt accepted a message that is not a vector (%d bytes)", len(msg))
		}
		if !bytes.Equal(want, pt) {
			t.Fatalf("Decrypt of a vector returned the wrong plaintext")
		}
		return
	}
	if pt != nil || ec != nil {
		t.Fatalf("Decrypt failed (%v) but returned plaintext or context", err)
	}
	if !slices.ContainsFunc(tamperSentinels, func(s error) bool { return errors.Is(err, s) }) {
		t.Fatalf("the error wraps no sentinel: %v", err)
	}
	var me *phicrypt.MessageError
	if !errors.As(err, &me) {
		t.Fatalf("the error is not a *MessageError: %v", err)
	}
}

func FuzzDecrypt(f *testing.F) {
	ft := newFuzzTarget(f)
	for _, msg := range ft.messages {
		f.Add(msg)
	}
	// A few mutations of each positive suite, so the corpus starts deep
	// in the body and footer as well as at the header.
	for _, msg := range ft.messages[:len(ft.valid)] {
		l := dissectMessage(f, msg)
		f.Add(msg[:len(msg)/2])
		f.Add(msg[:l.header.end])
		f.Add(flipBit(msg, l.frames[0].tag.start, 0))
		f.Add(append(slices.Clone(msg), msg[l.header.end:]...))
	}
	f.Add([]byte{})
	f.Add([]byte{2})
	f.Add([]byte{1, 0x80, 0x01, 0x78})
	f.Fuzz(func(t *testing.T, msg []byte) { ft.check(t, msg) })
}

// FuzzHeader drives header parsing: the input is a header, tried alone and
// followed by the body of a fixed vector.
func FuzzHeader(f *testing.F) {
	ft := newFuzzTarget(f)
	body := map[int][]byte{} // message index -> body, for the positives
	for i, msg := range ft.messages[:len(ft.valid)] {
		l := dissectMessage(f, msg)
		body[i] = msg[l.header.end:]
		f.Add(msg[:l.header.end], i)
		for _, s := range []span{l.messageID, l.context, l.edkCount, l.edks[0].providerInfo, l.frameLength, l.commitKey} {
			f.Add(msg[:s.end], i)
		}
	}
	f.Fuzz(func(t *testing.T, header []byte, which int) {
		ft.check(t, header)
		if b, ok := body[which]; ok {
			ft.check(t, append(slices.Clone(header), b...))
		}
	})
}

// TestDecryptHugeEDKCount: a header that claims 65535 encrypted data keys
// but ends a few bytes later is refused at once, and the refusal costs
// memory in proportion to the bytes given, not to the count claimed.
func TestDecryptHugeEDKCount(t *testing.T) {
	msg := []byte{2, 0x04, 0x78}
	msg = append(msg, make([]byte, 32)...) // message ID
	msg = append(msg, 0, 0)                // empty context
	msg = append(msg, 0xff, 0xff)          // 65535 encrypted data keys
	msg = append(msg, 0, 3, 'a', 'b')      // and the start of one
	kr := vectorKeyring(t)
	for _, c := range []struct {
		maxEDKs  int
		sentinel error
		stage    phicrypt.Stage
	}{
		{0, phicrypt.ErrLimit, phicrypt.StageEDK},             // the default cap, 5
		{0xffff, phicrypt.ErrMalformed, phicrypt.StageHeader}, // the largest cap allowed
	} {
		enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, MaxEncryptedDataKeys: c.maxEDKs})
		require.NoError(t, err)
		tm := &tamperMessage{enc: enc}
		requireStage(t, tm.refuse(t, msg, nil, "65535 EDKs claimed"), c.stage, c.sentinel, "65535 EDKs claimed")

		const runs = 20
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range runs {
			_, _, _ = enc.Decrypt(context.Background(), msg, nil)
		}
		runtime.ReadMemStats(&after)
		perCall := (after.TotalAlloc - before.TotalAlloc) / runs
		require.Less(t, perCall, uint64(16<<10),
			"MaxEncryptedDataKeys %d: refusing a %d-byte message allocated %d bytes; size the EDK slice by what was read, not by the count claimed",
			c.maxEDKs, len(msg), perCall)
	}
}

// generated reports whether pt and ec are what the vector generator
// encrypts: its deterministic filler under its context.
func generated(pt []byte, ec map[string]string) bool {
	return bytes.Equal(pt, vectorPlaintext(len(pt))) && maps.Equal(ec, vectorContext)
}
