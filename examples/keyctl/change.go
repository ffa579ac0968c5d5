package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/phicrypt/phicrypt/keystore"
)

// A change that loses access (retire, disable, enable, destroy) travels as
// a change file: the request a custodian proposed and the approvals
// custodians added, each an Ed25519 signature over the request's canonical
// bytes. apply runs the request once Quorum distinct custodians of the
// trust policy have signed it, before it expires, and once only.
//
// The file is JSON, mode 0600 (it names the branch key id):
//
//	{"request": {...}, "approvals": [{"signer": "alice", "signature": "<base64>"}]}

// Change kinds.
const (
	kindRetire  = "retire"
	kindDisable = "disable"
	kindEnable  = "enable"
	kindDestroy = "destroy"
)

var changeKinds = []string{kindRetire, kindDisable, kindEnable, kindDestroy}

const (
	requestVersion = 1
	// requestDomain separates keyctl's signatures from any other use of a
	// custodian's key.
	requestDomain = "phicrypt keyctl change request v1\n"
	// maxApprovals caps the approvals a change file may carry.
	maxApprovals = 32
	// maxReasonLen caps a request's reason (the audit log's is 256 bytes).
	maxReasonLen = 200
	// maxExpiry caps how long a request stays valid.
	maxExpiry = 30 * 24 * time.Hour
)

// request is one proposed change.
type request struct {
	Version int    `json:"version"`
	Kind    string `json:"kind"`
	// BranchKeyID and KeyVersion name what retire and destroy act on
	// (destroy without KeyVersion destroys every version of the key;
	// retire retires every version older than KeyVersion).
	BranchKeyID string `json:"branch_key_id,omitempty"`
	KeyVersion  string `json:"key_version,omitempty"`
	// KMSKeyARN is the KMS key disable and enable act on.
	KMSKeyARN string    `json:"kms_key_arn,omitempty"`
	Reason    string    `json:"reason"`
	Proposer  string    `json:"proposer"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// Nonce makes two identical proposals two requests.
	Nonce string `json:"nonce"`
}

// approval is one custodian's signature over a request.
type approval struct {
	Signer    string `json:"signer"`
	Signature string `json:"signature"`
}

// changeFile is what propose writes and approve and apply read.
type changeFile struct {
	Request   request    `json:"request"`
	Approvals []approval `json:"approvals"`
}

// newRequest fills in a request's version, times and nonce.
func newRequest(r request, now time.Time, ttl time.Duration) (request, error) {
	if ttl <= 0 || ttl > maxExpiry {
		return r, usagef("--expires must be between 1s and %v", maxExpiry)
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return r, err
	}
	r.Version = requestVersion
	r.CreatedAt = now.UTC().Truncate(time.Second)
	r.ExpiresAt = r.CreatedAt.Add(ttl)
	r.Nonce = base64.StdEncoding.EncodeToString(nonce[:])
	return r, r.check()
}

// check validates a request's fields.
func (r request) check() error {
	if r.Version != requestVersion {
		return fmt.Errorf("change request version %d: this keyctl reads version %d", r.Version, requestVersion)
	}
	if !slices.Contains(changeKinds, r.Kind) {
		return fmt.Errorf("change kind %q: want one of %s", r.Kind, strings.Join(changeKinds, ", "))
	}
	switch r.Kind {
	case kindRetire, kindDestroy:
		if err := keystore.CheckID(r.BranchKeyID); err != nil {
			return fmt.Errorf("the %s request's branch key id is not valid", r.Kind)
		}
		if r.KeyVersion != "" || r.Kind == kindRetire {
			if err := keystore.CheckVersion(r.KeyVersion); err != nil {
				return fmt.Errorf("the %s request's version is not a branch key version", r.Kind)
			}
		}
	case kindDisable, kindEnable:
		if !strings.HasPrefix(r.KMSKeyARN, "arn:") || len(r.KMSKeyARN) > keystore.MaxKMSKeyARNLen {
			return fmt.Errorf("the %s request names no KMS key ARN", r.Kind)
		}
	}
	if len(r.Reason) > maxReasonLen {
		return usagef("the reason is longer than %d bytes", maxReasonLen)
	}
	if err := checkName(r.Proposer); err != nil {
		return err
	}
	if !r.ExpiresAt.After(r.CreatedAt) {
		return errors.New("the change request expires before it was made")
	}
	return nil
}

// canonical is the bytes custodians sign: a domain string and the
// request's JSON, as encoding/json writes the struct (fields in
// declaration order, times in RFC 3339 UTC), so one request has one
// encoding whatever the file's spacing.
func (r request) canonical() []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic("keyctl: a request does not marshal: " + err.Error())
	}
	return append([]byte(requestDomain), b...)
}

// ID names the request in the audit log: the first 16 bytes of the SHA-256
// of its canonical bytes, in hex.
func (r request) ID() string {
	sum := sha256.Sum256(r.canonical())
	return hex.EncodeToString(sum[:16])
}

// subject describes what the request acts on without the branch key id.
func (r request) subject() string {
	switch r.Kind {
	case kindDisable, kindEnable:
		return "KMS key " + r.KMSKeyARN
	}
	s := keystore.Fingerprint(r.BranchKeyID)
	if r.KeyVersion != "" {
		if r.Kind == kindRetire {
			return s + " versions older than " + r.KeyVersion
		}
		return s + " version " + r.KeyVersion
	}
	return s + " (every version)"
}

// readChangeFile reads and checks a change file.
func readChangeFile(path string) (*changeFile, error) {
	b, err := readSmallFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the change file: %w", err)
	}
	var f changeFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s is not a keyctl change file", path)
	}
	if err := f.Request.check(); err != nil {
		return nil, err
	}
	if len(f.Approvals) > maxApprovals {
		return nil, fmt.Errorf("%s carries more than %d approvals", path, maxApprovals)
	}
	return &f, nil
}

// write saves the change file with mode 0600.
func (f *changeFile) write(path string) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), 0o600)
}

// Errors of authorization; apply records each refusal in the audit log.
var (
	errNotCustodian    = errors.New("an approval is signed by someone who is not a custodian of the trust policy")
	errForgedApproval  = errors.New("an approval's signature does not verify under its custodian's key")
	errDuplicateSigner = errors.New("a custodian signed more than once")
	errTooFewApprovals = errors.New("too few custodians approved the change")
	errExpired         = errors.New("the change request has expired; propose it again")
	errReplayed        = errors.New("the change request was applied already")
)

// trustPolicy is who may approve changes and how many must.
type trustPolicy struct {
	custodians map[string]ed25519.PublicKey
	quorum     int
}

// newTrustPolicy checks the configuration's custodians and quorum.
func newTrustPolicy(cs []custodian, quorum int) (*trustPolicy, error) {
	p := &trustPolicy{custodians: map[string]ed25519.PublicKey{}, quorum: quorum}
	for _, c := range cs {
		if err := checkName(c.Name); err != nil {
			return nil, err
		}
		pub, err := parsePublicKey(c.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("custodian %s: %v", c.Name, err)
		}
		if p.custodians[c.Name] != nil {
			return nil, fmt.Errorf("custodian %s is listed twice", c.Name)
		}
		p.custodians[c.Name] = pub
	}
	if quorum < 1 || quorum > len(cs) {
		return nil, fmt.Errorf("the trust policy's quorum %d is not between 1 and its %d custodian(s)", quorum, len(cs))
	}
	return p, nil
}

// authorize checks f's approvals against the policy at time now and
// returns the approvers' names, sorted. It refuses the whole change if any
// approval is by a non-custodian, forged or repeated: a change file that
// carries one has been tampered with, and its good approvals do not excuse
// it.
func (p *trustPolicy) authorize(f *changeFile, now time.Time) ([]string, error) {
	if !now.Before(f.Request.ExpiresAt) {
		return nil, errExpired
	}
	msg := f.Request.canonical()
	var names []string
	for _, a := range f.Approvals {
		pub := p.custodians[a.Signer]
		if pub == nil {
			return nil, fmt.Errorf("%w (%q)", errNotCustodian, a.Signer)
		}
		sig, err := base64.StdEncoding.DecodeString(a.Signature)
		if err != nil || !ed25519.Verify(pub, msg, sig) {
			return nil, fmt.Errorf("%w (%s)", errForgedApproval, a.Signer)
		}
		if slices.Contains(names, a.Signer) {
			return nil, fmt.Errorf("%w (%s)", errDuplicateSigner, a.Signer)
		}
		names = append(names, a.Signer)
	}
	if len(names) < p.quorum {
		return nil, fmt.Errorf("%w: %d of the %d the quorum needs", errTooFewApprovals, len(names), p.quorum)
	}
	slices.Sort(names)
	return names, nil
}

// mergeChangeFiles joins the approvals of several copies of one request
// (each custodian may have signed a copy of their own).
func mergeChangeFiles(paths []string) (*changeFile, error) {
	var merged *changeFile
	for _, p := range paths {
		f, err := readChangeFile(p)
		if err != nil {
			return nil, err
		}
		if merged == nil {
			merged = f
			continue
		}
		if !bytes.Equal(f.Request.canonical(), merged.Request.canonical()) {
			return nil, usagef("%s holds a different request from %s", p, paths[0])
		}
		for _, a := range f.Approvals {
			if !slices.Contains(merged.Approvals, a) {
				merged.Approvals = append(merged.Approvals, a)
			}
		}
		if len(merged.Approvals) > maxApprovals {
			return nil, fmt.Errorf("the change files carry more than %d approvals", maxApprovals)
		}
	}
	return merged, nil
}

func encodeSig(sig []byte) string { return base64.StdEncoding.EncodeToString(sig) }
