package phicrypt

import (
	"context"
	"io"
	"sync"
)

// NewWriter returns a WriteCloser that encrypts what is written to it into a
// message on dst, under the encryption context ec. Close writes the final
// frame (and the signature) and must be called; it does not close dst.
// Memory use is bounded whatever the message size: two frames with one
// worker; with Workers > 1 (frames sealed in parallel, output identical in
// layout), two batches of up to max(Workers, min(16·Workers, 4 MiB/frame
// length)) frames.
func (e *Encryptor) NewWriter(ctx context.Context, dst io.Writer, ec map[string]string) (io.WriteCloser, error) {
	s, header, err := e.begin(ctx, new(encryptState), nil, ec, -1) // the stream keeps its state
	if err != nil {
		return nil, err
	}
	w := &writer{dst: dst, s: s, frameLen: e.frameLength, seq: 1, workers: e.workers, batchSize: 1, bufs: e.frames}
	if e.workers > 1 {
		// Several frames per worker per batch amortise the hand-off, up to
		// maxBatchBytes of plaintext.
		w.batchSize = max(e.workers, min(e.workers*framesPerWorker, maxBatchBytes/e.frameLength))
	}
	// Buffers are allocated when first used: a writer fed whole frames
	// seals straight from the caller's slices.
	w.pending = make([][]byte, w.batchSize+1)
	w.crypto = []*frameCrypto{s.frames}
	for range e.workers - 1 {
		w.crypto = append(w.crypto, newFrameCrypto(s.frames.aead, s.messageID))
	}
	w.batch = make([][]byte, w.batchSize)
	w.sealed = make([][]byte, w.batchSize)
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
	// batchSize frames are sealed together.
	batchSize int
	// pending holds whole frames waiting to be sealed, then the frame being
	// filled (pending[full]). A full frame is sealed only once more
	// plaintext arrives, since the last frame of a message is the final
	// frame and is sealed differently.
	pending [][]byte
	full    int
	crypto  []*frameCrypto // one per worker; they share the AEAD
	sealed  [][]byte       // one output buffer per worker
	batch   [][]byte       // frames being sealed together
	bufs    *framePool
	err     error
	closed  bool
}

// framesPerWorker is how many frames each worker seals per batch, and
// maxBatchBytes bounds a batch's plaintext (and so the writer's memory:
// about two batches, plaintext and sealed).
const (
	framesPerWorker = 16
	maxBatchBytes   = 4 << 20
)

func (w *writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		// With nothing buffered, seal whole frames straight from p, as
		// long as more plaintext follows them.
		if w.full == 0 && len(w.pending[0]) == 0 && len(p) > w.frameLen {
			k := min(w.batchSize, (len(p)-1)/w.frameLen)
			for i := range k {
				w.batch[i] = p[i*w.frameLen : (i+1)*w.frameLen]
			}
			if w.err = w.seal(w.batch[:k]); w.err != nil {
				return n, w.err
			}
			p, n = p[k*w.frameLen:], n+k*w.frameLen
			continue
		}
		cur := w.pending[w.full]
		if len(cur) == w.frameLen {
			// More plaintext follows, so this frame is not the final one.
			// Seal the buffered frames once a batch is complete, or at once
			// when p holds whole frames, which can then be sealed without
			// copying.
			w.full++
			if w.full == w.batchSize || len(p) > w.frameLen {
				if w.err = w.flush(w.full); w.err != nil {
					return n, w.err
				}
			}
			continue
		}
		if cur == nil {
			cur = w.bufs.get()
		}
		k := copy(cur[len(cur):w.frameLen], p)
		w.pending[w.full] = cur[:len(cur)+k]
		p, n = p[k:], n+k
	}
	return n, nil
}

// seal seals frames as consecutive regular frames, in parallel when there
// are several, and writes them in order.
func (w *writer) seal(frames [][]byte) error {
	k := len(frames)
	if uint64(w.seq)+uint64(k) > maxSeq {
		return ErrLimit
	}
	if k > 1 && w.workers > 1 {
		var wg sync.WaitGroup
		for i := 1; i < min(w.workers, k); i++ {
			wg.Go(func() { w.sealShare(i, frames) })
		}
		w.sealShare(0, frames)
		wg.Wait()
	} else {
		w.sealShare(0, frames)
	}
	w.seq += uint32(k)
	for i := range k {
		if err := w.emit(w.sealed[i]); err != nil {
			return err
		}
	}
	return nil
}

// sealShare is worker i's share of a batch: frames i, i+workers,
// i+2·workers, ... (the calling goroutine is worker 0).
func (w *writer) sealShare(i int, frames [][]byte) {
	for j := i; j < len(frames); j += w.workers {
		if w.sealed[j] == nil {
			w.sealed[j] = w.bufs.get()
		}
		w.sealed[j] = w.crypto[i].seal(w.sealed[j][:0], w.seq+uint32(j), false, frames[j])
	}
}

// flush seals the first k pending frames and moves the frame being filled
// to the front.
func (w *writer) flush(k int) error {
	if err := w.seal(w.pending[:k]); err != nil {
		return err
	}
	// Rotate: the sealed buffers go to the back, the rest move forward.
	copy(w.batch, w.pending[:k])
	copy(w.pending, w.pending[k:])
	for i := range k {
		w.pending[len(w.pending)-k+i] = w.batch[i][:0]
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
	if w.sealed[0] == nil {
		w.sealed[0] = w.bufs.get()
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
	w.recycle()
	return nil
}

// recycle clears the plaintext buffers and returns every buffer to the
// Encryptor's pool.
func (w *writer) recycle() {
	for i, b := range w.pending {
		if b != nil {
			clear(b[:cap(b)])
			w.bufs.put(b)
			w.pending[i] = nil
		}
	}
	for i, b := range w.sealed {
		if b != nil {
			w.bufs.put(b)
			w.sealed[i] = nil
		}
	}
}

// framePool recycles frame-sized buffers between an Encryptor's writers, so a
// stream does not start by faulting in fresh pages for its batches.
type framePool struct {
	size int
	pool sync.Pool
}

func (p *framePool) get() []byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, p.size)
}

func (p *framePool) put(b []byte) {
	if cap(b) >= p.size {
		p.pool.Put(&b)
	}
}
