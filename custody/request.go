package custody

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/phicrypt/phicrypt/keystore"
	"golang.org/x/crypto/cryptobyte"
)

// Quorum-signed change requests, after TUF's threshold roles: a Request
// is the exact change, the policy it was proposed under, an expiry and a
// random nonce, encoded canonically (docs/FORMAT.md); each custodian who
// agrees signs those bytes with Ed25519 (an Approval); an Authority
// applies the change only with enough valid, distinct, unexpired
// approvals from custodians of the policy in force, once.

// Caps on requests and approvals.
const (
	// MaxApprovals is the most approvals one request may carry.
	MaxApprovals = MaxCustodians
	// MaxRequestLifetime is the furthest ahead a request may expire.
	MaxRequestLifetime = 30 * 24 * time.Hour
	// maxRequestSize bounds an encoded request.
	maxRequestSize = 1 + 1 + 1 + MaxPrincipalName + 2 + keystore.MaxBranchKeyIDLen + 1 + 36 +
		2 + keystore.MaxKMSKeyARNLen + 32 + 8 + 16 + 3 + maxPolicySize + 32
	// maxApprovalSize bounds an encoded approval.
	maxApprovalSize = 1 + 1 + MaxPrincipalName + 32 + ed25519.SignatureSize
	// maxSignedSize bounds a request stored with its approvals.
	maxSignedSize = 1 + 3 + maxRequestSize + 1 + MaxApprovals*(2+maxApprovalSize)
)

// A signed request at its caps fits in one store record, and a scope is a
// valid record name: these fail to compile otherwise.
const (
	_ = uint(keystore.MaxRecordValueLen - maxSignedSize)
	_ = uint(keystore.MaxRecordNameLen - MaxScope)
)

// Encoding versions (the first byte of each encoding) and the signature's
// domain-separation prefix.
const (
	requestVersion  = 1
	approvalVersion = 1
	signedVersion   = 1
	signingDomain   = "phicrypt change request v1\x00"
)

// Change is what a request asks for. Which fields apply depends on Action:
//
//   - create, rotate, destroy-key: BranchKeyID.
//   - retire, destroy-version: BranchKeyID and Version.
//   - disable, enable: BranchKeyID, and Version to change one version only.
//   - rewrap: KMSKeyARN, the key ARN to move under, and BranchKeyID, or ""
//     for every key in the store (then governed by the "*" policy).
//   - set-policy: NewPolicy only (its Scope says what it governs).
//   - recover: EscrowKey, the escrow key to reassemble, and KMSKeyARN,
//     the KMS key the recovered data keys are wrapped to; governed by the
//     "*" policy, and needing the quorum of every installed policy, as a
//     rewrap of every key does.
//
// A field that does not apply must be empty.
type Change struct {
	Action      Action
	BranchKeyID string
	Version     string
	KMSKeyARN   string
	NewPolicy   *Policy
	// EscrowKey is EscrowKeyDigest of the escrow public key a recover
	// change reassembles the private key of (all zero otherwise).
	EscrowKey [32]byte
}

// target is the key (or scope) the change is about: what the policy in
// force is looked up by, and what audit records name (hashed).
func (c Change) target() string {
	if c.Action == ActionSetPolicy && c.NewPolicy != nil {
		return c.NewPolicy.Scope
	}
	return c.BranchKeyID
}

// check reports whether c's fields fit its action.
func (c Change) check() error {
	if !c.Action.IsChange() {
		return fmt.Errorf("%w: action %s is not a change", ErrInvalid, c.Action)
	}
	if c.Action == ActionSetPolicy {
		if c.NewPolicy == nil || c.BranchKeyID != "" || c.Version != "" || c.KMSKeyARN != "" {
			return fmt.Errorf("%w: a set-policy change carries the new policy and nothing else", ErrInvalid)
		}
		return c.NewPolicy.Validate()
	}
	if c.NewPolicy != nil {
		return fmt.Errorf("%w: only set-policy carries a policy", ErrInvalid)
	}
	if (c.Action == ActionRecover) != (c.EscrowKey != [32]byte{}) {
		return fmt.Errorf("%w: an escrow key goes with recover, and only with recover", ErrInvalid)
	}
	if c.Action == ActionRecover && c.BranchKeyID != "" {
		return fmt.Errorf("%w: recover names no branch key (the \"*\" policy governs it)", ErrInvalid)
	}
	if c.BranchKeyID != "" || c.Action != ActionRewrap && c.Action != ActionRecover {
		if err := keystore.CheckID(c.BranchKeyID); err != nil {
			return fmt.Errorf("%w: the change's branch key id: %w", ErrInvalid, err)
		}
	}
	switch c.Action {
	case ActionRetire, ActionDestroyVersion:
		if err := keystore.CheckVersion(c.Version); err != nil {
			return fmt.Errorf("%w: %s needs the version: %w", ErrInvalid, c.Action, err)
		}
	case ActionDisable, ActionEnable:
		if c.Version != "" {
			if err := keystore.CheckVersion(c.Version); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalid, err)
			}
		}
	default:
		if c.Version != "" {
			return fmt.Errorf("%w: %s takes no version", ErrInvalid, c.Action)
		}
	}
	takesARN := c.Action == ActionRewrap || c.Action == ActionRecover
	if takesARN != (c.KMSKeyARN != "") {
		return fmt.Errorf("%w: a KMS key ARN goes with rewrap and recover, and only with them", ErrInvalid)
	}
	if takesARN && (!isKeyARN(c.KMSKeyARN) || len(c.KMSKeyARN) > keystore.MaxKMSKeyARNLen) {
		return fmt.Errorf("%w: %s needs a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)", ErrInvalid, c.Action)
	}
	return nil
}

// Request is a change proposed for approval. Make one with
// Authority.Propose; send MarshalBinary's bytes to each approver, who
// reads them back with ParseRequest, reviews the change and signs it
// (Signer.Approve).
type Request struct {
	Change
	// Proposer is the custodian who proposed the change.
	Proposer string
	// PolicyDigest is the Digest of the policy in force when the request
	// was proposed (all zero if none): a request is refused once that
	// policy is replaced.
	PolicyDigest [32]byte
	// Expiry is when the request stops being valid, at most
	// MaxRequestLifetime after it is authorized; encoded in whole seconds.
	Expiry time.Time
	// Nonce makes each request unique (random, chosen by Propose).
	Nonce [16]byte
}

// RequestID is SHA-256 of a request's encoding: what approvals name and
// what the store records once the request is applied.
type RequestID [32]byte

// String is the id in hex.
func (id RequestID) String() string { return hex.EncodeToString(id[:]) }

// MarshalBinary returns the request's canonical encoding
// (docs/FORMAT.md), checking its fields first.
func (r *Request) MarshalBinary() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 256))
	b.AddUint8(requestVersion)
	b.AddUint8(uint8(r.Action))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(r.Proposer)) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(r.BranchKeyID)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(r.Version)) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(r.KMSKeyARN)) })
	b.AddBytes(r.PolicyDigest[:])
	b.AddUint64(uint64(r.Expiry.Unix()))
	b.AddBytes(r.Nonce[:])
	var policy []byte
	if r.NewPolicy != nil {
		var err error
		if policy, err = r.NewPolicy.MarshalBinary(); err != nil {
			return nil, err
		}
	}
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(policy) })
	if r.Action == ActionRecover {
		// Only recover requests carry it, so every other request keeps the
		// encoding it had before recover existed.
		b.AddBytes(r.EscrowKey[:])
	}
	return b.Bytes()
}

func (r *Request) check() error {
	if r == nil {
		return fmt.Errorf("%w: no request", ErrInvalid)
	}
	if err := checkName(r.Proposer); err != nil {
		return fmt.Errorf("the proposer: %w", err)
	}
	if r.Expiry.Unix() <= 0 {
		return fmt.Errorf("%w: the request has no expiry", ErrInvalid)
	}
	return r.Change.check()
}

// ID returns the request's RequestID.
func (r *Request) ID() (RequestID, error) {
	enc, err := r.MarshalBinary()
	if err != nil {
		return RequestID{}, err
	}
	return sha256.Sum256(enc), nil
}

// ParseRequest decodes an encoded request, refusing (ErrInvalid) anything
// but the canonical encoding of a valid request.
func ParseRequest(b []byte) (*Request, error) {
	if len(b) > maxRequestSize {
		return nil, fmt.Errorf("%w: an encoded request of %d bytes, the cap is %d", ErrInvalid, len(b), maxRequestSize)
	}
	s := cryptobyte.String(b)
	var version, action uint8
	if !s.ReadUint8(&version) || version != requestVersion {
		return nil, fmt.Errorf("%w: request encoding version %d; this phicrypt reads version %d", ErrInvalid, version, requestVersion)
	}
	r := &Request{}
	var proposer, id, ver, arn, policy cryptobyte.String
	var expiry uint64
	if !s.ReadUint8(&action) || !s.ReadUint8LengthPrefixed(&proposer) || !s.ReadUint16LengthPrefixed(&id) ||
		!s.ReadUint8LengthPrefixed(&ver) || !s.ReadUint16LengthPrefixed(&arn) || !s.CopyBytes(r.PolicyDigest[:]) ||
		!s.ReadUint64(&expiry) || !s.CopyBytes(r.Nonce[:]) || !s.ReadUint24LengthPrefixed(&policy) ||
		Action(action) == ActionRecover && !s.CopyBytes(r.EscrowKey[:]) {
		return nil, errTruncated("request")
	}
	if expiry > 1<<62 {
		return nil, fmt.Errorf("%w: the request's expiry is out of range", ErrInvalid)
	}
	r.Action, r.Proposer, r.BranchKeyID, r.Version, r.KMSKeyARN = Action(action), string(proposer), string(id), string(ver), string(arn)
	r.Expiry = time.Unix(int64(expiry), 0).UTC()
	if len(policy) > 0 {
		p, err := ParsePolicy(policy)
		if err != nil {
			return nil, fmt.Errorf("the request's new policy: %w", err)
		}
		r.NewPolicy = p
	}
	if err := mustReencode(b, r.MarshalBinary); err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	return r, nil
}

// signingMessage is what an approval signs: the domain prefix and the
// request's encoding.
func signingMessage(enc []byte) []byte {
	return append([]byte(signingDomain), enc...)
}

// Approval is one custodian's Ed25519 signature over a request.
type Approval struct {
	// Signer is the custodian's name in the policy.
	Signer string
	// Request is the id of the request approved.
	Request RequestID
	// Signature is Ed25519 over "phicrypt change request v1\x00" and the
	// request's encoding.
	Signature []byte
}

// MarshalBinary encodes the approval (docs/FORMAT.md), to send it back to
// whoever collects approvals.
func (a Approval) MarshalBinary() ([]byte, error) {
	if err := checkName(a.Signer); err != nil {
		return nil, fmt.Errorf("the signer: %w", err)
	}
	if len(a.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: an Ed25519 signature is %d bytes, not %d", ErrInvalid, ed25519.SignatureSize, len(a.Signature))
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, maxApprovalSize))
	b.AddUint8(approvalVersion)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(a.Signer)) })
	b.AddBytes(a.Request[:])
	b.AddBytes(a.Signature)
	return b.Bytes()
}

// ParseApproval decodes an encoded approval (ErrInvalid if malformed). It
// does not verify the signature: Authority.Authorize does.
func ParseApproval(b []byte) (Approval, error) {
	if len(b) > maxApprovalSize {
		return Approval{}, fmt.Errorf("%w: an encoded approval of %d bytes, the cap is %d", ErrInvalid, len(b), maxApprovalSize)
	}
	s := cryptobyte.String(b)
	var version uint8
	var signer cryptobyte.String
	var a Approval
	if !s.ReadUint8(&version) || version != approvalVersion {
		return Approval{}, fmt.Errorf("%w: approval encoding version %d; this phicrypt reads version %d", ErrInvalid, version, approvalVersion)
	}
	a.Signature = make([]byte, ed25519.SignatureSize)
	if !s.ReadUint8LengthPrefixed(&signer) || !s.CopyBytes(a.Request[:]) || !s.CopyBytes(a.Signature) || !s.Empty() {
		return Approval{}, fmt.Errorf("%w: an approval is its version, signer, request id and a %d-byte signature", ErrInvalid, ed25519.SignatureSize)
	}
	a.Signer = string(signer)
	if err := checkName(a.Signer); err != nil {
		return Approval{}, fmt.Errorf("the signer: %w", err)
	}
	return a, nil
}

// Signer approves requests with a custodian's Ed25519 private key. It
// never prints the key.
type Signer struct {
	name string
	key  ed25519.PrivateKey
}

// NewSigner returns a Signer for the custodian named name, holding a copy
// of key.
func NewSigner(name string, key ed25519.PrivateKey) (*Signer, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: an Ed25519 private key is %d bytes", ErrInvalid, ed25519.PrivateKeySize)
	}
	return &Signer{name: name, key: bytes.Clone(key)}, nil
}

// Principal returns the signer's name and public key, to list in a
// policy.
func (s *Signer) Principal() Principal {
	return Principal{Name: s.name, PublicKey: s.key.Public().(ed25519.PublicKey)}
}

// Approve signs r. Review r's change before approving it: the signature
// covers exactly what r's encoding says.
func (s *Signer) Approve(r *Request) (Approval, error) {
	enc, err := r.MarshalBinary()
	if err != nil {
		return Approval{}, err
	}
	return Approval{Signer: s.name, Request: sha256.Sum256(enc), Signature: ed25519.Sign(s.key, signingMessage(enc))}, nil
}

// String names the signer and its key's fingerprint, never the key.
func (s Signer) String() string {
	if s.key == nil {
		return "custody.Signer{}"
	}
	return "custody.Signer{" + s.name + ", " + KeyFingerprint(s.key.Public().(ed25519.PublicKey)) + "}"
}

// Format implements fmt.Formatter: every verb prints String.
func (s Signer) Format(f fmt.State, _ rune) { formatRedacted(f, s.String()) }

// LogValue implements slog.LogValuer.
func (s Signer) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON encodes String, never the key.
func (s Signer) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// String describes the request with the branch key's fingerprint, never
// its id.
func (r Request) String() string {
	var what string
	switch {
	case r.Action == ActionSetPolicy && r.NewPolicy != nil:
		what = r.NewPolicy.String()
	case r.Action == ActionRecover:
		what = "escrow key " + EscrowKeyFingerprint(r.EscrowKey)
	case r.BranchKeyID == "":
		what = "every key"
	default:
		what = keystore.Fingerprint(r.BranchKeyID)
	}
	if r.Version != "" {
		what += " version " + r.Version
	}
	if r.KMSKeyARN != "" {
		what += " to " + r.KMSKeyARN
	}
	return fmt.Sprintf("Request{%s %s, proposed by %s, expires %s}", r.Action, what, safeName(r.Proposer), r.Expiry.UTC().Format(time.RFC3339))
}

// Format implements fmt.Formatter: every verb prints String.
func (r Request) Format(f fmt.State, _ rune) { formatRedacted(f, r.String()) }

// LogValue implements slog.LogValuer.
func (r Request) LogValue() slog.Value { return slog.StringValue(r.String()) }

// MarshalJSON encodes String: to send a request, use MarshalBinary.
func (r Request) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }

// String describes the change with the branch key's fingerprint.
func (c Change) String() string { return Request{Change: c}.String() }

// Format implements fmt.Formatter: every verb prints String.
func (c Change) Format(f fmt.State, _ rune) { formatRedacted(f, c.String()) }

// LogValue implements slog.LogValuer.
func (c Change) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalJSON encodes String.
func (c Change) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// signed is a request with the approvals that authorized it: the value of
// a stored policy and of an applied-request record.
type signed struct {
	request   []byte
	approvals []Approval
}

func (s signed) marshal() ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, len(s.request)+64*len(s.approvals)))
	b.AddUint8(signedVersion)
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.request) })
	b.AddUint8(uint8(len(s.approvals)))
	for _, a := range s.approvals {
		enc, err := a.MarshalBinary()
		if err != nil {
			return nil, err
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(enc) })
	}
	return b.Bytes()
}

func parseSigned(b []byte) (signed, error) {
	if len(b) > maxSignedSize {
		return signed{}, fmt.Errorf("%w: a signed record of %d bytes, the cap is %d", ErrInvalid, len(b), maxSignedSize)
	}
	s := cryptobyte.String(b)
	var version, n uint8
	var req cryptobyte.String
	if !s.ReadUint8(&version) || version != signedVersion {
		return signed{}, fmt.Errorf("%w: signed record version %d; this phicrypt reads version %d", ErrInvalid, version, signedVersion)
	}
	if !s.ReadUint24LengthPrefixed(&req) || !s.ReadUint8(&n) || int(n) > MaxApprovals {
		return signed{}, fmt.Errorf("%w: a signed record ends early or carries over %d approvals", ErrInvalid, MaxApprovals)
	}
	out := signed{request: bytes.Clone(req)}
	for range n {
		var enc cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&enc) {
			return signed{}, errTruncated("signed record")
		}
		a, err := ParseApproval(enc)
		if err != nil {
			return signed{}, err
		}
		out.approvals = append(out.approvals, a)
	}
	if !s.Empty() {
		return signed{}, fmt.Errorf("%w: trailing bytes after a signed record", ErrInvalid)
	}
	return out, nil
}
