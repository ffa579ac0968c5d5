package phicrypt

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
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
	pools     *readerAtPools // its Encryptor's
	headerLen int64
	frameLen  int64
	regular   int64 // number of regular frames
	finalLen  int64 // plaintext bytes in the final frame
	size      int64
}

// NewReaderAt opens the message of size bytes in src. expect lists context
// pairs the message must carry.
func (e *Encryptor) NewReaderAt(ctx context.Context, src io.ReaderAt, size int64, expect map[string]string) (*ReaderAt, error) {
	pools := &e.readerAts
	br := pools.getMessageReader(io.NewSectionReader(src, 0, size))
	defer pools.putMessageReader(br)
	// Room for a typical header, so reading it field by field does not
	// regrow the buffer.
	hs := &headerSource{r: br, buf: make([]byte, 0, min(1<<10, e.lim.maxHeaderBytes)), limit: e.lim.maxHeaderBytes}
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
	r := &ReaderAt{o: o, src: src, pools: pools, headerLen: int64(len(raw)), frameLen: int64(h.frameLength)}
	sc := r.getScratch()
	defer r.putScratch(sc)
	if o.verifier != nil {
		err = r.layoutSigned(br, sc)
	} else {
		err = r.layoutUnsigned(size, sc)
	}
	if err != nil {
		return nil, err
	}
	r.size = r.regular*r.frameLen + r.finalLen
	// The final frame's tag binds its sequence number and "Final Frame":
	// authenticating it now proves the layout, so a message cut short
	// and given a forged final frame is refused before any read.
	if _, err := r.frame(sc, r.regular, nil); err != nil {
		return nil, err
	}
	return r, nil
}

// rangeScratch is the scratch of one ReadAt: a buffer for one frame (and a
// footer), in which a frame wanted only in part is decrypted in place, and
// the frame crypto.
type rangeScratch struct {
	fc    frameCrypto
	buf   []byte
	src   sliceSource // over buf
	class int
	dirty int // bytes at the start of buf that may hold plaintext
}

// layoutUnsigned finds the frames from the body's length alone: a body is
// n regular frames of frameLen+32 bytes and a final frame of 40+L bytes with
// 0 <= L <= frameLen, which has exactly one solution. The final frame's
// marker, number and length are checked here, and its tag on every read.
func (r *ReaderAt) layoutUnsigned(size int64, sc *rangeScratch) error {
	body := size - r.headerLen - finalFrameOverhead
	if body < 0 {
		return malformed(StageFrame, "the message ends before its final frame")
	}
	step := r.frameLen + regularFrameOverhead
	r.regular, r.finalLen = body/step, body%step
	if r.finalLen > r.frameLen || r.regular >= maxSeq {
		return malformed(StageFrame, "the body's length fits no sequence of frames")
	}
	head := sc.buf[:4+4+ivLength+4]
	if _, err := r.src.ReadAt(head, r.finalOffset()); err != nil {
		return malformed(StageFrame, "the final frame cannot be read")
	}
	if binary.BigEndian.Uint32(head[:]) != finalMarker || int64(binary.BigEndian.Uint32(head[4:])) != r.regular+1 ||
		int64(binary.BigEndian.Uint32(head[20:])) != r.finalLen {
		return malformed(StageFrame, "the message does not end with its final frame")
	}
	return nil
}

// layoutSigned walks every frame, hashing as it goes, verifies the
// signature, and records the layout. The frames are read into sc's buffer,
// ciphertext only.
func (r *ReaderAt) layoutSigned(br *bufio.Reader, sc *rangeScratch) error {
	ss := &streamSource{r: br, buf: sc.buf[:0], hash: r.o.verifier}
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

// ReadAt implements io.ReaderAt over the plaintext. Frames that p holds
// whole are decrypted straight into it. On an error, p holds the
// authenticated plaintext of the n bytes returned and no plaintext of the
// frame that failed.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, malformed(StageFrame, "negative offset")
	}
	if off >= r.size {
		return 0, io.EOF
	}
	sc := r.getScratch()
	defer r.putScratch(sc)
	n := 0
	for n < len(p) && off < r.size {
		idx := off / r.frameLen
		at := off - idx*r.frameLen // where the range starts in this frame
		whole := r.frameLen
		if idx == r.regular {
			whole = r.finalLen
		}
		var k int
		if at == 0 && whole <= int64(len(p)-n) {
			if _, err := r.frame(sc, idx, p[n:n]); err != nil {
				return n, err
			}
			k = int(whole)
		} else {
			plain, err := r.frame(sc, idx, nil)
			if err != nil {
				return n, err
			}
			k = copy(p[n:], plain[at:])
		}
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

// frame reads and authenticates frame idx (0-based). Its plaintext is
// appended to dst, which must have room for it, or decrypted in place in
// sc.buf when dst is nil. On failure nothing is left in either.
func (r *ReaderAt) frame(sc *rangeScratch, idx int64, dst []byte) ([]byte, error) {
	final := idx == r.regular
	var at, n int64
	if final {
		at, n = r.finalOffset(), finalFrameOverhead+r.finalLen
	} else {
		at, n = r.headerLen+idx*(r.frameLen+regularFrameOverhead), regularFrameOverhead+r.frameLen
	}
	buf := sc.buf[:n]
	// io.ReaderAt may report io.EOF with a full read at the end of src.
	if k, _ := r.src.ReadAt(buf, at); k < len(buf) {
		return nil, malformed(StageFrame, "a frame cannot be read")
	}
	src := &sc.src
	*src = sliceSource{b: buf}
	fr := &frameReader{src: src, frameLength: uint32(r.frameLen), seq: uint32(idx + 1)}
	f, err := fr.next()
	if err != nil {
		return nil, err
	}
	if f.final != final || src.off != len(buf) {
		return nil, malformed(StageFrame, "a frame is not where the layout puts it")
	}
	if dst == nil {
		dst = f.sealed[:0]
		sc.dirty = max(sc.dirty, int(n))
	}
	out, ok := sc.fc.open(dst, f.kind(), f.seq, f.iv, f.sealed)
	if !ok {
		clear(dst[:len(f.sealed)-tagLength]) // AES-GCM clears it already; this does not rely on that
		return nil, authFailed(StageFrame, "a frame does not authenticate")
	}
	return out, nil
}
