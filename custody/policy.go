package custody

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/phicrypt/phicrypt/keystore"
	"golang.org/x/crypto/cryptobyte"
)

// Roles and signed policies (docs/FORMAT.md, "Custody policies and change
// requests"). A policy names, for the keys of one scope, the principals
// who hold each role and how many custodians must approve each kind of
// change. One principal never holds the custodian and the service role on
// the same policy.

// Role is what a principal may do under a policy. The zero Role is not
// valid.
type Role uint8

const (
	// RoleCustodian administers keys (every Action for which IsChange is
	// true, each with its quorum) and never uses them.
	RoleCustodian Role = 1
	// RoleService encrypts and decrypts, and rotates only where the
	// policy's ServiceMayRotate says so.
	RoleService Role = 2
	// RoleAuditor reads and verifies the audit log.
	RoleAuditor Role = 3
)

// String is the role's name: "custodian", "service" or "auditor".
func (r Role) String() string {
	switch r {
	case RoleCustodian:
		return "custodian"
	case RoleService:
		return "service"
	case RoleAuditor:
		return "auditor"
	}
	return "invalid"
}

// Action is something a principal may ask to do to a key. The changes
// (create to set-policy, and recover) are made through quorum-signed
// Requests; the others are uses a role carries by itself. The zero Action is not valid.
// The numbers are part of the encodings in docs/FORMAT.md.
type Action uint8

const (
	ActionCreate         Action = 1  // create a branch key
	ActionRotate         Action = 2  // make a new version active on demand
	ActionRetire         Action = 3  // retire a version (no longer decrypts)
	ActionDisable        Action = 4  // disable a key or version
	ActionEnable         Action = 5  // enable it again
	ActionDestroyVersion Action = 6  // destroy one version (crypto-shredding)
	ActionDestroyKey     Action = 7  // destroy every version of a key
	ActionRewrap         Action = 8  // move wrapped versions under another KMS key
	ActionSetPolicy      Action = 9  // install or replace a policy
	ActionRotateByUsage  Action = 10 // rotate because a usage cap was reached
	ActionRotateByAge    Action = 11 // rotate because the active version is old
	ActionEncrypt        Action = 12 // encrypt under a key
	ActionDecrypt        Action = 13 // decrypt under a key
	ActionReadAudit      Action = 14 // read and verify the audit log
	// ActionRecover reassembles an escrow private key from custodians'
	// shares and rewraps data keys with it (break-glass recovery). It is a
	// change, numbered after the uses so that every existing encoding keeps
	// its meaning.
	ActionRecover Action = 15
)

var actionNames = [...]string{
	ActionCreate: "create", ActionRotate: "rotate", ActionRetire: "retire",
	ActionDisable: "disable", ActionEnable: "enable", ActionDestroyVersion: "destroy-version",
	ActionDestroyKey: "destroy-key", ActionRewrap: "rewrap", ActionSetPolicy: "set-policy",
	ActionRotateByUsage: "rotate-by-usage", ActionRotateByAge: "rotate-by-age",
	ActionEncrypt: "encrypt", ActionDecrypt: "decrypt", ActionReadAudit: "read-audit",
	ActionRecover: "recover",
}

// String is the action's name ("destroy-version", "set-policy", ...).
func (a Action) String() string {
	if a >= ActionCreate && a <= ActionRecover {
		return actionNames[a]
	}
	return "invalid"
}

// IsChange reports whether a is an administrative change: one that needs
// a quorum of custodians' approvals (a Request).
func (a Action) IsChange() bool {
	return a >= ActionCreate && a <= ActionSetPolicy || a == ActionRecover
}

// changeCount is how many actions are changes: the most quorum entries a
// policy holds.
const changeCount = int(ActionSetPolicy) + 1

// Caps on policies (attacker-controlled counts and sizes in stored and
// transmitted encodings).
const (
	MaxPrincipalName = 128 // bytes of a principal's name
	MaxAWSPrincipal  = 512 // bytes of a principal's IAM ARN
	MaxCustodians    = 16  // custodians per policy (audit.MaxApprovers)
	MaxServices      = 48  // services per policy
	MaxAuditors      = 16  // auditors per policy
	// MaxScope is the longest scope: a branch key id, or a prefix and "*".
	MaxScope = keystore.MaxBranchKeyIDLen + 1
	// maxPolicySize bounds an encoded policy.
	maxPolicySize = 1 + 2 + MaxScope + 8 + 1 + 3 +
		(MaxCustodians+MaxServices+MaxAuditors)*(1+MaxPrincipalName+ed25519.PublicKeySize+2+MaxAWSPrincipal) +
		1 + 2*changeCount
)

// policyVersion is the first byte of an encoded policy.
const policyVersion = 1

// Principal is a person or program that signs with an Ed25519 key. Its
// name appears in audit records and errors, so it must not be PHI.
type Principal struct {
	// Name is 1 to MaxPrincipalName bytes of printable ASCII (space to
	// tilde), neither starting nor ending with a space.
	Name string
	// PublicKey verifies the principal's approvals.
	PublicKey ed25519.PublicKey
	// AWSPrincipal, optional, is the IAM user or role ARN (or STS
	// assumed-role ARN) the principal acts as in KMS, what a KMS key policy
	// names (AWSPrincipals); at most MaxAWSPrincipal bytes.
	AWSPrincipal string
}

// String is the principal's name and key fingerprint.
func (p Principal) String() string {
	return "Principal{" + p.Name + ", " + KeyFingerprint(p.PublicKey) + "}"
}

// KeyFingerprint names an Ed25519 public key in errors and logs: "ed25519
// #" and the first eight bytes of SHA-256 of the key in hex.
func KeyFingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519 #" + hex.EncodeToString(sum[:8])
}

// checkName reports whether name is a valid principal name.
func checkName(name string) error {
	if name == "" || len(name) > MaxPrincipalName || name[0] == ' ' || name[len(name)-1] == ' ' {
		return fmt.Errorf("%w: a principal name is 1 to %d bytes of printable ASCII without leading or trailing spaces", ErrInvalid, MaxPrincipalName)
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] > 0x7e {
			return fmt.Errorf("%w: a principal name is printable ASCII (space to tilde)", ErrInvalid)
		}
	}
	return nil
}

func (p Principal) check() error {
	if err := checkName(p.Name); err != nil {
		return err
	}
	if len(p.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: principal %s: an Ed25519 public key is %d bytes, not %d", ErrInvalid, p.Name, ed25519.PublicKeySize, len(p.PublicKey))
	}
	if p.AWSPrincipal != "" && (len(p.AWSPrincipal) > MaxAWSPrincipal || checkPrincipalARN(p.AWSPrincipal) != nil) {
		return fmt.Errorf("%w: principal %s: the AWS principal is an IAM user or role ARN (arn:aws:iam::ACCOUNT:role/NAME) of at most %d bytes", ErrInvalid, p.Name, MaxAWSPrincipal)
	}
	return nil
}

// ServiceRotation says when a service may rotate a key by itself.
type ServiceRotation struct {
	ByUsage bool // when the active version reached its usage cap
	ByAge   bool // when the active version reached its maximum age
}

// Policy says who holds which role on the keys of Scope, and how many
// custodians must approve each kind of change. A Policy takes effect only
// when installed through an Authority, with the approvals it needs.
type Policy struct {
	// Scope is the keys the policy governs: one branch key id, a prefix
	// ending in "*" (every id that starts with the prefix), or "*" (every
	// key). For a key, the most specific policy wins: its own id, then the
	// longest matching prefix, then "*". A branch key id that itself ends
	// in "*" can only be governed by a prefix scope.
	Scope string
	// Revision counts the policies installed for Scope: 1 for the first,
	// and each replacement one more than the policy it replaces.
	Revision uint64
	// Custodians, Services and Auditors hold the three roles. At least one
	// custodian; N, the custodians, at most MaxCustodians.
	Custodians, Services, Auditors []Principal
	// Quorum is M, the number of custodians' approvals each change needs,
	// 1 to N. ActionSetPolicy must be present, and at least every other
	// change's quorum, so that no change of the policy is made by fewer
	// custodians than any quorum it names. A change absent from the map
	// needs the set-policy quorum, except ActionCreate, which needs 1.
	Quorum map[Action]int
	// ServiceMayRotate lets services rotate by usage cap or age.
	ServiceMayRotate ServiceRotation
}

// QuorumFor is the number of custodians' approvals change a needs.
func (p *Policy) QuorumFor(a Action) int {
	if m, ok := p.Quorum[a]; ok {
		return m
	}
	if a == ActionCreate {
		return 1
	}
	return p.Quorum[ActionSetPolicy]
}

// Covers reports whether the policy's scope includes branch key id.
func (p *Policy) Covers(id string) bool {
	prefix, ok := strings.CutSuffix(p.Scope, "*")
	if !ok {
		return id == p.Scope
	}
	return strings.HasPrefix(id, prefix)
}

// specificity orders scopes: an exact id beats every prefix, and a longer
// prefix a shorter one.
func specificity(scope string) int {
	if strings.HasSuffix(scope, "*") {
		return len(scope) - 1
	}
	return MaxScope + 1
}

// coversScope reports whether the keys of scope s are all governed by p
// (p's scope is s, or a prefix scope that includes every key of s).
func (p *Policy) coversScope(s string) bool {
	if p.Scope == s {
		return true
	}
	prefix, ok := strings.CutSuffix(p.Scope, "*")
	return ok && strings.HasPrefix(strings.TrimSuffix(s, "*"), prefix)
}

// checkScope reports whether s is a valid scope.
func checkScope(s string) error {
	if s == "*" {
		return nil
	}
	prefix, ok := strings.CutSuffix(s, "*")
	if !ok {
		prefix = s
	}
	if prefix == "" || len(prefix) > keystore.MaxBranchKeyIDLen || !utf8.ValidString(prefix) || strings.ContainsRune(prefix, 0) {
		return fmt.Errorf("%w: a scope is a branch key id, a prefix ending in \"*\", or \"*\"", ErrInvalid)
	}
	return nil
}

// scopeName names a scope in errors without its text (which may hold a
// branch key id): "every key" for "*", else a fingerprint.
func scopeName(s string) string {
	if s == "*" {
		return "scope * (every key)"
	}
	sum := sha256.Sum256([]byte(s))
	return "scope #" + hex.EncodeToString(sum[:4])
}

// roles lists the policy's role lists, in encoding order.
func (p *Policy) roles() [3]struct {
	role Role
	list []Principal
	max  int
} {
	return [3]struct {
		role Role
		list []Principal
		max  int
	}{{RoleCustodian, p.Custodians, MaxCustodians}, {RoleService, p.Services, MaxServices}, {RoleAuditor, p.Auditors, MaxAuditors}}
}

// Validate checks the policy: scope, principals, unique names and keys,
// quorums, and separation of duty. A principal (matched by name or by
// public key) who is both custodian and service gets ErrRoleConflict,
// naming the principal and both roles.
func (p *Policy) Validate() error {
	if err := checkScope(p.Scope); err != nil {
		return err
	}
	if p.Revision == 0 {
		return fmt.Errorf("%w: a policy's revision starts at 1", ErrInvalid)
	}
	if err := p.checkPrincipals(); err != nil {
		return err
	}
	if err := p.checkSeparation(); err != nil {
		return err
	}
	if err := p.checkUnique(); err != nil {
		return err
	}
	return p.checkQuorum()
}

// checkPrincipals checks the caps and each principal.
func (p *Policy) checkPrincipals() error {
	if len(p.Custodians) == 0 {
		return fmt.Errorf("%w: a policy needs at least one custodian", ErrInvalid)
	}
	for _, r := range p.roles() {
		if len(r.list) > r.max {
			return fmt.Errorf("%w: %d %ss, the cap is %d", ErrInvalid, len(r.list), r.role, r.max)
		}
		for _, m := range r.list {
			if err := m.check(); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkUnique checks that a name names one key and a key one name across
// the policy (a principal may hold several roles, under one name and
// key), with no duplicate within a role.
func (p *Policy) checkUnique() error {
	keyOf := make(map[string]string)  // name -> key
	nameOf := make(map[string]string) // key -> name
	for _, r := range p.roles() {
		seen := make(map[string]bool, len(r.list))
		for _, m := range r.list {
			if seen[m.Name] {
				return fmt.Errorf("%w: principal %s is listed twice as %s", ErrInvalid, m.Name, r.role)
			}
			seen[m.Name] = true
			k := string(m.PublicKey)
			if prev, ok := keyOf[m.Name]; ok && prev != k {
				return fmt.Errorf("%w: principal %s has two different public keys", ErrInvalid, m.Name)
			}
			if prev, ok := nameOf[k]; ok && prev != m.Name {
				return fmt.Errorf("%w: principals %s and %s share the public key %s", ErrInvalid, prev, m.Name, KeyFingerprint(m.PublicKey))
			}
			keyOf[m.Name], nameOf[k] = k, m.Name
		}
	}
	return nil
}

// checkSeparation refuses a principal who is both custodian and service,
// matched by name, by public key or by the AWS principal it acts as in KMS
// (ARNs compared without regard to case, as IAM names are).
func (p *Policy) checkSeparation() error {
	for _, c := range p.Custodians {
		for _, s := range p.Services {
			sameAWS := c.AWSPrincipal != "" && strings.EqualFold(c.AWSPrincipal, s.AWSPrincipal)
			if c.Name == s.Name || bytes.Equal(c.PublicKey, s.PublicKey) || sameAWS {
				who := c.Name
				switch {
				case c.Name != s.Name && sameAWS:
					who = c.Name + " (same AWS principal as " + s.Name + ")"
				case c.Name != s.Name:
					who = c.Name + " (same key as " + s.Name + ")"
				}
				return fmt.Errorf("%w: principal %s holds both the custodian and the service role; give each role its own principal and key", ErrRoleConflict, who)
			}
		}
	}
	return nil
}

// checkQuorum checks every quorum is 1 to N and set-policy's the highest.
func (p *Policy) checkQuorum() error {
	n := len(p.Custodians)
	set, ok := p.Quorum[ActionSetPolicy]
	if !ok {
		return fmt.Errorf("%w: the policy needs a quorum for set-policy", ErrInvalid)
	}
	for _, a := range slices.Sorted(maps.Keys(p.Quorum)) {
		m := p.Quorum[a]
		switch {
		case !a.IsChange():
			return fmt.Errorf("%w: a quorum is set for %s, which is not a change", ErrInvalid, a)
		case m < 1 || m > n:
			return fmt.Errorf("%w: the quorum for %s is %d; it must be 1 to %d (the custodians)", ErrInvalid, a, m, n)
		case m > set:
			return fmt.Errorf("%w: the quorum for %s (%d) is above set-policy's (%d): fewer custodians could change the policy to lower it", ErrInvalid, a, m, set)
		}
	}
	return nil
}

// rolesOf returns the roles a principal name holds under p.
func (p *Policy) rolesOf(name string) []Role {
	var out []Role
	for _, r := range p.roles() {
		if slices.ContainsFunc(r.list, func(m Principal) bool { return m.Name == name }) {
			out = append(out, r.role)
		}
	}
	return out
}

// custodian returns the custodian named name.
func (p *Policy) custodian(name string) (Principal, bool) {
	i := slices.IndexFunc(p.Custodians, func(m Principal) bool { return m.Name == name })
	if i < 0 {
		return Principal{}, false
	}
	return p.Custodians[i], true
}

// Allows reports whether the principal named name may do a under the
// policy's roles, or why not (ErrNotPermitted): custodians may ask for
// changes (each still needs its quorum, through Authority.Authorize) and
// rotate by usage or age; services may encrypt and decrypt, and rotate by
// usage or age where ServiceMayRotate says so; auditors may read the
// audit log. A principal holding several roles may do what any allows.
func (p *Policy) Allows(name string, a Action) error {
	roles := p.rolesOf(name)
	if len(roles) == 0 {
		return fmt.Errorf("%w: principal %s holds no role in the policy for %s", ErrNotPermitted, safeName(name), scopeName(p.Scope))
	}
	for _, r := range roles {
		if p.roleAllows(r, a) {
			return nil
		}
	}
	return fmt.Errorf("%w: principal %s (%s) may not %s under the policy for %s", ErrNotPermitted, name, joinRoles(roles), a, scopeName(p.Scope))
}

func (p *Policy) roleAllows(r Role, a Action) bool {
	switch r {
	case RoleCustodian:
		return a.IsChange() || a == ActionRotateByUsage || a == ActionRotateByAge
	case RoleService:
		return a == ActionEncrypt || a == ActionDecrypt ||
			a == ActionRotateByUsage && p.ServiceMayRotate.ByUsage ||
			a == ActionRotateByAge && p.ServiceMayRotate.ByAge
	case RoleAuditor:
		return a == ActionReadAudit
	}
	return false
}

func joinRoles(roles []Role) string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = r.String()
	}
	return strings.Join(s, ", ")
}

// safeName is name if it is a valid principal name, else a placeholder:
// text from a request that failed validation is not echoed.
func safeName(name string) string {
	if checkName(name) != nil {
		return "(invalid name)"
	}
	return name
}

// AWSPrincipals returns the IAM ARNs the policy's custodians, services and
// auditors act as in KMS (those that name one), in the policy's order: the
// lists KMSKeyPolicyConfig takes, so the KMS key policy grants what the
// signed policy says.
func (p *Policy) AWSPrincipals() (custodians, services, auditors []string) {
	arns := func(list []Principal) []string {
		var out []string
		for _, m := range list {
			if m.AWSPrincipal != "" {
				out = append(out, m.AWSPrincipal)
			}
		}
		return out
	}
	return arns(p.Custodians), arns(p.Services), arns(p.Auditors)
}

// clone returns a deep copy of p.
func (p *Policy) clone() *Policy {
	c := *p
	c.Custodians = slices.Clone(p.Custodians)
	c.Services = slices.Clone(p.Services)
	c.Auditors = slices.Clone(p.Auditors)
	c.Quorum = maps.Clone(p.Quorum)
	return &c
}

// MarshalBinary returns the policy's canonical encoding (docs/FORMAT.md):
// one policy has one encoding, whatever the order of its lists. It
// validates the policy first.
func (p *Policy) MarshalBinary() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 256))
	b.AddUint8(policyVersion)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(p.Scope)) })
	b.AddUint64(p.Revision)
	var flags uint8
	if p.ServiceMayRotate.ByUsage {
		flags |= 1
	}
	if p.ServiceMayRotate.ByAge {
		flags |= 2
	}
	b.AddUint8(flags)
	for _, r := range p.roles() {
		list := slices.SortedFunc(slices.Values(r.list), func(x, y Principal) int { return strings.Compare(x.Name, y.Name) })
		b.AddUint8(uint8(len(list)))
		for _, m := range list {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.Name)) })
			b.AddBytes(m.PublicKey)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.AWSPrincipal)) })
		}
	}
	actions := slices.Sorted(maps.Keys(p.Quorum))
	b.AddUint8(uint8(len(actions)))
	for _, a := range actions {
		b.AddUint8(uint8(a))
		b.AddUint8(uint8(p.Quorum[a]))
	}
	return b.Bytes()
}

// Digest is SHA-256 of the policy's encoding: what a Request names as the
// policy in force when it was proposed.
func (p *Policy) Digest() ([32]byte, error) {
	enc, err := p.MarshalBinary()
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(enc), nil
}

// ParsePolicy decodes an encoded policy, refusing (ErrInvalid) anything
// but the canonical encoding of a valid policy.
func ParsePolicy(b []byte) (*Policy, error) {
	if len(b) > maxPolicySize {
		return nil, fmt.Errorf("%w: an encoded policy of %d bytes, the cap is %d", ErrInvalid, len(b), maxPolicySize)
	}
	s := cryptobyte.String(b)
	var version, flags, count uint8
	var scope cryptobyte.String
	p := &Policy{}
	if !s.ReadUint8(&version) || version != policyVersion {
		return nil, fmt.Errorf("%w: policy encoding version %d; this phicrypt reads version %d", ErrInvalid, version, policyVersion)
	}
	if !s.ReadUint16LengthPrefixed(&scope) || !s.ReadUint64(&p.Revision) || !s.ReadUint8(&flags) {
		return nil, errTruncated("policy")
	}
	p.Scope = string(scope)
	p.ServiceMayRotate = ServiceRotation{ByUsage: flags&1 != 0, ByAge: flags&2 != 0}
	for _, list := range []*[]Principal{&p.Custodians, &p.Services, &p.Auditors} {
		if !s.ReadUint8(&count) {
			return nil, errTruncated("policy")
		}
		for range count {
			m, ok := readPrincipal(&s)
			if !ok {
				return nil, errTruncated("policy")
			}
			*list = append(*list, m)
		}
	}
	if !s.ReadUint8(&count) {
		return nil, errTruncated("policy")
	}
	p.Quorum = make(map[Action]int, count)
	for range count {
		var a, m uint8
		if !s.ReadUint8(&a) || !s.ReadUint8(&m) {
			return nil, errTruncated("policy")
		}
		p.Quorum[Action(a)] = int(m)
	}
	if err := mustReencode(b, p.MarshalBinary); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return p, nil
}

func readPrincipal(s *cryptobyte.String) (Principal, bool) {
	var name, arn cryptobyte.String
	var key []byte
	if !s.ReadUint8LengthPrefixed(&name) || !s.ReadBytes(&key, ed25519.PublicKeySize) || !s.ReadUint16LengthPrefixed(&arn) {
		return Principal{}, false
	}
	return Principal{Name: string(name), PublicKey: bytes.Clone(key), AWSPrincipal: string(arn)}, true
}

// mustReencode checks that decoded data re-encodes to exactly b, so each
// value has one accepted encoding (sorted lists, no trailing bytes, no
// unused flags, no duplicate map entries).
func mustReencode(b []byte, encode func() ([]byte, error)) error {
	again, err := encode()
	if err != nil {
		return err
	}
	if !bytes.Equal(again, b) {
		return fmt.Errorf("%w: not the canonical encoding (unsorted, duplicated, unknown or trailing bytes)", ErrInvalid)
	}
	return nil
}

func errTruncated(what string) error {
	return fmt.Errorf("%w: the %s encoding ends early", ErrInvalid, what)
}

// Redaction: a policy's scope may be a branch key id, so it prints as a
// fingerprint; keys print as fingerprints.

// String describes the policy: scope fingerprint, revision, members.
func (p Policy) String() string {
	names := func(list []Principal) string {
		s := make([]string, len(list))
		for i, m := range list {
			s[i] = m.String()
		}
		return "[" + strings.Join(s, " ") + "]"
	}
	return fmt.Sprintf("Policy{%s, revision %d, custodians %s, services %s, auditors %s, quorum %v, services may rotate by usage %t, by age %t}",
		scopeName(p.Scope), p.Revision, names(p.Custodians), names(p.Services), names(p.Auditors), p.quorumString(), p.ServiceMayRotate.ByUsage, p.ServiceMayRotate.ByAge)
}

func (p Policy) quorumString() string {
	var s []string
	for _, a := range slices.Sorted(maps.Keys(p.Quorum)) {
		s = append(s, fmt.Sprintf("%s:%d", a, p.Quorum[a]))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// Format implements fmt.Formatter: every verb prints String.
func (p Policy) Format(f fmt.State, _ rune) { formatRedacted(f, p.String()) }

// LogValue implements slog.LogValuer.
func (p Policy) LogValue() slog.Value { return slog.StringValue(p.String()) }

// MarshalJSON encodes String: to store or send a policy, use
// MarshalBinary.
func (p Policy) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// Format implements fmt.Formatter: every verb prints String.
func (p Principal) Format(f fmt.State, _ rune) { formatRedacted(f, p.String()) }

// LogValue implements slog.LogValuer.
func (p Principal) LogValue() slog.Value { return slog.StringValue(p.String()) }

// Errors of roles, policies and change requests, each matched with
// errors.Is. Messages name principals (never PHI), actions and scope
// fingerprints; never a branch key id, a signature or a key's bytes.
var (
	// ErrInvalid: a policy, request or approval is malformed or out of range.
	ErrInvalid = errors.New("custody: invalid policy, request or approval")
	// ErrRoleConflict: a principal would be custodian and service on one policy.
	ErrRoleConflict = errors.New("custody: separation of duty: one principal holds two conflicting roles")
	// ErrNotPermitted: the principal's roles do not allow the action.
	ErrNotPermitted = errors.New("custody: the principal's role does not permit this")
	// ErrNoPolicy: no installed policy covers the key.
	ErrNoPolicy = errors.New("custody: no policy governs this key; install one first")
	// ErrForgedApproval: an approval's signature does not verify.
	ErrForgedApproval = errors.New("custody: an approval's signature does not verify under the signer's key")
	// ErrReplayed: the request was applied already, or an approval belongs to another request.
	ErrReplayed = errors.New("custody: replayed request or approval")
	// ErrExpired: the request's expiry has passed.
	ErrExpired = errors.New("custody: the change request has expired; propose it again")
	// ErrDuplicateSigner: one signer's approval is counted twice.
	ErrDuplicateSigner = errors.New("custody: one signer appears twice among the approvals")
	// ErrNotCustodian: an approval's signer is not a custodian of the key's policy.
	ErrNotCustodian = errors.New("custody: an approval's signer is not a custodian of the policy in force")
	// ErrTooFewApprovals: fewer valid approvals than the quorum.
	ErrTooFewApprovals = errors.New("custody: too few custodians approved the change")
	// ErrStalePolicy: the policy changed since the request was proposed.
	ErrStalePolicy = errors.New("custody: the policy changed since the request was proposed; propose it again")
)
