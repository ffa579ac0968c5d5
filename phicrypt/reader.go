package phicrypt

import (
	"bufio"
	"context"
	"io"
)

// Reader decrypts a message from a stream. It releases each frame's
// plaintext once that frame authenticates, except the last: the final
// frame is held back until the end of the message has been checked (the
// signature for signed suites, and that nothing follows the message), so a
// Read that returns io.EOF has delivered a whole, authenticated message.
//
// If Read returns an error other than io.EOF, earlier Reads may have
// returned plaintext of authenticated frames of a message that is truncated
// or altered later on: discard it.
type Reader struct {
	o     *opened
	src   *streamSource
	fr    *frameReader
	plain []byte // plaintext not yet returned
	off   int
	held  []byte // the final frame's plaintext, until the end checks out
	ended bool   // the end of the message has checked out; held is ready
	err   error
}

// NewReader reads and authenticates the header of the message on src and
// returns a Reader for its plaintext. expect lists context pairs the message
// must carry.
func (e *Encryptor) NewReader(ctx context.Context, src io.Reader, expect map[string]string) (*Reader, error) {
	br := bufio.NewReaderSize(src, 64<<10)
	hs := &headerSource{r: br, limit: e.lim.maxHeaderBytes}
	h, raw, err := parseHeader(hs, &e.lim)
	if err != nil {
		return nil, err
	}
	if !h.framed {
		return nil, malformed(StageFrame, "streaming a non-framed (legacy) message is not supported; use Decrypt")
	}
	o, err := e.open(ctx, h, raw, expect)
	if err != nil {
		return nil, err
	}
	ss := &streamSource{r: br, buf: make([]byte, 0, streamBufferSize(h.frameLength))}
	if o.verifier != nil {
		ss.hash = o.verifier
	}
	return &Reader{o: o, src: ss, fr: &frameReader{src: ss, frameLength: h.frameLength, seq: 1}}, nil
}

// EncryptionContext returns the message's encryption context.
func (r *Reader) EncryptionContext() map[string]string { return r.o.publicContext() }

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	for r.off == len(r.plain) {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.nextFrame()
	}
	n := copy(p, r.plain[r.off:])
	r.off += n
	return n, nil
}

// nextFrame decrypts one frame into r.plain, or finishes the message.
func (r *Reader) nextFrame() error {
	if r.ended {
		r.plain, r.off, r.held = r.held, 0, nil
		return io.EOF
	}
	r.src.reset()
	f, err := r.fr.next()
	if err != nil {
		return err
	}
	out, ok := r.o.frames.open(r.plain[:0], f.kind(), f.seq, f.iv, f.sealed)
	if !ok {
		return authFailed(StageFrame, "a frame does not authenticate")
	}
	r.plain, r.off = out, 0
	if !f.final {
		return nil
	}
	if err := r.finish(); err != nil {
		clear(out)
		r.plain = r.plain[:0]
		return err
	}
	// Release the final frame now that the end has checked out.
	r.held, r.plain, r.ended = r.plain, nil, true
	return nil
}

// finish checks what follows the final frame: the signature, then the end of
// the stream.
func (r *Reader) finish() error {
	r.src.hash = nil
	if r.o.verifier != nil {
		r.src.reset()
		if err := r.o.checkFooter(r.src); err != nil {
			return err
		}
	}
	if _, err := r.src.r.ReadByte(); err != io.EOF {
		if err == nil {
			return malformed(StageFrame, "trailing bytes follow the message")
		}
		return err
	}
	return nil
}

// streamSource reads a message body frame by frame into one reusable buffer
// sized for the largest frame, optionally hashing what it reads.
type streamSource struct {
	r    *bufio.Reader
	buf  []byte
	hash *verifier
}

func (s *streamSource) reset() { s.buf = s.buf[:0] }

// streamBufferSize holds the largest frame, or the footer, whichever is
// larger (frames may be shorter than a signature).
func streamBufferSize(frameLength uint32) int {
	return max(int(frameLength)+finalFrameOverhead, 2+maxSignatureLength)
}

func (s *streamSource) next(n int) ([]byte, error) {
	if n < 0 || n > cap(s.buf)-len(s.buf) {
		return nil, malformed(StageFrame, "a frame is larger than its header allows")
	}
	start := len(s.buf)
	s.buf = s.buf[:start+n]
	if _, err := io.ReadFull(s.r, s.buf[start:]); err != nil {
		s.buf = s.buf[:start]
		return nil, err
	}
	if s.hash != nil {
		s.hash.write(s.buf[start:])
	}
	return s.buf[start:], nil
}
