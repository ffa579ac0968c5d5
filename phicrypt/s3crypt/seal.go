package s3crypt

import (
	"bufio"
	"errors"
	"io"
	"sync"

	"github.com/phicrypt/phicrypt/phicrypt"
)

// sealingReader is a message read as a stream of bytes, made as it is
// read: the transfer manager reads it into its part buffers, and each Read
// lays whole frames straight into the buffer it is given (the plaintext
// read from the source into the place of its ciphertext) and seals them
// there, in place and in parallel. Nothing is copied but the plaintext
// into the part, and a frame that straddles two parts (sealed on the side,
// then handed out in two pieces).
type sealingReader struct {
	src      *bufio.Reader
	fs       *phicrypt.FrameSealer
	frameLen int
	workers  int
	seq      uint32
	plain    int64 // plaintext bytes read so far
	want     int64 // the plaintext length promised, or -1
	pending  []byte
	carry    []byte // one frame sealed on the side
	done     bool   // the final frame is sealed
	footer   bool   // the footer is queued
	err      error
	jobs     []sealJob
}

type sealJob struct {
	frame []byte
	seq   uint32
	final bool
}

func newSealingReader(src io.Reader, fs *phicrypt.FrameSealer, workers int, want int64) *sealingReader {
	fl := fs.FrameLength()
	return &sealingReader{src: bufio.NewReaderSize(src, 64<<10), fs: fs, frameLen: fl, workers: workers, seq: 1, want: want,
		pending: fs.Header()}
}

// maxFrame is the most bytes one frame takes on the wire (a full final frame).
func (r *sealingReader) maxFrame() int {
	return phicrypt.FinalFramePrefix + r.frameLen + phicrypt.FrameTagLength
}

func (r *sealingReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n := 0
	for n < len(p) {
		if len(r.pending) > 0 {
			k := copy(p[n:], r.pending)
			r.pending = r.pending[k:]
			n += k
			continue
		}
		if r.done {
			if !r.footer {
				r.footer = true
				footer, err := r.fs.Footer()
				if err != nil {
					return n, r.fail(err)
				}
				r.pending = footer
				continue
			}
			break
		}
		if len(p)-n >= r.maxFrame() {
			k, err := r.sealInto(p[n:])
			n += k
			if err != nil {
				return n, r.fail(err)
			}
			continue
		}
		// Less room than a frame: seal one on the side.
		if r.carry == nil {
			r.carry = make([]byte, r.maxFrame())
		}
		k, err := r.sealInto(r.carry)
		if err != nil {
			return n, r.fail(err)
		}
		r.pending = r.carry[:k]
	}
	if n == 0 && r.done && r.footer {
		return 0, io.EOF
	}
	return n, nil
}

func (r *sealingReader) fail(err error) error {
	r.err = err
	return err
}

// sealInto lays as many whole frames into buf as fit (at least one: buf
// holds maxFrame bytes), reading their plaintext into place, then seals
// them in parallel and signs them in order. It returns the bytes laid.
func (r *sealingReader) sealInto(buf []byte) (int, error) {
	r.jobs = r.jobs[:0]
	n := 0
	for !r.done && len(buf)-n >= r.maxFrame() {
		slot := buf[n+phicrypt.FramePrefix : n+phicrypt.FramePrefix+r.frameLen]
		k, err := io.ReadFull(r.src, slot)
		final := false
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			final = true
		case err != nil:
			return 0, err
		default:
			if _, perr := r.src.Peek(1); perr == io.EOF {
				final = true
			} else if perr != nil {
				return 0, perr
			}
		}
		r.plain += int64(k)
		size := phicrypt.FramePrefix + k + phicrypt.FrameTagLength
		if final {
			// The final frame's prefix is longer: move its plaintext.
			copy(buf[n+phicrypt.FinalFramePrefix:], buf[n+phicrypt.FramePrefix:n+phicrypt.FramePrefix+k])
			size = phicrypt.FinalFramePrefix + k + phicrypt.FrameTagLength
			r.done = true
			if r.want >= 0 && r.plain != r.want {
				return 0, ErrSizeMismatch
			}
		}
		r.jobs = append(r.jobs, sealJob{frame: buf[n : n+size], seq: r.seq, final: final})
		r.seq++
		n += size
	}
	if r.want >= 0 && r.plain > r.want {
		return 0, ErrSizeMismatch
	}
	if err := r.seal(); err != nil {
		return 0, err
	}
	if r.fs.Signed() {
		r.fs.Sign(buf[:n])
	}
	return n, nil
}

// seal seals the laid-out frames, sharing them among the workers.
func (r *sealingReader) seal() error {
	w := min(r.workers, len(r.jobs))
	if w <= 1 {
		for _, j := range r.jobs {
			if err := r.fs.SealFrame(j.frame, j.seq, j.final); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, w)
	var wg sync.WaitGroup
	for i := range w {
		wg.Go(func() {
			for j := i; j < len(r.jobs); j += w {
				if err := r.fs.SealFrame(r.jobs[j].frame, r.jobs[j].seq, r.jobs[j].final); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
