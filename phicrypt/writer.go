package phicrypt

import (
	"context"
	"io"
	"sync"
)

// NewWriter returns a WriteCloser that encrypts what is written to it into a
// message on dst, under the encryption context ec. Close writes the final
// frame (and the signature) and must be called; it does not close dst.
// Memory use is about Workers+1 frames whatever the message size. With
// Workers > 1, frames are sealed in parallel; the output is identical in
// layout to a single worker's.
func (e *Encryptor) NewWriter(ctx context.Context, dst io.Writer, ec map[string]string) (io.WriteCloser, error) {
	s, header, err := e.begin(ctx, nil, ec)
	if err != nil {
		return nil, err
	}
	w := &writer{dst: dst, s: s, frameLen: e.frameLength, seq: 1, workers: e.workers}
	w.pending = make([][]byte, e.workers+1)
	for i := range w.pending {
		w.pending[i] = make([]byte, 0, e.frameLength)
	}
	w.crypto = []*frameCrypto{s.frames}
	for range e.workers - 1 {
		w.crypto = append(w.crypto, newFrameCrypto(s.frames.aead, s.messageID))
	}
	w.sealed = make([][]byte, e.workers)
	for i := range w.sealed {
		w.sealed[i] = make([]byte, 0, e.frameLength+finalFrameOverhead)
	}
	// begin has already fed the header to the signer.
	if _, err := dst.Write(header); err != nil {
		return nil, err
	}
	return w, nil
}

type writer struct {
	dst      io.Writer
	s        *sealed
	frameLen int
	seq      uint32
	workers  int
	// pending holds whole frames waiting to be sealed, then the frame being
	// filled (pending[full]). A full frame is sealed only once more
	// plaintext arrives, since the last frame of a message is the final
	// frame and is sealed differently.
	pending [][]byte
	full    int
	crypto  []*frameCrypto // one per worker; they share the AEAD
	sealed  [][]byte       // one output buffer per worker
	err     error
	closed  bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		// With nothing buffered and one worker, seal straight from p.
		if w.workers == 1 && w.full == 0 && len(w.pending[0]) == 0 && len(p) > w.frameLen {
			if w.err = w.sealOne(p[:w.frameLen]); w.err != nil {
				return n, w.err
			}
			p, n = p[w.frameLen:], n+w.frameLen
			continue
		}
		cur := w.pending[w.full]
		if len(cur) == w.frameLen {
			if w.full == w.workers {
				if w.err = w.flush(w.workers); w.err != nil {
					return n, w.err
				}
				continue
			}
			w.full++
			continue
		}
		k := copy(cur[len(cur):w.frameLen], p)
		w.pending[w.full] = cur[:len(cur)+k]
		p, n = p[k:], n+k
	}
	return n, nil
}

// sealOne seals one regular frame from pt and writes it.
func (w *writer) sealOne(pt []byte) error {
	if w.seq >= maxSeq {
		return ErrLimit
	}
	out := w.s.frames.seal(w.sealed[0][:0], w.seq, false, pt)
	w.sealed[0] = out
	w.seq++
	return w.emit(out)
}

// flush seals the first k pending frames as regular frames, in parallel
// when there are several, writes them in order, and moves the frame being
// filled to the front.
func (w *writer) flush(k int) error {
	if uint64(w.seq)+uint64(k) > maxSeq {
		return ErrLimit
	}
	if k == 1 {
		w.sealed[0] = w.crypto[0].seal(w.sealed[0][:0], w.seq, false, w.pending[0])
	} else {
		var wg sync.WaitGroup
		for i := range k {
			wg.Go(func() {
				w.sealed[i] = w.crypto[i].seal(w.sealed[i][:0], w.seq+uint32(i), false, w.pending[i])
			})
		}
		wg.Wait()
	}
	w.seq += uint32(k)
	for i := range k {
		if err := w.emit(w.sealed[i]); err != nil {
			return err
		}
	}
	// Rotate: the sealed buffers go to the back, the rest move forward.
	done := append([][]byte(nil), w.pending[:k]...)
	copy(w.pending, w.pending[k:])
	for i, b := range done {
		w.pending[len(w.pending)-k+i] = b[:0]
	}
	w.full -= k
	return nil
}

func (w *writer) emit(b []byte) error {
	if w.s.signer != nil {
		w.s.signer.write(b)
	}
	_, err := w.dst.Write(b)
	return err
}

// Close seals what remains: any whole frames, then the final frame, which
// holds the last (possibly empty, possibly full) stretch of plaintext.
func (w *writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	// Buffered frames: pending[0..full) are whole; pending[full] is the
	// frame being filled. An empty frame being filled after whole ones
	// means the message ends on a frame boundary: the last whole frame
	// becomes the final frame.
	last := w.full
	if len(w.pending[last]) == 0 && last > 0 {
		last--
	}
	if last > 0 {
		if w.err = w.flush(last); w.err != nil {
			return w.err
		}
	}
	if w.seq > maxSeq {
		w.err = ErrLimit
		return w.err
	}
	out := w.s.frames.seal(w.sealed[0][:0], w.seq, true, w.pending[0])
	if w.err = w.emit(out); w.err != nil {
		return w.err
	}
	if w.s.signer != nil {
		footer, err := w.s.signer.appendFooter(nil)
		if err != nil {
			w.err = err
			return err
		}
		if _, w.err = w.dst.Write(footer); w.err != nil {
			return w.err
		}
	}
	for _, b := range w.pending {
		clear(b[:cap(b)])
	}
	return nil
}
