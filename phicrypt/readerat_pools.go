package phicrypt

import (
	"bufio"
	"io"
	"math/bits"
	"sync"
)

// readerAtPools recycles, within one Encryptor, what NewReaderAt and
// ReadAt need only for the length of a call, so that opening a ReaderAt
// for one ranged read neither allocates nor faults in a frame buffer of
// its own. What goes back is cleared first: no plaintext, no AEAD, no
// source stays pooled.
type readerAtPools struct {
	// scratches holds *rangeScratch, one pool per size class: a frame
	// length rounded up to a power of two, up to maxFrameLengthLimit
	// (a reader accepts any frame length up to MaxFrameLength, not only
	// the Encryptor's own).
	scratches [31]sync.Pool
	// messageReaders holds the *bufio.Reader through which NewReaderAt
	// reads a header (and, for signed suites, the whole message once).
	messageReaders sync.Pool
}

// messageReaderSize is the buffer of the readers in messageReaders.
const messageReaderSize = 16 << 10

func (p *readerAtPools) getMessageReader(src io.Reader) *bufio.Reader {
	br, ok := p.messageReaders.Get().(*bufio.Reader)
	if !ok {
		return bufio.NewReaderSize(src, messageReaderSize)
	}
	br.Reset(src)
	return br
}

func (p *readerAtPools) putMessageReader(br *bufio.Reader) {
	br.Reset(nil)
	p.messageReaders.Put(br)
}

func (r *ReaderAt) getScratch() *rangeScratch {
	class := bits.Len64(uint64(r.frameLen - 1))
	sc, ok := r.pools.scratches[class].Get().(*rangeScratch)
	if !ok {
		sc = &rangeScratch{class: class, buf: make([]byte, 0, streamBufferSize(1<<class))}
	}
	sc.fc.init(r.o.aead, r.o.h.messageID)
	return sc
}

// putScratch clears what sc may hold of a message and returns it to its
// pool.
func (r *ReaderAt) putScratch(sc *rangeScratch) {
	clear(sc.buf[:sc.dirty])
	sc.dirty = 0
	sc.fc.init(nil, nil)
	sc.src = sliceSource{}
	r.pools.scratches[sc.class].Put(sc)
}
