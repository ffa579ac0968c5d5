package goesdk

import (
	"errors"
	"fmt"
	"testing"

	"github.com/phicrypt/phicrypt/phicrypt"
)

// tampering is one change to a valid message and the phicrypt sentinel it
// must produce (nil: any sentinel, where the stage that notices depends on
// which check runs first).
type tampering struct {
	name  string
	apply func(msg []byte, l *layout) []byte
	want  error
}

func flip(off int) func([]byte, *layout) []byte {
	return func(msg []byte, _ *layout) []byte {
		out := append([]byte(nil), msg...)
		out[off] ^= 0x01
		return out
	}
}

// tamperings aims at every part of the layout l describes: header fields,
// the wrapped data key, the commitment, the header tag, frames, the
// signature, and the message's length.
func tamperings(l *layout, msgLen int) []tampering {
	last := l.frames[len(l.frames)-1]
	ts := []tampering{
		{"version", flip(0), phicrypt.ErrMalformed},
		{"suite id", flip(2), phicrypt.ErrMalformed},
		{"message id", flip(l.messageID + 7), phicrypt.ErrAuthentication},
		{"context value", flip(l.pairOffsets[len(l.pairOffsets)-1]), nil},
		{"encrypted data key", flip(l.edkCipher[0] + 3), phicrypt.ErrNoKey},
		{"frame length", flip(l.suiteData - 1), nil},
		{"commitment key", flip(l.suiteData + 5), phicrypt.ErrAuthentication},
		{"header tag", flip(l.headerTag + 15), phicrypt.ErrAuthentication},
		{"frame sequence number", flip(l.frames[0].start + 3), nil},
		{"frame iv", flip(l.frames[0].iv + 11), nil},
		{"frame ciphertext", flip(l.frames[1].content), phicrypt.ErrAuthentication},
		{"frame tag", flip(l.frames[0].tag), phicrypt.ErrAuthentication},
		{"final frame length", flip(last.content - 1), nil},
		{"final frame tag", flip(last.tag + 15), phicrypt.ErrAuthentication},
		{"frames swapped", func(msg []byte, l *layout) []byte {
			out := append([]byte(nil), msg...)
			a, b := l.frames[0], l.frames[1]
			size := b.start - a.start
			copy(out[a.start:], msg[b.start:b.start+size])
			copy(out[b.start:], msg[a.start:a.start+size])
			return out
		}, nil},
		{"final frame dropped", func(msg []byte, l *layout) []byte {
			return append([]byte(nil), msg[:last.start]...)
		}, phicrypt.ErrMalformed},
		{"last byte dropped", func(msg []byte, _ *layout) []byte {
			return append([]byte(nil), msg[:len(msg)-1]...)
		}, phicrypt.ErrMalformed},
		{"byte appended", func(msg []byte, _ *layout) []byte {
			return append(append([]byte(nil), msg...), 0)
		}, phicrypt.ErrMalformed},
	}
	if l.footer >= 0 {
		ts = append(ts,
			tampering{"signature", flip(msgLen - 1), phicrypt.ErrAuthentication},
			tampering{"signature removed", func(msg []byte, l *layout) []byte {
				return append([]byte(nil), msg[:l.footer]...)
			}, phicrypt.ErrMalformed})
	}
	return ts
}

var sentinels = []error{phicrypt.ErrMalformed, phicrypt.ErrAuthentication, phicrypt.ErrNoKey,
	phicrypt.ErrCommitmentPolicy, phicrypt.ErrLimit, phicrypt.ErrContext}

// Each side's messages, altered anywhere, are refused by both sides; the
// unaltered message is read by both.
func TestTamperedMessagesRefusedByBoth(t *testing.T) {
	key := randomBytes(32)
	p := newGoESDK(t)
	m := withKeyring(p.rawAES(t, key))
	dec := newEncryptor(t, phicrypt.Config{Keyring: phicryptRawAES(t, key)})
	for _, suite := range suites {
		// Two full frames and a final one of 44 bytes.
		v := vector{suite: suite, frame: 128, pt: randomBytes(300), ec: contexts[2]}
		fromESDK, err := p.encrypt(m, suite, v.frame, v.pt, v.ec)
		if err != nil {
			t.Fatalf("ESDK encrypt: %v", err)
		}
		enc := newEncryptor(t, phicrypt.Config{Keyring: phicryptRawAES(t, key), Suite: suite, FrameLength: v.frame})
		fromPhicrypt, err := enc.Encrypt(t.Context(), v.pt, v.ec)
		if err != nil {
			t.Fatalf("phicrypt encrypt: %v", err)
		}
		for producer, msg := range map[string][]byte{"made by the ESDK": fromESDK, "made by phicrypt": fromPhicrypt} {
			t.Run(fmt.Sprintf("%v/%s", suite, producer), func(t *testing.T) {
				l := checkHeader(t, msg, v)
				if len(l.frames) != 3 {
					t.Fatalf("%d frames, want 3", len(l.frames))
				}
				if producer == "made by the ESDK" {
					phicryptReads(t, dec, msg, v)
				} else {
					esdkReads(t, p, m, msg, v)
				}
				for _, tm := range tamperings(l, len(msg)) {
					bad := tm.apply(msg, l)
					_, _, err := dec.Decrypt(t.Context(), bad, v.ec)
					switch {
					case err == nil:
						t.Errorf("%s: phicrypt read the tampered message", tm.name)
					case tm.want != nil && !errors.Is(err, tm.want):
						t.Errorf("%s: phicrypt answered %v, want %v", tm.name, err, tm.want)
					case tm.want == nil && !isSentinel(err):
						t.Errorf("%s: phicrypt answered %v, which wraps none of its sentinels", tm.name, err)
					}
					crossChecked()
					if _, err := p.decrypt(m, bad, v.ec); err == nil {
						t.Errorf("%s: the ESDK read the tampered message", tm.name)
					}
					crossChecked()
				}
			})
		}
	}
}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
