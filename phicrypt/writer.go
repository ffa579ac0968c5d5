package phicrypt

import (
	"context"
	"io"
	"runtime"
	"sync"
	"time"
)

// NewWriter returns a WriteCloser that encrypts what is written to it into a
// message on dst, under the encryption context ec. Close writes the final
// frame (and the signature) and must be called; it does not close dst.
// Memory use is bounded whatever the message size: two frames with one
// worker; with Workers > 1 (frames sealed in parallel, output identical in
// layout), up to max(Workers, min(16·Workers, 4 MiB/frame length)) frames of
// buffered plaintext and 4·Workers (at most as many) sealed frames waiting
// to be written. The other Workers-1 goroutines start with the first
// frames sealed in parallel and stop at Close (or when a writer dropped
// without Close is collected); between writes they poll for about 100 µs
// before they sleep.
func (e *Encryptor) NewWriter(ctx context.Context, dst io.Writer, ec map[string]string) (io.WriteCloser, error) {
	s, header, err := e.begin(ctx, new(encryptState), nil, ec, -1) // the stream keeps its state
	if err != nil {
		return nil, err
	}
	w := &writer{dst: dst, s: s, frameLen: e.frameLength, seq: 1, workers: e.workers, batchSize: 1, bufs: e.frames}
	if e.workers > 1 {
		// Several frames per worker in flight keep every worker busy while
		// the frames are written in order, up to maxBatchBytes of them.
		w.batchSize = max(e.workers, min(e.workers*framesPerWorker, maxBatchBytes/e.frameLength))
	}
	// Buffers are allocated when first used: a writer fed whole frames
	// seals straight from the caller's slices.
	w.pending = make([][]byte, w.batchSize+1)
	w.crypto = []*frameCrypto{s.frames}
	for range e.workers - 1 {
		w.crypto = append(w.crypto, newFrameCrypto(s.frames.aead, s.messageID))
	}
	w.slots = make([]sealSlot, min(w.batchSize, slotsPerWorker*e.workers))
	for i := range w.slots {
		w.slots[i].done = make(chan struct{}, 1)
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
	// batchSize is the number of whole frames buffered before they are
	// sealed, and of sealed frames in flight.
	batchSize int
	// pending[:full] are whole frames waiting to be sealed; pending[full]
	// is the frame being filled, never whole. Whole frames are sealed only
	// once more plaintext arrives, since the last frame of a message is the
	// final frame and is sealed differently. When full == batchSize, the
	// frame being filled is empty.
	pending [][]byte
	full    int
	crypto  []*frameCrypto // one per worker; they share the AEAD
	slots   []sealSlot     // sealed frames in flight, frame i in slots[i % len]
	frames  frameList      // the frames being sealed (a field, so as not to escape per call)
	// runs hands each parallel run to the other workers, once started;
	// stopWorkers closes them when the writer is collected without Close.
	runs        []chan *sealRun
	stopWorkers runtime.Cleanup
	bufs        *framePool
	err         error
	closed      bool
}

// sealSlot holds one sealed frame until it is written; done carries one
// token from the worker that sealed it to the writing goroutine.
type sealSlot struct {
	out  []byte
	done chan struct{}
}

// framesPerWorker is how many frames each worker has in flight, and
// maxBatchBytes bounds the frames buffered or in flight (and so the
// writer's memory: about two windows, plaintext and sealed).
const (
	framesPerWorker = 16
	maxBatchBytes   = 4 << 20
	// slotsPerWorker is how many sealed frames per worker may wait to be
	// written: enough that no worker waits for the writing of another's
	// frame, few enough that they stay in cache.
	slotsPerWorker = 4
)

func (w *writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	n := len(p)
	// Top up the frame being filled.
	if cur := w.pending[w.full]; len(cur) > 0 {
		k := copy(cur[len(cur):w.frameLen], p)
		w.pending[w.full], p = cur[:len(cur)+k], p[k:]
		if len(cur)+k == w.frameLen {
			w.full++
		}
	}
	if len(p) == 0 {
		return n, nil
	}
	// More plaintext follows the buffered whole frames, so none of them is
	// the final frame. Seal them together with p's whole frames but its
	// last (which may be final) straight from p, in one run; or, when p
	// holds no more than a frame, only once the buffer is full.
	if m := (len(p) - 1) / w.frameLen; m > 0 || w.full == w.batchSize {
		w.frames = frameList{list: w.pending[:w.full], flat: p[:m*w.frameLen], size: w.frameLen}
		w.err = w.seal(&w.frames)
		w.frames = frameList{} // p is the caller's again
		if w.err != nil {
			return 0, w.err
		}
		for i := range w.full {
			w.pending[i] = w.pending[i][:0]
		}
		w.full, p = 0, p[m*w.frameLen:]
	}
	// What is left (1 to frameLen bytes) starts the frame being filled,
	// which is empty here.
	cur := w.pending[w.full]
	if cur == nil {
		cur = w.bufs.get()
	}
	w.pending[w.full] = cur[:copy(cur[:w.frameLen], p)]
	if len(p) == w.frameLen {
		w.full++
	}
	return n, nil
}

// frameList is a run of whole frames to seal: buffered ones (list), then
// those of a caller's slice (flat, a multiple of size long).
type frameList struct {
	list [][]byte
	flat []byte
	size int
}

func (f *frameList) len() int { return len(f.list) + len(f.flat)/f.size }

func (f *frameList) frame(i int) []byte {
	if i < len(f.list) {
		return f.list[i]
	}
	i -= len(f.list)
	return f.flat[i*f.size : (i+1)*f.size]
}

// seal seals frames as consecutive regular frames and writes them in order.
func (w *writer) seal(frames *frameList) error {
	k := frames.len()
	if k == 0 {
		return nil
	}
	if uint64(w.seq)+uint64(k) > maxSeq {
		return ErrLimit
	}
	var err error
	if k > 1 && w.workers > 1 {
		err = w.sealParallel(frames, k)
	} else {
		for i := 0; i < k && err == nil; i++ {
			err = w.emit(w.sealInto(0, w.crypto[0], w.seq+uint32(i), frames.frame(i)))
		}
	}
	w.seq += uint32(k)
	return err
}

// sealInto seals one regular frame into slot i's buffer.
func (w *writer) sealInto(i int, fc *frameCrypto, seq uint32, pt []byte) []byte {
	return sealIntoSlot(&w.slots[i], w.bufs, fc, seq, pt)
}

func sealIntoSlot(sl *sealSlot, bufs *framePool, fc *frameCrypto, seq uint32, pt []byte) []byte {
	if sl.out == nil {
		sl.out = bufs.get()
	}
	sl.out = fc.seal(sl.out[:0], seq, false, pt)
	return sl.out
}

// sealParallel seals k frames with up to Workers goroutines, the calling
// one among them, and writes each as soon as it and those before it are
// sealed, so that writing overlaps sealing. Workers take frames one at a
// time from a queue (whoever is free takes the next), and at most
// len(w.slots) frames are sealed and not yet written. The other workers
// are the writer's own (startWorkers); a run is over, and the caller's
// plaintext no longer read, once every frame is written.
func (w *writer) sealParallel(frames *frameList, k int) error {
	window := len(w.slots)
	if w.runs == nil {
		w.startWorkers()
	}
	jobs := make(chan int, window)
	r := &sealRun{jobs: jobs, frames: *frames, slots: w.slots, bufs: w.bufs, seq: w.seq}
	for _, runs := range w.runs[:min(len(w.runs), k-1)] {
		select {
		case runs <- r:
		default: // a worker far behind skips the run; the others seal it
		}
	}
	var err error
	// next frames have been queued, written of them have been written;
	// after a write fails, the queued frames are still waited for (they
	// read the plaintext and the slots) and none is written or queued.
	next, written, limit, closed := 0, 0, k, false
	write := func() {
		if err == nil {
			if err = w.emit(w.slots[written%window].out); err != nil {
				limit = next
			}
		}
		written++
	}
	for written < next || next < limit {
		// Write the frames sealed so far, in order, then queue more for
		// the workers to take up to the window.
		for written < next && tryRecv(w.slots[written%window].done) {
			write()
		}
		for ; next < limit && next-written < window; next++ {
			jobs <- next // never blocks: at most window are queued
		}
		if next == limit && !closed {
			// Every frame is queued: a worker finding the queue empty is
			// done with the run, and waits for the next one, rather than
			// for this one's end.
			close(jobs)
			closed = true
		}
		// Seal a queued frame, if any; otherwise wait for the next frame
		// to write, which another worker is sealing.
		select {
		case i, ok := <-jobs:
			if ok {
				w.sealInto(i%window, w.crypto[0], w.seq+uint32(i), frames.frame(i))
				w.slots[i%window].done <- struct{}{}
				continue
			}
		default:
		}
		if written < next {
			<-w.slots[written%window].done
			write()
		}
	}
	if !closed {
		close(jobs)
	}
	return err
}

// sealRun is one sealParallel call as the other workers see it. It holds
// nothing of the writer itself, so that a writer dropped without Close can
// be collected, and its workers stopped.
type sealRun struct {
	jobs   chan int
	frames frameList
	slots  []sealSlot
	bufs   *framePool
	seq    uint32
}

// startWorkers starts the writer's other Workers-1 workers. Close stops
// them; so does the collection of a writer dropped without Close.
func (w *writer) startWorkers() {
	w.runs = make([]chan *sealRun, w.workers-1)
	for h := range w.runs {
		w.runs[h] = make(chan *sealRun, 4)
		go sealWorker(w.runs[h], w.crypto[h+1])
	}
	w.stopWorkers = runtime.AddCleanup(w, closeAll, w.runs)
}

func closeAll(runs []chan *sealRun) {
	for _, c := range runs {
		close(c)
	}
}

// sealWorker seals the frames it takes from each run's queue until runs is
// closed.
func sealWorker(runs <-chan *sealRun, fc *frameCrypto) {
	for {
		r, ok := spinRecv(runs)
		if !ok {
			return
		}
		window := len(r.slots)
		for i := range r.jobs {
			sealIntoSlot(&r.slots[i%window], r.bufs, fc, r.seq+uint32(i), r.frames.frame(i))
			r.slots[i%window].done <- struct{}{}
		}
	}
}

// workerSpin is how long a worker polls for its next run before it sleeps.
// Waking a sleeping goroutine costs a thread wake-up, tens of microseconds
// (about 90 here, on a virtual machine) where a frame takes about ten to
// seal, and the woken goroutine waits in the waker's run queue meanwhile:
// a writer fed back-to-back writes would pay it at every Write. Within a
// run, a worker finding the queue empty sleeps: polling there only takes
// time from the goroutine about to fill it when cores are scarce.
const workerSpin = 100 * time.Microsecond

// spinRecv receives from c, polling for up to workerSpin before blocking.
func spinRecv[T any](c <-chan T) (T, bool) {
	for deadline := time.Now().Add(workerSpin); ; {
		select {
		case v, ok := <-c:
			return v, ok
		default:
		}
		if !time.Now().Before(deadline) {
			v, ok := <-c
			return v, ok
		}
		runtime.Gosched()
	}
}

// tryRecv takes a token from c if one is there.
func tryRecv(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
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
	defer w.stop()
	if w.err != nil {
		return w.err
	}
	// An empty frame being filled after whole ones means the message ends
	// on a frame boundary: the last whole frame becomes the final frame.
	last := w.full
	if len(w.pending[last]) == 0 && last > 0 {
		last--
	}
	w.frames = frameList{list: w.pending[:last], size: w.frameLen}
	if w.err = w.seal(&w.frames); w.err != nil {
		return w.err
	}
	if w.seq > maxSeq {
		w.err = ErrLimit
		return w.err
	}
	if w.slots[0].out == nil {
		w.slots[0].out = w.bufs.get()
	}
	out := w.s.frames.seal(w.slots[0].out[:0], w.seq, true, w.pending[last])
	w.slots[0].out = out
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

// stop ends the other workers, if any were started.
func (w *writer) stop() {
	if w.runs != nil {
		w.stopWorkers.Stop()
		closeAll(w.runs)
		w.runs = nil
	}
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
	for i := range w.slots {
		if b := w.slots[i].out; b != nil {
			w.bufs.put(b)
			w.slots[i].out = nil
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
