package phicrypt

import (
	"bufio"
	"context"
	"errors"
	"io"
)

// Reader decrypts a message from a stream. It releases each frame's
// plaintext once that frame authenticates, except the last: the final
// frame is released only once the end of the message has been checked (the
// signature for signed suites, and that nothing follows the message), so a
// Read that returns io.EOF has delivered a whole, authenticated message.
//
// If Read returns an error other than io.EOF, earlier Reads may have
// returned plaintext of authenticated frames of a message that is truncated
// or altered later on: discard it. The bytes of p past what Read returned
// hold no plaintext of a frame that failed.
//
// A Read into a buffer that holds a whole frame decrypts the frame straight
// into it; WriteTo (which io.Copy uses) decrypts each frame in place in the
// Reader's one buffer: both save a copy of the plaintext.
type Reader struct {
	o     *opened
	src   *streamSource
	fr    *frameReader
	plain []byte // plaintext not yet returned, decrypted in place in src.buf
	off   int
	err   error // sticky: io.EOF once the whole message has checked out
}

// NewReader reads and authenticates the header of the message on src and
// returns a Reader for its plaintext. expect lists context pairs the message
// must carry.
func (e *Encryptor) NewReader(ctx context.Context, src io.Reader, expect map[string]string) (*Reader, error) {
	br := bufio.NewReaderSize(src, streamReadBuffer)
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
	if r.off == len(r.plain) {
		if r.err != nil {
			return 0, r.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		n, err := r.nextFrame(p)
		if err != nil {
			r.err = err
			if n == 0 && r.off == len(r.plain) {
				return 0, err
			}
		}
		if n > 0 {
			return n, nil
		}
	}
	n := copy(p, r.plain[r.off:])
	r.off += n
	return n, nil
}

// WriteTo implements io.WriterTo, so that io.Copy decrypts each frame in
// place and writes it out without copying it through a buffer of its own.
// It writes each frame's plaintext once the frame authenticates, and the
// final frame's once the end of the message has checked out (the signature
// included): a nil error means w received the whole, authenticated message.
// On an error w may have received plaintext of the authenticated frames
// before the failure: discard it. If w fails, the Reader keeps what w did
// not take, and a later Read or WriteTo resumes from there.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if rest := r.plain[r.off:]; len(rest) > 0 {
			k, err := w.Write(rest)
			if k < 0 || k > len(rest) {
				k, err = 0, errInvalidWrite
			}
			r.off += k
			total += int64(k)
			if err == nil && k < len(rest) {
				err = io.ErrShortWrite
			}
			if err != nil {
				return total, err
			}
			continue
		}
		if r.err == io.EOF {
			return total, nil
		}
		if r.err != nil {
			return total, r.err
		}
		_, r.err = r.nextFrame(nil)
	}
}

var errInvalidWrite = errors.New("phicrypt: the writer reported an impossible byte count")

// nextFrame reads and authenticates the next frame. Its plaintext goes
// straight into p when it fits there (the count is returned), or else is
// decrypted in place, where r.plain points to it. After the final frame it
// checks the end of the message and returns io.EOF with the frame's
// plaintext, which stays unreleased (and is cleared) if the end does not
// check out. On an error nothing is left in p or r.plain.
func (r *Reader) nextFrame(p []byte) (int, error) {
	r.plain, r.off = nil, 0
	r.src.reset()
	f, err := r.fr.next()
	if err != nil {
		return 0, err
	}
	n, direct := len(f.sealed)-tagLength, false
	var out []byte
	var ok bool
	if n > 0 && n <= len(p) {
		out, ok = r.o.frames.open(p[:0], f.kind(), f.seq, f.iv, f.sealed)
		direct = true
	} else {
		out, ok = r.o.frames.open(f.sealed[:0], f.kind(), f.seq, f.iv, f.sealed)
	}
	if !ok {
		clear(out[:n]) // AES-GCM clears it already; this does not rely on that
		return 0, authFailed(StageFrame, "a frame does not authenticate")
	}
	if f.final {
		if err := r.finish(); err != nil {
			clear(out)
			return 0, err
		}
		err = io.EOF
	}
	if direct {
		return n, err
	}
	r.plain = out
	return 0, err
}

// finish checks what follows the final frame: the signature, then the end of
// the stream. The footer is read after the final frame in the buffer, which
// may hold the frame's plaintext.
func (r *Reader) finish() error {
	r.src.hash = nil
	if r.o.verifier != nil {
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

// streamReadBuffer is the size of the buffered reader under a Reader. It is
// small on purpose: it serves the header's fields and each frame's first
// bytes, while the rest of a frame, a larger read, goes from the source
// straight into the frame buffer instead of being copied through it.
const streamReadBuffer = 4 << 10

// streamSource reads a message body frame by frame into one reusable buffer
// sized for the largest frame and the footer after it, optionally hashing
// what it reads.
type streamSource struct {
	r    *bufio.Reader
	buf  []byte
	hash *verifier
}

func (s *streamSource) reset() { s.buf = s.buf[:0] }

// streamBufferSize holds the largest frame and the footer that may follow
// it.
func streamBufferSize(frameLength uint32) int {
	return int(frameLength) + finalFrameOverhead + 2 + maxSignatureLength
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
