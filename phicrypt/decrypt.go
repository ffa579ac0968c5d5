package phicrypt

import (
	"context"
	"crypto/cipher"
	"crypto/sha512"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/phicrypt/phicrypt/internal/wire"
	"github.com/phicrypt/phicrypt/keyring"
)

// opened is a message whose header has been authenticated.
type opened struct {
	h       *header
	context map[string]string // the header's context plus auth-only pairs; shared unless ownContext
	// ownContext says that context was built for this message alone (it
	// did not come from a cache entry), so a one-shot Decrypt may hand it
	// over instead of copying it.
	ownContext bool
	frames     *frameCrypto
	aead       cipher.AEAD
	verifier   *verifier // nil for unsigned suites
	authOnly   []byte    // serialized expected pairs the header does not store

	// Scratch, so that opening allocates nothing of its own.
	fc     frameCrypto
	commit [sha512.Size]byte // HMAC-SHA-512 output before truncation
	key    []byte            // the cache key
	digest [digestKeyLen]byte
	mat    keyring.DecryptionMaterials // the keyring's, when the cache is not used
}

// open authenticates a parsed header: commitment policy, expected context,
// the keyring, key commitment and the header tag, in the order the ESDK
// specifies (client-apis/decrypt.md). rawHeader is the header as read (body
// and authentication), which a signature covers.
func (e *Encryptor) open(ctx context.Context, h *header, rawHeader []byte, expect map[string]string) (*opened, error) {
	o := &opened{}
	if err := e.openInto(ctx, o, h, rawHeader, expect); err != nil {
		return nil, err
	}
	return o, nil
}

// openInto is open into a caller's (pooled) opened.
func (e *Encryptor) openInto(ctx context.Context, o *opened, h *header, rawHeader []byte, expect map[string]string) error {
	return e.openKeeping(ctx, o, h, rawHeader, expect, nil)
}

// openKeeping is openInto that, when keep is not nil, sets it to a copy of
// the data key once the header has verified (rewrapping needs the key
// itself); the caller wipes it.
func (e *Encryptor) openKeeping(ctx context.Context, o *opened, h *header, rawHeader []byte, expect map[string]string, keep *keyring.Secret) error {
	if !e.policy.allowsDecrypt(h.suite) {
		return &MessageError{Stage: StageHeader, Err: ErrCommitmentPolicy,
			What: "the message uses " + h.suite.id.String() + ", which has no key commitment; the policy " + e.policy.String() + " refuses it"}
	}
	full, authOnly, err := e.matchContext(h, expect)
	if err != nil {
		return err
	}
	mat, err := e.decryptionMaterials(ctx, o, h, full)
	o.mat = keyring.DecryptionMaterials{} // mat holds the data key, which release wipes
	if err != nil {
		return err
	}
	defer mat.release()
	aead, commit := e.kdf.derive(h.suite, mat.dataKey, h.messageID, o.commit[:0])
	if h.suite.committing && !checkCommitment(commit, h.commitKey) {
		return authFailed(StageCommitment, "the key commitment does not match the data key")
	}
	o.h, o.context, o.ownContext, o.aead, o.frames = h, mat.context, mat.ownContext, aead, &o.fc
	o.fc.init(aead, h.messageID)
	iv := h.authIV
	if iv == nil {
		clear(o.fc.iv[:]) // version 2: an all-zero IV
		iv = o.fc.iv[:]
	}
	aad := h.body
	if len(authOnly) > 0 {
		aad = append(append([]byte(nil), h.body...), authOnly...)
	}
	if _, err := aead.Open(nil, iv, h.tag, aad); err != nil {
		return authFailed(StageHeader, "the header tag does not verify")
	}
	o.authOnly = authOnly
	if keep != nil {
		*keep = keyring.Secret(slices.Clone(mat.dataKey))
	}
	if h.suite.signed {
		v, err := newVerifier(o.context[publicKeyContextKey])
		if err != nil {
			return malformed(StageHeader, "the signature verification key is "+err.Error())
		}
		v.write(rawHeader)
		o.verifier = v
	}
	return nil
}

// matchContext checks the caller's expected pairs against the header's
// context. Pairs absent from the header are treated as the ESDK treats a
// reproduced context: authenticated but not stored, so they are appended to
// the header tag's additional data and the tag decides. When the header
// holds every expected pair, it returns a nil context (the header's is the
// whole context) without building a map; otherwise the full context and
// the serialized auth-only pairs.
func (e *Encryptor) matchContext(h *header, expect map[string]string) (map[string]string, []byte, error) {
	allStored := true
	for k, v := range expect {
		got, ok := contextValue(h.contextRaw, k)
		switch {
		case ok && string(got) != v:
			return nil, nil, contextMismatch(k)
		case !ok:
			allStored = false
		}
	}
	if allStored {
		return nil, nil, e.checkRequiredRaw(h.contextRaw)
	}
	full := maps.Clone(h.contextMap())
	authOnly := map[string]string{}
	for k, v := range expect {
		if _, ok := full[k]; !ok {
			authOnly[k] = v
			full[k] = v
		}
	}
	if err := e.checkRequired(full); err != nil {
		return nil, nil, err
	}
	ser, err := wire.AppendContext(nil, authOnly)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrContext, err)
	}
	return full, ser, nil
}

func contextMismatch(k string) error {
	return &MessageError{Stage: StageHeader, Err: ErrContext, What: fmt.Sprintf("the message's value for context key %q is not the expected one", k)}
}

// checkRequiredRaw is checkRequired on a serialized context.
func (e *Encryptor) checkRequiredRaw(raw []byte) error {
	for _, k := range e.required {
		if _, ok := contextValue(raw, k); !ok {
			return missingRequired(k)
		}
	}
	return nil
}

func missingRequired(k string) error {
	return &MessageError{Stage: StageHeader, Err: ErrContext, What: fmt.Sprintf("the required context key %q is missing", k)}
}

func (e *Encryptor) checkRequired(ec map[string]string) error {
	for _, k := range e.required {
		if _, ok := ec[k]; !ok {
			return missingRequired(k)
		}
	}
	return nil
}

// Decrypt authenticates and decrypts a whole message. expect lists context
// pairs the message must carry (nil for none); the returned context is the
// message's, without the signing key: a map of the caller's own, or nil when
// the message has no context. Nothing is returned unless the whole message,
// and its signature for signed suites, verifies.
func (e *Encryptor) Decrypt(ctx context.Context, msg []byte, expect map[string]string) ([]byte, map[string]string, error) {
	return e.DecryptAppend(ctx, nil, msg, expect)
}

// DecryptAppend is Decrypt appending the plaintext to dst. On failure dst's
// new bytes are cleared and nil is returned. With enough room in dst and
// the data key in the Cache, it allocates only the message's AES-GCM
// instance and the context map it returns (none for a message without a
// context). Without the Cache, the keyring's data key and the header's
// strings (one allocation for the context and the EDKs' provider ids) come
// on top.
func (e *Encryptor) DecryptAppend(ctx context.Context, dst, msg []byte, expect map[string]string) ([]byte, map[string]string, error) {
	st := e.getDecryptState()
	defer e.putDecryptState(st)
	out, err := e.decryptInto(ctx, st, dst, msg, expect)
	if err != nil {
		return nil, nil, err
	}
	return out, st.o.takeContext(), nil
}

// Open is DecryptAppend without the returned context, for callers that
// check the pairs they rely on through expect, as cipher.AEAD's Open takes
// its additional data. With the data key in the Cache, it allocates only
// the message's AES-GCM instance, and the plaintext when dst lacks room.
func (e *Encryptor) Open(ctx context.Context, dst, msg []byte, expect map[string]string) ([]byte, error) {
	st := e.getDecryptState()
	defer e.putDecryptState(st)
	return e.decryptInto(ctx, st, dst, msg, expect)
}

// decryptInto is DecryptAppend up to the returned context, with its
// scratch in st.
func (e *Encryptor) decryptInto(ctx context.Context, st *decryptState, dst, msg []byte, expect map[string]string) ([]byte, error) {
	src, h, o := &st.src, &st.h, &st.o
	src.b = msg
	raw, err := parseHeaderInto(h, src, &e.lim)
	if err != nil {
		return nil, err
	}
	if err := e.openInto(ctx, o, h, raw, expect); err != nil {
		return nil, err
	}
	start := len(dst)
	// The plaintext is shorter than the rest of the message: growing dst
	// once leaves no abandoned copies of plaintext behind.
	dst = slices.Grow(dst, len(msg)-src.off)
	bodyStart := src.off
	out, err := o.decryptBody(dst, src, &e.lim)
	if err == nil && o.verifier != nil {
		o.verifier.write(msg[bodyStart:src.off])
		err = o.checkFooter(src)
	}
	if err == nil && src.off != len(msg) {
		err = malformed(StageFrame, "trailing bytes follow the message")
	}
	if err != nil {
		clear(out[start:])
		return nil, err
	}
	return out, nil
}

// decryptState is the scratch of one DecryptAppend call, from a pool. What
// it points into (the message, the context of a cache entry, the AEAD) is
// dropped before it goes back.
type decryptState struct {
	src sliceSource
	h   header
	o   opened
}

func (e *Encryptor) getDecryptState() *decryptState {
	if st, ok := e.decStates.Get().(*decryptState); ok {
		return st
	}
	return new(decryptState)
}

func (e *Encryptor) putDecryptState(st *decryptState) {
	clear(st.o.key) // the message's context: nothing of a message stays pooled
	key := st.o.key[:0]
	if cap(key) > maxPooledScratch {
		key = nil
	}
	st.src = sliceSource{}
	st.h = header{}
	st.o = opened{key: key}
	e.decStates.Put(st)
}

// publicContext is the context returned to callers: the signing key is the
// format's, not theirs. An empty context is a nil map, which reads as an
// empty one and costs no allocation.
func (o *opened) publicContext() map[string]string {
	if len(o.context) == 0 || len(o.context) == 1 && o.h.suite.signed {
		return nil
	}
	ec := maps.Clone(o.context)
	delete(ec, publicKeyContextKey)
	return ec
}

// takeContext is publicContext for a caller done with o: a context built for
// this message alone is handed over, not copied.
func (o *opened) takeContext() map[string]string {
	if !o.ownContext {
		return o.publicContext()
	}
	ec := o.context
	o.context = nil
	delete(ec, publicKeyContextKey)
	if len(ec) == 0 {
		return nil
	}
	return ec
}

// decryptBody decrypts every frame (or the single block) into dst.
func (o *opened) decryptBody(dst []byte, src source, lim *limits) ([]byte, error) {
	if !o.h.framed {
		return o.decryptSingleBlock(dst, src, lim)
	}
	fr := &frameReader{src: src, frameLength: o.h.frameLength, seq: 1}
	for {
		f, err := fr.next()
		if err != nil {
			return dst, err
		}
		var ok bool
		if dst, ok = o.frames.open(dst, f.kind(), f.seq, f.iv, f.sealed); !ok {
			return dst, authFailed(StageFrame, "a frame does not authenticate")
		}
		if f.final {
			return dst, nil
		}
	}
}

func (o *opened) decryptSingleBlock(dst []byte, src source, lim *limits) ([]byte, error) {
	iv, err := src.next(ivLength)
	if err != nil {
		return dst, malformed(StageFrame, "the message ends inside its body")
	}
	lb, err := src.next(8)
	if err != nil {
		return dst, malformed(StageFrame, "the message ends inside its body")
	}
	n := uint64(lb[0])<<56 | uint64(lb[1])<<48 | uint64(lb[2])<<40 | uint64(lb[3])<<32 | uint64(lb[4])<<24 | uint64(lb[5])<<16 | uint64(lb[6])<<8 | uint64(lb[7])
	if n > uint64(lim.maxNonFramed) || n > maxNonFramedBody {
		return dst, &MessageError{Stage: StageFrame, Err: ErrLimit, What: "the non-framed body is larger than the configured maximum"}
	}
	sealed, err := src.next(int(n) + tagLength)
	if err != nil {
		return dst, malformed(StageFrame, "the message ends inside its body")
	}
	out, ok := o.frames.open(dst, aadSingleBlock, 1, iv, sealed)
	if !ok {
		return dst, authFailed(StageFrame, "the body does not authenticate")
	}
	return out, nil
}

// checkFooter reads and verifies a signing suite's footer.
func (o *opened) checkFooter(src source) error {
	lb, err := src.next(2)
	if err != nil {
		return malformed(StageSignature, "the message ends before its signature")
	}
	n := int(lb[0])<<8 | int(lb[1])
	if n == 0 || n > maxSignatureLength {
		return malformed(StageSignature, "the signature length is out of range")
	}
	sig, err := src.next(n)
	if err != nil {
		return malformed(StageSignature, "the message ends inside its signature")
	}
	if !o.verifier.verify(sig) {
		return authFailed(StageSignature, "the signature does not verify")
	}
	return nil
}

var errClosed = errors.New("phicrypt: use of a closed stream")
