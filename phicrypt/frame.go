package phicrypt

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Body layout (data-format/message-body.md), framed:
//
//	regular: seq(4) iv(12) ciphertext(frameLength) tag(16)
//	final:   FFFFFFFF seq(4) iv(12) length(4) ciphertext(length) tag(16)
//
// Sequence numbers start at 1; the final frame is the last and may be empty.
// Each frame's IV is 8 zero bytes and its sequence number, and its GCM
// additional data is (data-format/message-body-aad.md)
//
//	message id || content string || seq (uint32) || plaintext length (uint64)
//
// A non-framed body (read only) is iv(12) length(8) ciphertext tag(16).
const (
	aadFrame       = "AWSKMSEncryptionClient Frame"
	aadFinalFrame  = "AWSKMSEncryptionClient Final Frame"
	aadSingleBlock = "AWSKMSEncryptionClient Single Block"
	finalMarker    = 0xFFFFFFFF

	regularFrameOverhead = 4 + ivLength + tagLength
	finalFrameOverhead   = 4 + 4 + ivLength + 4 + tagLength
	// maxSeq is the last sequence number a frame may carry: 0xFFFFFFFF is
	// the final-frame marker.
	maxSeq = 0xFFFFFFFE
	// maxNonFramedBody is the format's cap on a non-framed body, 2^36 - 32.
	maxNonFramedBody = 1<<36 - 32
	// maxFrameLengthLimit caps the frame length anyone may configure, so
	// every size computed from it fits an int on 32-bit platforms too.
	maxFrameLengthLimit = 1 << 30
)

// frameCrypto seals and opens one message's frames. Its scratch space makes
// the hot path allocation-free; it is not safe for concurrent use (give
// each worker its own, sharing the AEAD, which is).
type frameCrypto struct {
	aead      cipher.AEAD
	messageID []byte
	aad       []byte
	iv        [ivLength]byte
	aadBuf    [32 + len(aadSingleBlock) + 12]byte // the longest frame AAD
}

func newFrameCrypto(aead cipher.AEAD, messageID []byte) *frameCrypto {
	fc := &frameCrypto{}
	fc.init(aead, messageID)
	return fc
}

// init readies fc, which may be pooled, for a message.
func (fc *frameCrypto) init(aead cipher.AEAD, messageID []byte) {
	fc.aead, fc.messageID, fc.aad = aead, messageID, fc.aadBuf[:0]
}

func (fc *frameCrypto) setup(kind string, seq uint32, length uint64) {
	fc.aad = append(fc.aad[:0], fc.messageID...)
	fc.aad = append(fc.aad, kind...)
	fc.aad = binary.BigEndian.AppendUint32(fc.aad, seq)
	fc.aad = binary.BigEndian.AppendUint64(fc.aad, length)
	clear(fc.iv[:8])
	binary.BigEndian.PutUint32(fc.iv[8:], seq)
}

// seal appends the frame carrying pt.
func (fc *frameCrypto) seal(dst []byte, seq uint32, final bool, pt []byte) []byte {
	kind := aadFrame
	if final {
		kind = aadFinalFrame
		dst = binary.BigEndian.AppendUint32(dst, finalMarker)
	}
	fc.setup(kind, seq, uint64(len(pt)))
	dst = binary.BigEndian.AppendUint32(dst, seq)
	dst = append(dst, fc.iv[:]...)
	if final {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(pt)))
	}
	return fc.aead.Seal(dst, fc.iv[:], pt, fc.aad)
}

// sealInPlace seals a frame laid out in frame: its prefix, n bytes of
// plaintext, and room for the tag (see FrameSealer.SealFrame).
func (fc *frameCrypto) sealInPlace(frame []byte, seq uint32, final bool, n int) {
	kind, prefix := aadFrame, frame[:0]
	if final {
		kind = aadFinalFrame
		prefix = binary.BigEndian.AppendUint32(prefix, finalMarker)
	}
	fc.setup(kind, seq, uint64(n))
	prefix = binary.BigEndian.AppendUint32(prefix, seq)
	prefix = append(prefix, fc.iv[:]...)
	if final {
		prefix = binary.BigEndian.AppendUint32(prefix, uint32(n))
	}
	pt := frame[len(prefix) : len(prefix)+n]
	fc.aead.Seal(pt[:0], fc.iv[:], pt, fc.aad)
}

// open authenticates and decrypts one frame's ciphertext and tag, appending
// the plaintext to dst. On failure nothing is appended.
func (fc *frameCrypto) open(dst []byte, kind string, seq uint32, iv, sealed []byte) ([]byte, bool) {
	fc.setup(kind, seq, uint64(len(sealed)-tagLength))
	if string(iv) != string(fc.iv[:]) {
		return dst, false
	}
	out, err := fc.aead.Open(dst, fc.iv[:], sealed, fc.aad)
	if err != nil {
		return dst, false
	}
	return out, true
}

// frameReader walks the frames of a body from a source, checking structure
// and order. Authentication is the caller's (via frameCrypto.open).
type frameReader struct {
	src         source
	frameLength uint32
	seq         uint32 // the sequence number the next frame must carry
}

type rawFrame struct {
	final  bool
	seq    uint32
	iv     []byte
	sealed []byte // ciphertext || tag
}

func (fr *frameReader) next() (rawFrame, error) {
	head, err := fr.src.next(4)
	if err != nil {
		return rawFrame{}, readFailure(err, StageFrame, "the message ends before its final frame")
	}
	f := rawFrame{seq: binary.BigEndian.Uint32(head)}
	if f.seq == finalMarker {
		f.final = true
		if head, err = fr.src.next(4); err != nil {
			return rawFrame{}, readFailure(err, StageFrame, "the message ends inside its final frame")
		}
		f.seq = binary.BigEndian.Uint32(head)
	}
	if f.seq != fr.seq {
		return rawFrame{}, authFailed(StageFrame, "a frame is out of order")
	}
	if f.iv, err = fr.src.next(ivLength); err != nil {
		return rawFrame{}, readFailure(err, StageFrame, "the message ends inside a frame")
	}
	n := fr.frameLength
	if f.final {
		lb, err := fr.src.next(4)
		if err != nil {
			return rawFrame{}, readFailure(err, StageFrame, "the message ends inside its final frame")
		}
		if n = binary.BigEndian.Uint32(lb); n > fr.frameLength {
			return rawFrame{}, malformed(StageFrame, "the final frame is longer than the frame length")
		}
	} else if fr.seq == maxSeq {
		return rawFrame{}, malformed(StageFrame, "the message has too many frames")
	}
	if f.sealed, err = fr.src.next(int(n) + tagLength); err != nil {
		return rawFrame{}, readFailure(err, StageFrame, "the message ends inside a frame")
	}
	fr.seq++
	return f, nil
}

func (f rawFrame) kind() string {
	if f.final {
		return aadFinalFrame
	}
	return aadFrame
}

// readFailure is the error for a source that gave fewer bytes than a field
// needs: the message is malformed when the source ended, and the source's
// own error (a failed download, say) is returned when it failed, so a
// network error is not reported as a damaged message. A MessageError from
// the source (a limit) is returned as it is.
func readFailure(err error, stage Stage, what string) error {
	var me *MessageError
	switch {
	case errors.As(err, &me):
		return err
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return malformed(stage, what)
	default:
		return fmt.Errorf("phicrypt: reading the message's %s: %w", stage, err)
	}
}
