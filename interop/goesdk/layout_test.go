package goesdk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"testing"

	"github.com/phicrypt/phicrypt/phicrypt"
)

// layout is where the parts of a version 2, framed message lie, as the
// ESDK's message format (data-format/message-header.md, message-body.md,
// message-footer.md) places them. The tests read headers through it without
// trusting either implementation's parser, and aim their tampering with it.
type layout struct {
	suite        uint16
	messageID    int         // offset of the 32-byte message id
	pairs        [][2]string // the context as serialized, in order
	pairOffsets  []int       // offset of each pair's value
	edkCipher    []int       // offset of each encrypted data key's ciphertext
	edkProvider  []string    // each encrypted data key's provider id
	edkInfo      []string    // and its provider info
	frameLength  uint32
	suiteData    int // offset of the 32-byte commitment key
	headerTag    int // offset of the 16-byte header tag
	frames       []frameSpan
	footer       int // offset of the signature length, or -1 when unsigned
	signatureLen int
}

// frameSpan is one body frame: where it starts, its IV, its content and
// its tag.
type frameSpan struct {
	start, iv, content, contentLen, tag int
	final                               bool
}

type cursor struct {
	b   []byte
	off int
	err error
}

var errShort = errors.New("message ends early")

func (c *cursor) take(n int) []byte {
	if c.err != nil || n < 0 || c.off+n > len(c.b) {
		c.err = errShort
		return nil
	}
	s := c.b[c.off : c.off+n]
	c.off += n
	return s
}

func (c *cursor) u16() int {
	s := c.take(2)
	if s == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(s))
}

func (c *cursor) u32() uint32 {
	s := c.take(4)
	if s == nil {
		return 0
	}
	return binary.BigEndian.Uint32(s)
}

func parseLayout(msg []byte) (*layout, error) {
	c := &cursor{b: msg}
	l := &layout{footer: -1}
	if v := c.take(1); c.err == nil && v[0] != 2 {
		return nil, errors.New("not a version 2 message")
	}
	l.suite = uint16(c.u16())
	l.messageID = c.off
	c.take(32)
	if aadLen := c.u16(); aadLen > 0 {
		end := c.off + aadLen
		for n := c.u16(); n > 0 && c.err == nil; n-- {
			k := c.take(c.u16())
			l.pairOffsets = append(l.pairOffsets, c.off+2)
			v := c.take(c.u16())
			l.pairs = append(l.pairs, [2]string{string(k), string(v)})
		}
		if c.err == nil && c.off != end {
			return nil, errors.New("context length disagrees with its pairs")
		}
	}
	for n := c.u16(); n > 0 && c.err == nil; n-- {
		l.edkProvider = append(l.edkProvider, string(c.take(c.u16())))
		l.edkInfo = append(l.edkInfo, string(c.take(c.u16())))
		size := c.u16()
		l.edkCipher = append(l.edkCipher, c.off)
		c.take(size)
	}
	if ct := c.take(1); c.err == nil && ct[0] != 2 {
		return nil, errors.New("not a framed message")
	}
	l.frameLength = c.u32()
	l.suiteData = c.off
	c.take(32)
	l.headerTag = c.off
	c.take(16)
	for c.err == nil {
		f := frameSpan{start: c.off}
		seq := c.u32()
		if seq == 0xFFFFFFFF {
			f.final = true
			c.u32()
		}
		f.iv = c.off
		c.take(12)
		f.contentLen = int(l.frameLength)
		if f.final {
			f.contentLen = int(c.u32())
		}
		f.content = c.off
		c.take(f.contentLen)
		f.tag = c.off
		c.take(16)
		l.frames = append(l.frames, f)
		if f.final {
			break
		}
	}
	if l.suite == uint16(phicrypt.SuiteCommittedSigned) && c.err == nil {
		l.footer = c.off
		l.signatureLen = c.u16()
		c.take(l.signatureLen)
	}
	if c.err != nil {
		return nil, c.err
	}
	if c.off != len(msg) {
		return nil, errors.New("bytes follow the message")
	}
	return l, nil
}

// checkHeader parses msg and checks that its suite, frame length and
// context are v's, and that the context is serialized in ascending order of
// the keys' UTF-8 bytes (framework/structures.md, "Serialization").
func checkHeader(t *testing.T, msg []byte, v vector) *layout {
	t.Helper()
	l, err := parseLayout(msg)
	if err != nil {
		t.Fatalf("message layout: %v", err)
	}
	if l.suite != uint16(v.suite) || l.frameLength != uint32(v.frame) {
		t.Fatalf("header has suite 0x%04x frame %d, want 0x%04x frame %d", l.suite, l.frameLength, uint16(v.suite), v.frame)
	}
	stored := map[string]string{}
	for i, p := range l.pairs {
		if i > 0 && bytes.Compare([]byte(l.pairs[i-1][0]), []byte(p[0])) >= 0 {
			t.Fatalf("context pair %d is not in UTF-8 byte order", i)
		}
		stored[p[0]] = p[1]
	}
	if v.suite == phicrypt.SuiteCommittedSigned {
		if stored[publicKeyContextKey] == "" {
			t.Fatal("a signed message's header has no signing key")
		}
		stored = withoutKey(stored, publicKeyContextKey)
	}
	want := maps.Clone(v.ec)
	for _, k := range v.authOnly {
		delete(want, k)
	}
	if !sameContext(stored, want) {
		t.Fatalf("header holds %d context pairs, want %d", len(stored), len(v.ec))
	}
	return l
}

// The layout parser must agree with itself on a known shape, or the
// tampering below would aim at the wrong bytes.
func TestLayoutOfPhicryptMessage(t *testing.T) {
	kr := phicryptRawAES(t, randomBytes(32))
	for _, suite := range suites {
		enc := newEncryptor(t, phicrypt.Config{Keyring: kr, Suite: suite, FrameLength: 128})
		v := vector{suite: suite, frame: 128, pt: randomBytes(300), ec: contexts[2]}
		msg, err := enc.Encrypt(t.Context(), v.pt, v.ec)
		if err != nil {
			t.Fatal(err)
		}
		l := checkHeader(t, msg, v)
		if len(l.frames) != 3 || !l.frames[2].final || l.frames[2].contentLen != 300-256 || len(l.edkCipher) != 1 {
			t.Fatalf("%v: %d frames, last final %v with %d bytes, %d EDKs", suite, len(l.frames), l.frames[len(l.frames)-1].final, l.frames[len(l.frames)-1].contentLen, len(l.edkCipher))
		}
		if (suite == phicrypt.SuiteCommittedSigned) != (l.footer > 0) {
			t.Fatalf("%v: footer at %d", suite, l.footer)
		}
	}
}
