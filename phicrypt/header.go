package phicrypt

import (
	"encoding/binary"
	"io"
	"unicode/utf8"

	"github.com/phicrypt/phicrypt/internal/wire"
	"github.com/phicrypt/phicrypt/keyring"
)

// Header layout (data-format/message-header.md); all integers big-endian.
//
//	v2: version(1)=02 suite(2) messageID(32) aadLen(2) aad edkCount(2) edks
//	    contentType(1) frameLength(4) commitKey(32) | tag(16)
//	v1: version(1)=01 type(1)=80 suite(2) messageID(16) aadLen(2) aad
//	    edkCount(2) edks contentType(1) reserved(4)=0 ivLength(1)=12
//	    frameLength(4) | iv(12) tag(16)
//
// aad is the serialized encryption context (internal/wire); each EDK is three
// uint16-length-prefixed strings: provider id, provider info, ciphertext.
type header struct {
	suite     *suiteInfo
	messageID []byte
	// context is the parsed context; a parsed header builds it only when
	// something needs a map (contextMap), so a cache hit parses none.
	context    map[string]string
	contextRaw []byte // the context as serialized in the header
	// edks are a written header's keys; a parsed header builds them only
	// for the keyring (encryptedDataKeys), from edkRaw, the section as read.
	edks   []keyring.EncryptedDataKey
	edkRaw []byte
	// namesRaw is the context and EDK sections as read (they are adjacent),
	// and names the same bytes as one string, made on first use: the
	// context's keys and values and the EDKs' provider ids are substrings
	// of it, one allocation for all of them.
	namesRaw    []byte
	names       string
	edkBuf      [2]keyring.EncryptedDataKey // room for edks, so one or two allocate nothing
	framed      bool
	frameLength uint32
	commitKey   []byte // v2 only
	authIV      []byte // v1 only; v2 uses zeros
	tag         []byte
	body        []byte // the serialized header body, exactly as read or written
}

const (
	contentNonFramed = 0x01
	contentFramed    = 0x02
	v1TypeByte       = 0x80
	// publicKeyContextKey carries the signing suites' verification key
	// (base64 of a compressed P-384 point).
	publicKeyContextKey = "aws-crypto-public-key"
	reservedKeyPrefix   = "aws-crypto-"
)

// appendHeaderBody serializes a version 2 header body (phicrypt writes no
// other version).
func appendHeaderBody(dst []byte, h *header, aad []byte) []byte {
	dst = append(dst, formatV2)
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.suite.id))
	dst = append(dst, h.messageID...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(aad)))
	dst = append(dst, aad...)
	dst = appendEDKSection(dst, h.edks)
	dst = append(dst, contentFramed)
	dst = binary.BigEndian.AppendUint32(dst, h.frameLength)
	return append(dst, h.commitKey...)
}

// headerBodyLen is the length appendHeaderBody appends for h and aad.
func headerBodyLen(h *header, aad []byte) int {
	n := 1 + 2 + len(h.messageID) + 2 + len(aad) + 2 + 1 + 4 + len(h.commitKey)
	for _, e := range h.edks {
		n += 2 + len(e.ProviderID) + 2 + len(e.ProviderInfo) + 2 + len(e.Ciphertext)
	}
	return n
}

func appendShortBytes(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// source yields a message's bytes in order: from a slice without copying,
// or from a stream with a cap on what may be buffered.
type source interface {
	// next returns exactly n more bytes; io.ErrUnexpectedEOF (or io.EOF at
	// a clean boundary) when there are fewer.
	next(n int) ([]byte, error)
}

type sliceSource struct {
	b   []byte
	off int
}

func (s *sliceSource) next(n int) ([]byte, error) {
	if n < 0 {
		return nil, io.ErrUnexpectedEOF
	}
	if n > len(s.b)-s.off {
		if s.off == len(s.b) {
			return nil, io.EOF
		}
		return nil, io.ErrUnexpectedEOF
	}
	s.off += n
	return s.b[s.off-n : s.off], nil
}

// headerSource reads a header from a stream, keeping every byte (the header
// body is authenticated as read) up to a limit.
type headerSource struct {
	r     io.Reader
	buf   []byte
	limit int
}

func (s *headerSource) next(n int) ([]byte, error) {
	if n < 0 || len(s.buf)+n > s.limit {
		return nil, &MessageError{Stage: StageHeader, Err: ErrLimit, What: "the header is larger than the configured maximum"}
	}
	start := len(s.buf)
	s.buf = append(s.buf, make([]byte, n)...)
	if _, err := io.ReadFull(s.r, s.buf[start:]); err != nil {
		return nil, err
	}
	return s.buf[start:], nil
}

// headerParser reads one header field at a time and remembers the first
// error, so parseHeader reads as the format table does.
type headerParser struct {
	src source
	err error
}

func (p *headerParser) bytes(n int) []byte {
	if p.err != nil {
		return nil
	}
	b, err := p.src.next(n)
	if err != nil {
		p.err = readFailure(err, StageHeader, "the message ends inside its header")
		return nil
	}
	return b
}

func (p *headerParser) u8() byte {
	if b := p.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (p *headerParser) u16() int {
	if b := p.bytes(2); b != nil {
		return int(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (p *headerParser) u32() uint32 {
	if b := p.bytes(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (p *headerParser) short() []byte { return p.bytes(p.u16()) }

func (p *headerParser) fail(stage Stage, what string) {
	if p.err == nil {
		p.err = malformed(stage, what)
	}
}

// parseHeader reads and checks a header's structure. It authenticates
// nothing: the caller verifies commitment and the header tag before trusting
// any of it.
func parseHeader(src source, lim *limits) (*header, []byte, error) {
	h := &header{}
	raw, err := parseHeaderInto(h, src, lim)
	if err != nil {
		return nil, nil, err
	}
	return h, raw, nil
}

// parseHeaderInto is parseHeader into a caller's (pooled) header, so that
// Decrypt allocates nothing for it. It returns the header as read.
func parseHeaderInto(h *header, src source, lim *limits) ([]byte, error) {
	p := &headerParser{src: src}
	var raw func() []byte
	switch s := src.(type) {
	case *sliceSource:
		start := s.off
		raw = func() []byte { return s.b[start:s.off] }
	case *headerSource:
		raw = func() []byte { return s.buf }
	}
	*h = header{}
	version := p.u8()
	if p.err != nil {
		return nil, p.err
	}
	switch version {
	case formatV1:
		if p.u8() != v1TypeByte {
			p.fail(StageHeader, "unknown version 1 message type")
		}
	case formatV2:
	default:
		if version == 'A' {
			return nil, malformed(StageHeader, "unknown message format version; the input looks base64-encoded: decode it first")
		}
		return nil, malformed(StageHeader, "unknown message format version")
	}
	si, ok := Suite(p.u16()).info()
	if p.err == nil && (!ok || si.version != version) {
		p.fail(StageHeader, "unsupported algorithm suite")
	}
	if p.err != nil {
		return nil, p.err
	}
	h.suite = si
	h.messageID = p.bytes(si.messageIDLength())
	namesStart := len(raw()) + 2 // after the context's length
	h.parseContext(p)
	edkStart := len(raw())
	h.parseEDKs(p, lim)
	edkEnd := len(raw())
	h.parseContent(p, lim)
	if version == formatV2 {
		h.commitKey = p.bytes(commitKeyLen)
	}
	if p.err != nil {
		return nil, p.err
	}
	h.body = raw()
	h.edkRaw = h.body[edkStart:edkEnd]
	h.namesRaw = h.body[namesStart:edkEnd]
	if version == formatV1 {
		h.authIV = p.bytes(ivLength)
	}
	h.tag = p.bytes(tagLength)
	if p.err != nil {
		return nil, p.err
	}
	return raw(), nil
}

func (h *header) parseContext(p *headerParser) {
	aad := p.short()
	if p.err != nil {
		return
	}
	valid, sorted := scanContext(aad)
	if !sorted {
		// Keys out of order (a writer other than the ESDKs): only a map
		// finds duplicates, so parse now.
		ctx, err := wire.ParseContext(aad)
		valid = err == nil
		h.context = ctx
	}
	if !valid {
		p.fail(StageHeader, "the encryption context is malformed")
		return
	}
	h.contextRaw = aad
	_, hasKey := contextValue(aad, publicKeyContextKey)
	if hasKey != h.suite.signed {
		p.fail(StageHeader, "the signing key in the encryption context does not match the suite")
	}
}

// contextMap returns the header's context as a map, parsing it on first
// use. The map must not be modified.
func (h *header) contextMap() map[string]string {
	if h.context == nil {
		h.context = h.parseContextNames()
	}
	return h.context
}

// keyringContext is contextMap for a keyring's materials: nil for an empty
// context, as Encrypt passes a caller's nil context on, so a message without
// one allocates no map.
func (h *header) keyringContext() map[string]string {
	if len(h.contextRaw) < 2 || h.contextRaw[0] == 0 && h.contextRaw[1] == 0 {
		return nil
	}
	return h.contextMap()
}

// namesString returns namesRaw as a string, converting it once.
func (h *header) namesString() string {
	if h.names == "" {
		h.names = string(h.namesRaw)
	}
	return h.names
}

// parseContextNames builds the map of a context that scanContext accepted
// with its keys in order (parseContext parsed any other into a map
// already), its keys and values substrings of namesString.
func (h *header) parseContextNames() map[string]string {
	raw := h.contextRaw
	if len(raw) < 2 {
		return map[string]string{}
	}
	names := h.namesString()
	n := int(binary.BigEndian.Uint16(raw))
	ctx := make(map[string]string, n)
	off := 2 // raw is the start of names
	for range n {
		kl := int(binary.BigEndian.Uint16(raw[off:]))
		k := names[off+2 : off+2+kl]
		off += 2 + kl
		vl := int(binary.BigEndian.Uint16(raw[off:]))
		ctx[k] = names[off+2 : off+2+vl]
		off += 2 + vl
	}
	return ctx
}

func (h *header) parseEDKs(p *headerParser, lim *limits) {
	n := p.u16()
	if p.err != nil {
		return
	}
	if n == 0 {
		p.fail(StageEDK, "the message has no encrypted data keys")
		return
	}
	if n > lim.maxEDKs {
		p.err = &MessageError{Stage: StageEDK, Err: ErrLimit, What: "the message has more encrypted data keys than the configured maximum"}
		return
	}
	for range n {
		id, _, _ := p.short(), p.short(), p.short()
		if p.err != nil {
			return
		}
		if !utf8.Valid(id) {
			p.fail(StageEDK, "an encrypted data key's provider id is not UTF-8")
			return
		}
	}
}

// encryptedDataKeys returns the header's encrypted data keys, building them
// from the section as read on first use (only a keyring call needs them).
// They share the message's bytes, as the section does.
func (h *header) encryptedDataKeys() []keyring.EncryptedDataKey {
	if h.edks != nil || h.edkRaw == nil {
		return h.edks
	}
	// n was checked against the limit, and the section's structure, by
	// parseEDKs.
	raw := h.edkRaw
	n := int(binary.BigEndian.Uint16(raw))
	if n <= len(h.edkBuf) {
		h.edks = h.edkBuf[:0:n]
	} else {
		h.edks = make([]keyring.EncryptedDataKey, 0, n)
	}
	names, b := h.namesString(), h.namesRaw
	off := len(b) - len(raw) + 2 // the first EDK's offset in names
	for range n {
		var id, info, ct [2]int
		id, off = shortAt(b, off)
		info, off = shortAt(b, off)
		ct, off = shortAt(b, off)
		h.edks = append(h.edks, keyring.EncryptedDataKey{
			ProviderID:   names[id[0]:id[1]],
			ProviderInfo: b[info[0]:info[1]:info[1]],
			Ciphertext:   b[ct[0]:ct[1]:ct[1]],
		})
	}
	return h.edks
}

// shortAt returns the span of the uint16-length-prefixed bytes at off in b,
// and the offset after them; b's structure has been checked.
func shortAt(b []byte, off int) ([2]int, int) {
	n := int(binary.BigEndian.Uint16(b[off:]))
	return [2]int{off + 2, off + 2 + n}, off + 2 + n
}

func (h *header) parseContent(p *headerParser, lim *limits) {
	content := p.u8()
	if h.suite.version == formatV1 {
		if r := p.u32(); p.err == nil && r != 0 {
			p.fail(StageHeader, "the reserved field is not zero")
		}
		if n := p.u8(); p.err == nil && n != ivLength {
			p.fail(StageHeader, "the IV length is not 12")
		}
	}
	h.frameLength = p.u32()
	if p.err != nil {
		return
	}
	switch content {
	case contentFramed:
		h.framed = true
		if h.frameLength == 0 {
			p.fail(StageHeader, "a framed message has frame length 0")
		} else if h.frameLength > lim.maxFrameLength {
			p.err = &MessageError{Stage: StageHeader, Err: ErrLimit, What: "the frame length is larger than the configured maximum"}
		}
	case contentNonFramed:
		if h.frameLength != 0 {
			p.fail(StageHeader, "a non-framed message has a frame length")
		}
	default:
		p.fail(StageHeader, "unknown content type")
	}
}
