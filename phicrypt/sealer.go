package phicrypt

import (
	"context"
	"errors"
	"sync"
)

// Frame layout for callers that place frames themselves (FrameSealer): a
// regular frame is FramePrefix bytes (sequence number and IV), FrameLength
// bytes of ciphertext and a FrameTagLength-byte tag; the final frame's
// prefix is FinalFramePrefix bytes (marker, sequence number, IV, length)
// and its ciphertext is 0 to FrameLength bytes.
const (
	FramePrefix      = 4 + ivLength
	FinalFramePrefix = 4 + 4 + ivLength + 4
	FrameTagLength   = tagLength
)

// FrameSealer seals the frames of one message where the caller lays them
// out: in place, in any order, on several goroutines at once. A caller
// that fills a large buffer with a message (an S3 part, say) seals it
// there without copying. Frames must still make a valid body when they are
// put together: numbered from 1, every one but the last regular, the last
// final.
type FrameSealer struct {
	st       encryptState
	s        *sealed
	frameLen int
	crypto   *sync.Pool // *frameCrypto, one per goroutine sealing
}

// NewFrameSealer begins a message under the encryption context ec: its
// data key comes from the keyring (streams bypass the cache, as NewWriter
// does), and its header is ready (Header).
func (e *Encryptor) NewFrameSealer(ctx context.Context, ec map[string]string) (*FrameSealer, error) {
	f := &FrameSealer{frameLen: e.frameLength}
	s, _, err := e.begin(ctx, &f.st, nil, ec, -1)
	if err != nil {
		return nil, err
	}
	f.s = s
	// The cache key (the serialized context behind a prefix) is not needed
	// after the header.
	clear(f.st.key)
	f.st.key = nil
	aead, id := s.frames.aead, s.messageID
	f.crypto = &sync.Pool{New: func() any { return newFrameCrypto(aead, id) }}
	return f, nil
}

// Header returns the message's header, which comes first.
func (f *FrameSealer) Header() []byte { return f.s.header }

// FrameLength is the plaintext bytes of every regular frame.
func (f *FrameSealer) FrameLength() int { return f.frameLen }

// SealFrame seals frame number seq (from 1) in place. frame holds the
// frame's prefix (FramePrefix bytes, or FinalFramePrefix for the final
// frame), its plaintext, and FrameTagLength bytes of room for the tag; the
// prefix and room are overwritten, the plaintext becomes ciphertext. A
// regular frame's plaintext is exactly FrameLength bytes, the final
// frame's at most that. It is safe to call on several goroutines for
// different frames.
func (f *FrameSealer) SealFrame(frame []byte, seq uint32, final bool) error {
	prefix := FramePrefix
	if final {
		prefix = FinalFramePrefix
	}
	n := len(frame) - prefix - tagLength
	switch {
	case seq == 0 || seq > maxSeq:
		return ErrLimit
	case n < 0 || n > f.frameLen || (!final && n != f.frameLen):
		return errors.New("phicrypt: a frame's plaintext is not the frame length (or, for the final frame, longer)")
	}
	fc := f.crypto.Get().(*frameCrypto)
	fc.sealInPlace(frame, seq, final, n)
	f.crypto.Put(fc)
	return nil
}

// Signed reports whether the suite signs the message (0x0578): then every
// frame's bytes must go to Sign, in order, and Footer ends the message.
func (f *FrameSealer) Signed() bool { return f.s.signer != nil }

// Sign feeds sealed frames, in message order, to the signature.
func (f *FrameSealer) Sign(b []byte) {
	if f.s.signer != nil {
		f.s.signer.write(b)
	}
}

// Footer returns the signature footer that ends a signed message, or nil.
func (f *FrameSealer) Footer() ([]byte, error) {
	if f.s.signer == nil {
		return nil, nil
	}
	return f.s.signer.appendFooter(nil)
}
