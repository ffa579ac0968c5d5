package phicrypt

import (
	"slices"
	"sync"
	"sync/atomic"
)

// In-memory encryption with Workers > 1: the whole body's size is known
// before the first frame is sealed, so every frame's place in dst is known
// too, and the goroutines seal frames straight into their places. The
// output is byte for byte what one goroutine writes.

const (
	// parallelBatchBytes is the plaintext a goroutine takes at a time
	// (at least one frame): large enough that taking it costs nothing
	// beside sealing it (about 30 µs of AES-GCM), small enough that a
	// goroutine started late, or slowed by a busy machine, still finds
	// batches left (goroutines take them from a shared counter, so the
	// fast ones seal more).
	parallelBatchBytes = 128 << 10
	// minParallelBytes is the plaintext below which EncryptAppend seals on
	// the calling goroutine alone. Starting a goroutine and waking a core
	// for it takes some microseconds; 1 MiB takes about 250 µs to seal on
	// one core here. BenchmarkSealBodyParallelSpeedup measures it: from
	// 0.97x (a machine with no core to spare) to 1.3-1.6x at 2-4 MiB.
	minParallelBytes = 1 << 20
)

// sealBody appends the body of plaintext, n regular frames and the final
// frame, to dst: on the calling goroutine, or on up to Workers goroutines
// when the plaintext is large enough to pay for them.
func (e *Encryptor) sealBody(s *sealed, dst, plaintext []byte, n int) []byte {
	if e.sealsInParallel(len(plaintext), n) {
		return e.sealBodyParallel(s, dst, plaintext, n)
	}
	seq := uint32(1)
	for ; int(seq) <= n; seq++ {
		off := int(seq-1) * e.frameLength
		dst = s.frames.seal(dst, seq, false, plaintext[off:off+e.frameLength])
	}
	return s.frames.seal(dst, seq, true, plaintext[n*e.frameLength:])
}

// sealsInParallel reports whether EncryptAppend seals a plaintext of size
// bytes, in n regular frames and the final one, on several goroutines: it
// must be large enough, and make two batches at least.
func (e *Encryptor) sealsInParallel(size, n int) bool {
	return e.workers > 1 && size >= minParallelBytes && e.batches(n) > 1
}

// batchFrames is the number of frames a goroutine takes at a time.
func (e *Encryptor) batchFrames() int { return max(1, parallelBatchBytes/e.frameLength) }

// batches is the number of batches of n regular frames and the final one.
func (e *Encryptor) batches(n int) int {
	per := e.batchFrames()
	return (n + 1 + per - 1) / per
}

// sealBodyParallel appends the body of n regular frames and the final frame
// of plaintext to dst, sealed on up to Workers goroutines (the calling one
// among them), and returns it once every frame is sealed. Every frame's
// place in dst is known from its number; the goroutines write only into
// their own frames.
func (e *Encryptor) sealBodyParallel(s *sealed, dst, plaintext []byte, n int) []byte {
	fl := e.frameLength
	start := len(dst)
	finalLen := len(plaintext) - n*fl
	bodyLen := n*(fl+regularFrameOverhead) + finalFrameOverhead + finalLen
	dst = slices.Grow(dst, bodyLen) // begin has sized it: a check
	body := dst[start : start+bodyLen]
	perBatch, batches := e.batchFrames(), e.batches(n)
	var next atomic.Int64
	work := func(fc *frameCrypto) {
		for {
			b := int(next.Add(1) - 1)
			if b >= batches {
				return
			}
			for i := b * perBatch; i < min((b+1)*perBatch, n+1); i++ {
				sealFrameAt(fc, body, plaintext, i, n, fl)
			}
		}
	}
	goroutines := min(e.workers, batches)
	aead, messageID := s.frames.aead, s.messageID
	var wg sync.WaitGroup
	// Deferred: the goroutines read dst and plaintext, so none may outlive
	// the call, even one that panics.
	defer wg.Wait()
	for range goroutines - 1 {
		wg.Go(func() { work(newFrameCrypto(aead, messageID)) })
	}
	work(s.frames)
	wg.Wait()
	return dst[:start+bodyLen]
}

// sealFrameAt seals frame i (0-based; frame n is the final one) into its
// place in body.
func sealFrameAt(fc *frameCrypto, body, plaintext []byte, i, n, fl int) {
	at := i * (fl + regularFrameOverhead)
	pt := plaintext[i*fl:]
	size := fl + regularFrameOverhead
	if i == n {
		size = finalFrameOverhead + len(pt)
	} else {
		pt = pt[:fl]
	}
	out := fc.seal(body[at:at:at+size], uint32(i+1), i == n, pt)
	if len(out) != size { // the three-index slice kept Seal from writing past it
		panic("phicrypt: a frame was sealed to an unexpected size")
	}
}
