package phicrypt

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Message is a message's authenticated header, for callers that fetch the
// message's bytes themselves, such as ranged reads from an object store:
// it maps a plaintext range to the bytes of the frames that hold it
// (Layout, Span) and authenticates and decrypts those frames (OpenFrames).
// It holds the message's derived key until it is dropped. It is safe for
// concurrent use.
type Message struct {
	o         *opened
	headerLen int64
	frameLen  int64
}

// ErrShortHeader is wrapped by HeaderLength and OpenHeader when the bytes
// given end inside the header: fetch more and call again.
var ErrShortHeader = errors.New("phicrypt: the bytes end inside the message header")

// HeaderLength returns the length of the header that begins prefix,
// checking its structure but authenticating nothing. It returns an error
// wrapping ErrShortHeader when prefix ends inside the header.
func (e *Encryptor) HeaderLength(prefix []byte) (int, error) {
	_, raw, err := e.parsePrefix(prefix)
	if err != nil {
		return 0, err
	}
	return len(raw), nil
}

func (e *Encryptor) parsePrefix(prefix []byte) (*header, []byte, error) {
	if len(prefix) > e.lim.maxHeaderBytes {
		prefix = prefix[:e.lim.maxHeaderBytes]
	}
	src := &sliceSource{b: prefix}
	h, raw, err := parseHeader(src, &e.lim)
	if err != nil {
		if len(prefix) < e.lim.maxHeaderBytes && isShort(err) {
			return nil, nil, fmt.Errorf("%w (%d bytes given)", ErrShortHeader, len(prefix))
		}
		if len(prefix) == e.lim.maxHeaderBytes && isShort(err) {
			return nil, nil, &MessageError{Stage: StageHeader, Err: ErrLimit, What: "the header is larger than the configured maximum"}
		}
		return nil, nil, err
	}
	return h, raw, nil
}

// isShort reports whether a parse failed only because its input ended.
func isShort(err error) bool {
	var me *MessageError
	return errors.As(err, &me) && me.Stage == StageHeader && me.What == "the message ends inside its header"
}

// OpenHeader authenticates the header that begins prefix (which may hold
// more of the message after it) exactly as Decrypt does: commitment policy,
// expected context, the keyring, key commitment and the header tag. It
// returns an error wrapping ErrShortHeader when prefix ends inside the
// header. Only framed messages can be opened this way.
func (e *Encryptor) OpenHeader(ctx context.Context, prefix []byte, expect map[string]string) (*Message, error) {
	h, raw, err := e.parsePrefix(prefix)
	if err != nil {
		return nil, err
	}
	if !h.framed {
		return nil, malformed(StageFrame, "ranged reads need a framed message")
	}
	// The parsed header points into prefix; keep a copy of its own.
	raw = append([]byte(nil), raw...)
	if h, raw, err = parseHeader(&sliceSource{b: raw}, &e.lim); err != nil {
		return nil, err
	}
	o, err := e.open(ctx, h, raw, expect)
	if err != nil {
		return nil, err
	}
	return &Message{o: o, headerLen: int64(len(raw)), frameLen: int64(h.frameLength)}, nil
}

// HeaderLength is the header's length in bytes: the body starts there.
func (m *Message) HeaderLength() int64 { return m.headerLen }

// FrameLength is the plaintext bytes per frame.
func (m *Message) FrameLength() int64 { return m.frameLen }

// Suite is the message's algorithm suite.
func (m *Message) Suite() Suite { return m.o.h.suite.id }

// Signed reports whether the suite signs the message: its signature covers
// every byte, so a ranged read cannot check it.
func (m *Message) Signed() bool { return m.o.verifier != nil }

// EncryptionContext returns the message's encryption context.
func (m *Message) EncryptionContext() map[string]string { return m.o.publicContext() }

// MatchesContext reports whether the header stores every pair of expect
// with the same value. A pair the header does not store can only be
// checked by opening the header again with it (OpenHeader).
func (m *Message) MatchesContext(expect map[string]string) bool {
	for k, v := range expect {
		got, ok := contextValue(m.o.h.contextRaw, k)
		if !ok || string(got) != v {
			return false
		}
	}
	return true
}

// Layout places a message's frames: Frames regular frames of FrameLength
// plaintext bytes, then a final frame of FinalLength bytes.
type Layout struct {
	MessageSize   int64 // the whole message in bytes
	PlaintextSize int64
	Frames        int64 // regular frames, before the final frame
	FinalLength   int64
	headerLen     int64
	frameLen      int64
}

// Layout finds the frames of an unsigned message of size bytes from its
// length alone: a body is n regular frames of FrameLength+32 bytes and a
// final frame of 40+L bytes with 0 <= L <= FrameLength, which has exactly
// one solution. The final frame's marker, number and tag are checked when
// OpenFrames reads it: a message cut short and made to look whole again
// fails there, since its last frame was not sealed as the final one.
func (m *Message) Layout(size int64) (Layout, error) {
	if m.Signed() {
		return Layout{}, malformed(StageSignature, "a signed message's layout depends on its signature's length, and a ranged read could not verify the signature")
	}
	return LayoutOf(size, m.headerLen, m.frameLen)
}

// LayoutOf is Message.Layout for an unsigned message whose header has not
// been opened: from its size, header length and frame length alone. It
// checks only that the lengths fit together.
func LayoutOf(size, headerLen, frameLen int64) (Layout, error) {
	if frameLen <= 0 || frameLen > maxFrameLengthLimit || headerLen <= 0 {
		return Layout{}, malformed(StageFrame, "the frame or header length is out of range")
	}
	m := struct{ headerLen, frameLen int64 }{headerLen, frameLen}
	body := size - m.headerLen - finalFrameOverhead
	if body < 0 {
		return Layout{}, malformed(StageFrame, "the message ends before its final frame")
	}
	step := m.frameLen + regularFrameOverhead
	l := Layout{MessageSize: size, Frames: body / step, FinalLength: body % step, headerLen: m.headerLen, frameLen: m.frameLen}
	if l.FinalLength > m.frameLen || l.Frames >= maxSeq {
		return Layout{}, malformed(StageFrame, "the body's length fits no sequence of frames")
	}
	l.PlaintextSize = l.Frames*m.frameLen + l.FinalLength
	return l, nil
}

// Span returns the message bytes [start, end) holding every frame that
// plaintext bytes [off, off+n) touch. The range is clipped to the
// plaintext; an empty range spans nothing (start == end).
func (l Layout) Span(off, n int64) (start, end int64) {
	if off < 0 || n <= 0 || off >= l.PlaintextSize {
		return l.headerLen, l.headerLen
	}
	last := min(off+n, l.PlaintextSize) - 1
	first, lastFrame := off/l.frameLen, last/l.frameLen
	if l.FinalLength == 0 && lastFrame >= l.Frames {
		lastFrame = l.Frames // the empty final frame holds no byte
	}
	return l.frameStart(first), l.frameStart(lastFrame) + l.frameSize(lastFrame)
}

func (l Layout) frameStart(idx int64) int64 {
	return l.headerLen + idx*(l.frameLen+regularFrameOverhead)
}

func (l Layout) frameSize(idx int64) int64 {
	if idx == l.Frames {
		return finalFrameOverhead + l.FinalLength
	}
	return l.frameLen + regularFrameOverhead
}

// OpenFrames authenticates and decrypts the frames in b, the message bytes
// from start (a frame boundary Span returned), and appends plaintext bytes
// [off, off+n) to dst. Every frame b holds is authenticated, in its place:
// a frame moved, altered or cut short fails. On failure dst's new bytes are
// cleared and dst is returned unextended with the error.
func (m *Message) OpenFrames(dst []byte, l Layout, start int64, b []byte, off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > l.PlaintextSize || n > l.PlaintextSize-off {
		return dst, fmt.Errorf("%w: the range [%d, %d) lies outside the plaintext of %d bytes", io.ErrUnexpectedEOF, off, off+n, l.PlaintextSize)
	}
	if n == 0 {
		return dst, nil
	}
	if l.frameLen != m.frameLen || l.headerLen != m.headerLen {
		return dst, errors.New("phicrypt: the layout is not this message's")
	}
	if start < l.headerLen || (start-l.headerLen)%(l.frameLen+regularFrameOverhead) != 0 {
		return dst, errors.New("phicrypt: OpenFrames needs bytes that start on a frame boundary")
	}
	idx := (start - l.headerLen) / (l.frameLen + regularFrameOverhead)
	if idx > l.Frames || off < idx*l.frameLen {
		return dst, errors.New("phicrypt: the bytes given start after the range asked for")
	}
	fc := newFrameCrypto(m.o.aead, m.o.h.messageID)
	src := &sliceSource{b: b}
	fr := &frameReader{src: src, frameLength: uint32(l.frameLen), seq: uint32(idx + 1)}
	s0 := len(dst)
	skip := off - idx*l.frameLen
	fail := func(err error) ([]byte, error) {
		clear(dst[s0:])
		return dst[:s0], err
	}
	for int64(len(dst)-s0) < skip+n {
		if idx > l.Frames {
			return fail(malformed(StageFrame, "the range runs past the final frame"))
		}
		f, err := fr.next()
		if err != nil {
			return fail(err)
		}
		if f.final != (idx == l.Frames) || (f.final && int64(len(f.sealed)-tagLength) != l.FinalLength) {
			return fail(malformed(StageFrame, "a frame is not where the message's length puts it; the message was cut short or extended"))
		}
		out, ok := fc.open(dst, f.kind(), f.seq, f.iv, f.sealed)
		if !ok {
			return fail(authFailed(StageFrame, "a frame does not authenticate"))
		}
		dst = out
		idx++
	}
	copy(dst[s0:], dst[s0+int(skip):s0+int(skip+n)])
	clear(dst[s0+int(n):])
	return dst[:s0+int(n)], nil
}

// FinalFrameStart is where the final frame begins: the message bytes
// [FinalFrameStart, MessageSize) are the final frame.
func (l Layout) FinalFrameStart() int64 { return l.frameStart(l.Frames) }

// CheckFinal authenticates the final frame, given as the message bytes
// from FinalFrameStart to the end: its marker, sequence number, length and
// tag. A message cut short at a frame boundary, or extended by frames,
// fails, since its last frame was not sealed as the final one at that
// place. The frame's plaintext is decrypted into scratch and cleared.
func (m *Message) CheckFinal(l Layout, b []byte) error {
	if l.frameLen != m.frameLen || l.headerLen != m.headerLen {
		return errors.New("phicrypt: the layout is not this message's")
	}
	src := &sliceSource{b: b}
	fr := &frameReader{src: src, frameLength: uint32(l.frameLen), seq: uint32(l.Frames + 1)}
	f, err := fr.next()
	if err != nil {
		return err
	}
	if !f.final || int64(len(f.sealed)-tagLength) != l.FinalLength || src.off != len(b) {
		return malformed(StageFrame, "the message does not end with its final frame where its length puts it")
	}
	fc := newFrameCrypto(m.o.aead, m.o.h.messageID)
	out, ok := fc.open(make([]byte, 0, len(f.sealed)), f.kind(), f.seq, f.iv, f.sealed)
	clear(out)
	if !ok {
		return authFailed(StageFrame, "the final frame does not authenticate")
	}
	return nil
}
