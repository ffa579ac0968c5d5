package phicrypt

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"sync"
)

// ReaderAt reads byte ranges of a message's plaintext. Opening it
// authenticates the header; each ReadAt then reads and authenticates only
// the frames its range touches, so a read of a few bytes of a large object
// costs one frame. It is safe for concurrent use.
//
// For signed suites the signature covers the whole message, so opening reads
// the whole message once to verify it (memory stays bounded); later reads
// touch only their frames. The source must not change while the ReaderAt is
// in use: later reads are protected by each frame's tag, which anyone
// holding the data key could forge, not by the signature.
type ReaderAt struct {
	o         *opened
	src       io.ReaderAt
	headerLen int64
	frameLen  int64
	regular   int64 // number of regular frames
	finalLen  int64 // plaintext bytes in the final frame
	size      int64
	scratch   sync.Pool
}

// NewReaderAt opens the message of size bytes in src. expect lists context
// pairs the message must carry.
func (e *Encryptor) NewReaderAt(ctx context.Context, src io.ReaderAt, size int64, expect map[string]string) (*ReaderAt, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(src, 0, size), 16<<10)
	hs := &headerSource{r: br, limit: e.lim.maxHeaderBytes}
	h, raw, err := parseHeader(hs, &e.lim)
	if err != nil {
		return nil, err
	}
	if !h.framed {
		return nil, malformed(StageFrame, "ranged reads need a framed message")
	}
	o, err := e.open(ctx, h, raw, expect)
	if err != nil {
		return nil, err
	}
	r := &ReaderAt{o: o, src: src, headerLen: int64(len(raw)), frameLen: int64(h.frameLength)}
	if o.verifier != nil {
		err = r.layoutSigned(br)
	} else {
		err = r.layoutUnsigned(size)
	}
	if err != nil {
		return nil, err
	}
	r.size = r.regular*r.frameLen + r.finalLen
	r.scratch.New = func() any {
		return &rangeScratch{fc: newFrameCrypto(o.aead, h.messageID), buf: make([]byte, 0, r.frameLen+finalFrameOverhead), plain: make([]byte, 0, r.frameLen)}
	}
	// The final frame's tag binds its sequence number and "Final Frame":
	// authenticating it now proves the layout, so a message cut short
	// and given a forged final frame is refused before any read.
	sc := r.scratch.Get().(*rangeScratch)
	_, err = r.frame(sc, r.regular)
	r.scratch.Put(sc)
	if err != nil {
		return nil, err
	}
	return r, nil
}

type rangeScratch struct {
	fc         *frameCrypto
	buf, plain []byte
}

// layoutUnsigned finds the frames from the body's length alone: a body is
// n regular frames of frameLen+32 bytes and a final frame of 40+L bytes with
// 0 <= L <= frameLen, which has exactly one solution. The final frame's
// marker, number and length are checked here, and its tag on every read.
func (r *ReaderAt) layoutUnsigned(size int64) error {
	body := size - r.headerLen - finalFrameOverhead
	if body < 0 {
		return malformed(StageFrame, "the message ends before its final frame")
	}
	step := r.frameLen + regularFrameOverhead
	r.regular, r.finalLen = body/step, body%step
	if r.finalLen > r.frameLen || r.regular >= maxSeq {
		return malformed(StageFrame, "the body's length fits no sequence of frames")
	}
	var head [4 + 4 + ivLength + 4]byte
	if _, err := r.src.ReadAt(head[:], r.finalOffset()); err != nil {
		return malformed(StageFrame, "the final frame cannot be read")
	}
	if binary.BigEndian.Uint32(head[:]) != finalMarker || int64(binary.BigEndian.Uint32(head[4:])) != r.regular+1 ||
		int64(binary.BigEndian.Uint32(head[20:])) != r.finalLen {
		return malformed(StageFrame, "the message does not end with its final frame")
	}
	return nil
}

// layoutSigned walks every frame, hashing as it goes, verifies the
// signature, and records the layout.
func (r *ReaderAt) layoutSigned(br *bufio.Reader) error {
	ss := &streamSource{r: br, buf: make([]byte, 0, streamBufferSize(uint32(r.frameLen))), hash: r.o.verifier}
	fr := &frameReader{src: ss, frameLength: uint32(r.frameLen), seq: 1}
	for {
		ss.reset()
		f, err := fr.next()
		if err != nil {
			return err
		}
		if f.final {
			r.regular, r.finalLen = int64(f.seq-1), int64(len(f.sealed)-tagLength)
			break
		}
	}
	ss.hash = nil
	ss.reset()
	if err := r.o.checkFooter(ss); err != nil {
		return err
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return malformed(StageFrame, "trailing bytes follow the message")
	}
	return nil
}

func (r *ReaderAt) finalOffset() int64 {
	return r.headerLen + r.regular*(r.frameLen+regularFrameOverhead)
}

// Size returns the plaintext length.
func (r *ReaderAt) Size() int64 { return r.size }

// EncryptionContext returns the message's encryption context.
func (r *ReaderAt) EncryptionContext() map[string]string { return r.o.publicContext() }

// ReadAt implements io.ReaderAt over the plaintext.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, malformed(StageFrame, "negative offset")
	}
	if off >= r.size {
		return 0, io.EOF
	}
	sc := r.scratch.Get().(*rangeScratch)
	defer r.scratch.Put(sc)
	n := 0
	for n < len(p) && off < r.size {
		idx := off / r.frameLen
		plain, err := r.frame(sc, idx)
		if err != nil {
			return n, err
		}
		k := copy(p[n:], plain[off-idx*r.frameLen:])
		if k == 0 {
			return n, malformed(StageFrame, "a frame is shorter than the layout says")
		}
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// frame reads and authenticates frame idx (0-based) into sc.plain.
func (r *ReaderAt) frame(sc *rangeScratch, idx int64) ([]byte, error) {
	final := idx == r.regular
	var at, n int64
	if final {
		at, n = r.finalOffset(), finalFrameOverhead+r.finalLen
	} else {
		at, n = r.headerLen+idx*(r.frameLen+regularFrameOverhead), regularFrameOverhead+r.frameLen
	}
	buf := sc.buf[:n]
	// io.ReaderAt may report io.EOF with a full read at the end of src.
	if k, err := r.src.ReadAt(buf, at); k < len(buf) {
		_ = err
		return nil, malformed(StageFrame, "a frame cannot be read")
	}
	src := &sliceSource{b: buf}
	fr := &frameReader{src: src, frameLength: uint32(r.frameLen), seq: uint32(idx + 1)}
	f, err := fr.next()
	if err != nil {
		return nil, err
	}
	if f.final != final || src.off != len(buf) {
		return nil, malformed(StageFrame, "a frame is not where the layout puts it")
	}
	out, ok := sc.fc.open(sc.plain[:0], f.kind(), f.seq, f.iv, f.sealed)
	if !ok {
		return nil, authFailed(StageFrame, "a frame does not authenticate")
	}
	sc.plain = out
	return out, nil
}
