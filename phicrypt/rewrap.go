package phicrypt

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"

	"github.com/phicrypt/phicrypt/internal/wire"
	"github.com/phicrypt/phicrypt/keyring"
)

// Rewrapping moves a message's data key to another keyring without
// touching its body. The body's frames are sealed under a key derived from
// the data key and the message id (Encryptor.derive), and their additional
// data holds neither the encryption context nor the encrypted data keys
// (data-format/message-body-aad.md), so a header with the same suite,
// message id, frame length and commitment key but other encrypted data keys
// opens the same frames. Only the header tag, whose additional data is the
// header body, is computed again, under the same derived key.

// ErrSignedRewrap is returned by RewrapHeader for a signed message: its
// signature covers the header, so the body must pass through RewrapSigned.
var ErrSignedRewrap = errors.New("phicrypt: a signed message's signature covers its header and body; rewrap it with RewrapSigned")

// RewrapHeader returns a new header for the message whose header begins
// header (more of the message may follow it; HeaderLength tells where the
// old header ends), holding the same data key wrapped by to instead of the
// message's own encrypted data keys. The old header is authenticated
// exactly as Decrypt does it (commitment policy, expected context, this
// Encryptor's keyring, key commitment, header tag); to then wraps the same
// data key under the same encryption context, and the new header keeps the
// suite, message id, context, frame length and commitment key, with a new
// header tag. Every frame of the old body stays valid after the new header,
// so the message is the old header replaced by the new one.
//
// Only framed messages of format version 2 and unsigned suites are
// rewrapped here: a signed message's signature covers the header
// (ErrSignedRewrap; see RewrapSigned), and a version 1 message (legacy
// suites) has no commitment key to keep and must be encrypted again.
func (e *Encryptor) RewrapHeader(ctx context.Context, header []byte, expect map[string]string, to keyring.Keyring) ([]byte, error) {
	h, _, err := e.RewrapHeaderMessage(ctx, header, expect, to)
	return h, err
}

// RewrapHeaderMessage is RewrapHeader that also returns the old header
// opened, so the caller can authenticate frames of the body it carries
// over (its final frame, proving the body whole) without another keyring
// call. The frames open the same under either header.
func (e *Encryptor) RewrapHeaderMessage(ctx context.Context, header []byte, expect map[string]string, to keyring.Keyring) ([]byte, *Message, error) {
	u, err := e.unwrapForRewrap(ctx, header, expect, false)
	if err != nil {
		return nil, nil, err
	}
	defer u.dataKey.Wipe()
	edks, err := e.wrapAgain(ctx, to, u)
	if err != nil {
		return nil, nil, err
	}
	nh, err := e.sealRewrapped(u, edks, u.h.contextRaw)
	if err != nil {
		return nil, nil, err
	}
	return nh, &Message{o: u.o, headerLen: int64(len(u.raw)), frameLen: int64(u.h.frameLength)}, nil
}

// unwrapped is an authenticated header with its data key, for rewrapping.
type unwrapped struct {
	o        *opened
	h        *header
	raw      []byte // the old header as read
	dataKey  keyring.Secret
	context  map[string]string // the whole context, auth-only pairs included
	authOnly []byte            // the serialized pairs expected but not stored
	aead     cipher.AEAD
}

// unwrapForRewrap parses and authenticates the header that begins prefix
// as openInto does, keeping a copy of the data key, which the caller must
// wipe.
func (e *Encryptor) unwrapForRewrap(ctx context.Context, prefix []byte, expect map[string]string, signed bool) (*unwrapped, error) {
	h, raw, err := e.parsePrefix(prefix)
	if err != nil {
		return nil, err
	}
	switch {
	case h.suite.version != formatV2:
		return nil, malformed(StageHeader, "a version 1 message (legacy suite) cannot be rewrapped: it has no commitment key to keep; decrypt and encrypt it again")
	case !h.framed:
		return nil, malformed(StageFrame, "only framed messages can be rewrapped")
	case h.suite.signed && !signed:
		return nil, ErrSignedRewrap
	case !h.suite.signed && signed:
		return nil, errors.New("phicrypt: RewrapSigned is for signed messages; use RewrapHeader")
	}
	// The parsed header points into prefix; keep a copy of its own.
	raw = bytes.Clone(raw)
	if h, raw, err = parseHeader(&sliceSource{b: raw}, &e.lim); err != nil {
		return nil, err
	}
	o := &opened{}
	var dataKey keyring.Secret
	if err := e.openKeeping(ctx, o, h, raw, expect, &dataKey); err != nil {
		return nil, err
	}
	ec := o.context
	if ec == nil {
		ec = h.contextMap()
	}
	return &unwrapped{o: o, h: h, raw: raw, dataKey: dataKey, context: maps.Clone(ec), authOnly: o.authOnly, aead: o.aead}, nil
}

// wrapAgain asks to to wrap u's data key under u's context, with the checks
// keyringEncrypt makes of a keyring's output.
func (e *Encryptor) wrapAgain(ctx context.Context, to keyring.Keyring, u *unwrapped) ([]keyring.EncryptedDataKey, error) {
	if to == nil {
		return nil, errors.New("phicrypt: rewrap needs a keyring to wrap the data key with")
	}
	m := &keyring.EncryptionMaterials{SuiteID: uint16(u.h.suite.id), DataKeyLength: dataKeyLength,
		EncryptionContext: maps.Clone(u.context), DataKey: keyring.Secret(bytes.Clone(u.dataKey))}
	if err := to.OnEncrypt(ctx, m); err != nil {
		m.DataKey.Wipe()
		return nil, keyringError(err)
	}
	defer m.DataKey.Wipe()
	if subtle.ConstantTimeCompare(m.DataKey, u.dataKey) != 1 {
		return nil, errors.New("phicrypt: the keyring replaced the data key it was given to wrap")
	}
	if len(m.EncryptedDataKeys) == 0 {
		return nil, errors.New("phicrypt: the keyring returned no encrypted data key")
	}
	if err := e.checkEDKs(m.EncryptedDataKeys); err != nil {
		return nil, err
	}
	return m.EncryptedDataKeys, nil
}

// sealRewrapped builds the new header: u's suite, message id, frame length
// and commitment key, the stored context aad and edks, and a header tag
// under u's derived key over the body and the auth-only pairs.
func (e *Encryptor) sealRewrapped(u *unwrapped, edks []keyring.EncryptedDataKey, aad []byte) ([]byte, error) {
	if len(aad) > 0xffff {
		return nil, fmt.Errorf("%w: the encryption context is serialized in more than 65535 bytes", ErrContext)
	}
	nh := header{suite: u.h.suite, messageID: u.h.messageID, edks: edks, framed: true,
		frameLength: u.h.frameLength, commitKey: u.h.commitKey}
	n := headerBodyLen(&nh, aad)
	if n+tagLength > e.lim.maxHeaderBytes {
		return nil, fmt.Errorf("%w: the new header would be %d bytes, more than MaxHeaderBytes; readers would refuse it", ErrLimit, n+tagLength)
	}
	out := appendHeaderBody(make([]byte, 0, n+len(u.authOnly)+tagLength), &nh, aad)
	tag := u.aead.Seal(nil, make([]byte, ivLength), nil, append(bytes.Clone(out), u.authOnly...))
	return append(out, tag...), nil
}

// SignedRewrap rewraps a signed message (suite 0x0578): its signature
// covers the header and the body, so a new signing key pair signs the
// message again. Header is the new header; the body follows it unchanged,
// passed through Write; Footer checks the old signature over the old
// header and that body and returns the new footer. It is not safe for
// concurrent use.
type SignedRewrap struct {
	header      []byte
	old         *verifier
	signer      *signer
	frameLength uint32
	done        bool
}

// RewrapSigned starts rewrapping a signed message whose header begins
// header, as RewrapHeader does for unsigned ones: the old header is
// authenticated, the data key is wrapped by to, and the new header keeps
// the suite, message id, frame length and commitment key. Since the
// signature covers the whole message, a new ECDSA P-384 key pair is made:
// its public key replaces aws-crypto-public-key in the encryption context
// (so the stored context changes in that pair only), the new encrypted data
// keys are made under that context, and the new private key signs the new
// header and the old body when Footer is called; it is then dropped.
func (e *Encryptor) RewrapSigned(ctx context.Context, header []byte, expect map[string]string, to keyring.Keyring) (*SignedRewrap, error) {
	u, err := e.unwrapForRewrap(ctx, header, expect, true)
	if err != nil {
		return nil, err
	}
	defer u.dataKey.Wipe()
	old, err := newVerifier(u.context[publicKeyContextKey])
	if err != nil {
		return nil, malformed(StageHeader, "the signature verification key is "+err.Error())
	}
	old.write(u.raw)
	sg, err := newSigner()
	if err != nil {
		return nil, err
	}
	u.context[publicKeyContextKey] = sg.publicKey()
	stored := maps.Clone(u.h.contextMap())
	stored[publicKeyContextKey] = sg.publicKey()
	aad, err := wire.AppendContext(nil, stored)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrContext, err)
	}
	edks, err := e.wrapAgain(ctx, to, u)
	if err != nil {
		return nil, err
	}
	nh, err := e.sealRewrapped(u, edks, aad)
	if err != nil {
		return nil, err
	}
	sg.write(nh)
	return &SignedRewrap{header: nh, old: old, signer: sg, frameLength: u.h.frameLength}, nil
}

// Header returns the new header. The caller must not modify it.
func (s *SignedRewrap) Header() []byte { return s.header }

// Write feeds body bytes: the old message's frames exactly as stored, from
// the end of its header up to (not including) its footer, in order and in
// any number of calls. It never fails.
func (s *SignedRewrap) Write(body []byte) (int, error) {
	if s.done {
		return 0, errors.New("phicrypt: SignedRewrap.Write after Footer")
	}
	s.old.write(body)
	s.signer.write(body)
	return len(body), nil
}

// Footer checks old, the old message's footer (its two-byte length and
// signature), against the old header and the body written, and returns
// the new footer, which signs the new header and the same body. A body
// altered by anyone without the old signing key fails here, so it is never
// signed anew. Footer may be called once.
func (s *SignedRewrap) Footer(old []byte) ([]byte, error) {
	if s.done {
		return nil, errors.New("phicrypt: SignedRewrap.Footer called twice")
	}
	s.done = true
	o := &opened{verifier: s.old}
	if err := o.checkFooter(&sliceSource{b: old}); err != nil {
		return nil, err
	}
	if len(old) != 2+(int(old[0])<<8|int(old[1])) {
		return nil, malformed(StageSignature, "trailing bytes follow the signature")
	}
	footer, err := s.signer.appendFooter(nil)
	s.signer = nil // the private key signs one message
	return footer, err
}

// CopyBody streams the rest of the old message, read from src starting
// right after its header, into dst: the frames unchanged (through Write),
// then, once the old footer is checked (Footer), the new footer. It reads
// exactly the message: a source that ends inside it, or holds bytes after
// the signature, fails with a MessageError, and so does a frame longer
// than the header's frame length. dst has then received the body but no
// footer: the caller discards what it wrote.
func (s *SignedRewrap) CopyBody(dst io.Writer, src io.Reader) error {
	if s.done {
		return errors.New("phicrypt: SignedRewrap.CopyBody after Footer")
	}
	buf := make([]byte, regularFrameOverhead+int(s.frameLength))
	pass := func(b []byte, what string) error {
		if _, err := io.ReadFull(src, b); err != nil {
			return readFailure(err, StageFrame, what)
		}
		_, _ = s.Write(b)
		_, err := dst.Write(b)
		return err
	}
	for {
		seq := buf[:4]
		if err := pass(seq, "the message ends before its final frame"); err != nil {
			return err
		}
		if binary.BigEndian.Uint32(seq) != finalMarker {
			if err := pass(buf[:ivLength+int(s.frameLength)+tagLength], "the message ends inside a frame"); err != nil {
				return err
			}
			continue
		}
		head := buf[:4+ivLength+4] // sequence number, IV, content length
		if err := pass(head, "the message ends inside its final frame"); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(head[4+ivLength:])
		if n > s.frameLength {
			return malformed(StageFrame, "the final frame is longer than the frame length")
		}
		if err := pass(buf[:int(n)+tagLength], "the message ends inside its final frame"); err != nil {
			return err
		}
		break
	}
	old, err := io.ReadAll(io.LimitReader(src, maxFooterLength+1))
	if err != nil {
		return readFailure(err, StageSignature, "the signature cannot be read")
	}
	if len(old) > maxFooterLength {
		return malformed(StageSignature, "trailing bytes follow the signature")
	}
	footer, err := s.Footer(old)
	if err != nil {
		return err
	}
	_, err = dst.Write(footer)
	return err
}

// Format implements fmt.Formatter: "phicrypt.SignedRewrap" whatever the
// verb (the header holds the encryption context, the signer a private key).
func (SignedRewrap) Format(f fmt.State, _ rune) { formatRedacted(f, "phicrypt.SignedRewrap") }

// LogValue implements slog.LogValuer.
func (SignedRewrap) LogValue() slog.Value { return slog.StringValue("phicrypt.SignedRewrap") }
