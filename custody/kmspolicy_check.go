package custody

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// Checking a key policy against a KMSKeyPolicyConfig: which principal may
// do what, by which statement, against the role the configuration gives
// it.

// KMSPolicyViolationCode says which rule a key policy statement breaks.
type KMSPolicyViolationCode string

// The rules CheckKMSKeyPolicy checks.
const (
	// KMSPolicyCustodianDecrypt: a custodian may call kms:Decrypt (named,
	// by a wildcard such as "kms:*" or "kms:De*", or by NotAction).
	KMSPolicyCustodianDecrypt KMSPolicyViolationCode = "custodian-decrypt"
	// KMSPolicyCustodianUsesKey: a custodian may call another action that
	// returns plaintext or takes it in (Encrypt, GenerateDataKey, ...).
	KMSPolicyCustodianUsesKey KMSPolicyViolationCode = "custodian-uses-key"
	// KMSPolicyCustodianCrossKeyReEncrypt: a custodian may ReEncrypt to or
	// from another key (no kms:ReEncryptOnSameKey condition) while
	// AllowCrossKeyReEncrypt is off.
	KMSPolicyCustodianCrossKeyReEncrypt KMSPolicyViolationCode = "custodian-cross-key-reencrypt"
	// KMSPolicyCustodianGrant: a custodian may CreateGrant without a
	// kms:GrantOperations condition that keeps plaintext operations out
	// of the grant.
	KMSPolicyCustodianGrant KMSPolicyViolationCode = "custodian-grant"
	// KMSPolicyServiceAdministers: a service may call an administrative
	// action (PutKeyPolicy, ScheduleKeyDeletion, DisableKey, CreateGrant
	// other than for an AWS resource, ...).
	KMSPolicyServiceAdministers KMSPolicyViolationCode = "service-administers"
	// KMSPolicyServiceWithoutContext: a service may use the key without a
	// condition requiring every RequiredContextKeys key (or, for branch
	// key operations, the branch key store's context).
	KMSPolicyServiceWithoutContext KMSPolicyViolationCode = "service-without-context"
	// KMSPolicyAuditorBeyondRead: an auditor may do more than read.
	KMSPolicyAuditorBeyondRead KMSPolicyViolationCode = "auditor-beyond-read"
	// KMSPolicyAccountRoot: the account principal may use the key, or
	// administer it while AccountRootAdministers is off (delegation to
	// IAM).
	KMSPolicyAccountRoot KMSPolicyViolationCode = "account-root"
	// KMSPolicyWildcardPrincipal: an Allow names the principal "*" (or
	// uses NotPrincipal); conditions on it are not credited.
	KMSPolicyWildcardPrincipal KMSPolicyViolationCode = "wildcard-principal"
	// KMSPolicyUnknownPrincipal: an Allow names a principal that is none
	// of the configured ones (another account, an AWS service, a user
	// the configuration does not list).
	KMSPolicyUnknownPrincipal KMSPolicyViolationCode = "unknown-principal"
)

// KMSPolicyViolation is one principal's access, granted by one statement,
// that breaks one rule. Its fields hold ARNs, action names and the
// statement's Sid: never a condition's values (encryption context).
type KMSPolicyViolation struct {
	Code KMSPolicyViolationCode
	// Statement is the statement's index in the policy (from 0); Sid its
	// Sid, "" if it has none.
	Statement int
	Sid       string
	// Principal is the principal as the statement names it ("*" for a
	// wildcard or NotPrincipal).
	Principal string
	// Actions are the offending actions the statement allows the
	// principal, sorted, after any unconditional Deny for it.
	Actions []string
	// Message says what is wrong and what to do, in one sentence.
	Message string
}

// String returns the message with the statement it is about.
func (v KMSPolicyViolation) String() string {
	sid := v.Sid
	if sid == "" {
		sid = "without Sid"
	}
	return fmt.Sprintf("statement %d (%s): %s", v.Statement, sid, v.Message)
}

// KMSKeyPolicyReader is the part of the aws-sdk-go-v2 KMS client that
// CheckKMSKey uses; *kms.Client satisfies it.
type KMSKeyPolicyReader interface {
	GetKeyPolicy(ctx context.Context, in *kms.GetKeyPolicyInput, optFns ...func(*kms.Options)) (*kms.GetKeyPolicyOutput, error)
}

// CheckKMSKey reads the policy of the KMS key keyID (GetKeyPolicy, the
// "default" policy) and checks it with CheckKMSKeyPolicy. The caller needs
// kms:GetKeyPolicy: a custodian or an auditor.
func CheckKMSKey(ctx context.Context, client KMSKeyPolicyReader, keyID string, cfg KMSKeyPolicyConfig) ([]KMSPolicyViolation, error) {
	out, err := client.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: &keyID, PolicyName: aws.String("default")})
	if err != nil {
		return nil, wrapStep(err, "reading the key policy of %s", keyID)
	}
	return CheckKMSKeyPolicy([]byte(aws.ToString(out.Policy)), cfg)
}

// CheckKMSKeyPolicy reports every way the key policy doc breaks the
// separation of duty cfg describes: custodians reaching plaintext (or able
// to grant it, or move keys to another KMS key), services administering
// the key or using it without the encryption context condition, auditors
// beyond reading, the account principal, wildcards and principals cfg does
// not name. None means the policy keeps the roles apart; the generated
// policy has none.
//
// It reads only the key policy: IAM policies and grants take effect only
// where the key policy lets them (the account principal, CreateGrant), and
// those are reported. Allow statements are read as granting what their
// Action (or the complement of their NotAction) matches among KMS's
// actions, whatever their Resource and conditions (conditions are
// credited only where a rule asks for one); a Deny removes access only
// when it has no condition. A document in which one object repeats a
// member name (in any case) is refused, since JSON parsers differ on which
// one counts. Errors are
// for a configuration that GenerateKMSKeyPolicy would refuse and for a
// document that is not a key policy.
func CheckKMSKeyPolicy(doc []byte, cfg KMSKeyPolicyConfig) ([]KMSPolicyViolation, error) {
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	sts, err := parseKeyPolicy(doc)
	if err != nil {
		return nil, err
	}
	c := checker{cfg: cfg, statements: sts}
	c.prepare()
	for i := range sts {
		if sts[i].allow {
			c.checkStatement(i)
		}
	}
	return c.found, nil
}

// keyPolicyStatement is a statement as the checker reads it.
type keyPolicyStatement struct {
	sid          string
	allow        bool
	notPrincipal bool
	principals   []string // "*" for the wildcard; other types as "Service:name"
	actions      []string // lower-cased patterns
	notAction    bool
	conditions   []keyPolicyCondition
}

type keyPolicyCondition struct {
	operator string // lower-cased, without set or IfExists
	set      string // "", "forallvalues", "foranyvalue"
	ifExists bool
	key      string // lower-cased
	values   []string
}

type rawKeyPolicyStatement struct {
	Sid          string                                `json:"Sid"`
	Effect       string                                `json:"Effect"`
	Principal    json.RawMessage                       `json:"Principal"`
	NotPrincipal json.RawMessage                       `json:"NotPrincipal"`
	Action       json.RawMessage                       `json:"Action"`
	NotAction    json.RawMessage                       `json:"NotAction"`
	Condition    map[string]map[string]json.RawMessage `json:"Condition"`
}

// errKeyPolicy is the checker's one refusal of a document; its message
// says what is malformed, never what the document holds.
func errKeyPolicy(what string) error { return errors.New("custody: the key policy " + what) }

func parseKeyPolicy(doc []byte) ([]keyPolicyStatement, error) {
	if len(doc) == 0 || len(doc) > maxKMSPolicyBytes {
		return nil, errKeyPolicy("must be 1 to 32768 bytes")
	}
	if err := checkJSONKeys(doc); err != nil {
		return nil, err
	}
	var raw struct {
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal(doc, &raw); err != nil {
		return nil, errKeyPolicy("is not a JSON object")
	}
	var rs []rawKeyPolicyStatement
	if trimmed := bytes.TrimSpace(raw.Statement); bytes.HasPrefix(trimmed, []byte("{")) {
		rs = make([]rawKeyPolicyStatement, 1)
		if json.Unmarshal(trimmed, &rs[0]) != nil {
			return nil, errKeyPolicy("has a malformed Statement")
		}
	} else if json.Unmarshal(trimmed, &rs) != nil || len(rs) == 0 {
		return nil, errKeyPolicy("needs a list of statements")
	}
	out := make([]keyPolicyStatement, len(rs))
	for i, r := range rs {
		st, err := parseKeyPolicyStatement(r)
		if err != nil {
			return nil, fmt.Errorf("custody: statement %d of the key policy %s", i, err)
		}
		out[i] = st
	}
	return out, nil
}

// maxPolicyDepth bounds the nesting checkJSONKeys follows; a key policy
// nests five deep (document, statements, statement, condition, values).
const maxPolicyDepth = 16

// checkJSONKeys refuses a document in which one object has two members
// whose names differ at most in case. JSON parsers disagree on which of
// two "Action" members wins, and encoding/json also matches "action" to
// Action: a document KMS reads one way must not be checked another way.
func checkJSONKeys(doc []byte) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	type frame struct {
		object bool
		keys   map[string]bool
		expect bool // in an object, the next string token is a member name
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return errKeyPolicy("is not valid JSON")
		}
		top := len(stack) - 1
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) == maxPolicyDepth {
					return errKeyPolicy("nests too deeply")
				}
				if top >= 0 && stack[top].object {
					stack[top].expect = true
				}
				stack = append(stack, frame{object: t == '{', keys: map[string]bool{}, expect: t == '{'})
			default:
				stack = stack[:top]
				if top > 0 && stack[top-1].object {
					stack[top-1].expect = true
				}
			}
		case string:
			if top >= 0 && stack[top].object && stack[top].expect {
				name := strings.ToLower(t)
				if stack[top].keys[name] {
					return errKeyPolicy("has an object with two members of one name (compared without case)")
				}
				stack[top].keys[name] = true
				stack[top].expect = false
				continue
			}
			if top >= 0 && stack[top].object {
				stack[top].expect = true
			}
		default:
			if top >= 0 && stack[top].object {
				stack[top].expect = true
			}
		}
	}
}

func parseKeyPolicyStatement(r rawKeyPolicyStatement) (keyPolicyStatement, error) {
	st := keyPolicyStatement{sid: r.Sid}
	if len(st.sid) > 128 {
		st.sid = st.sid[:128]
	}
	switch r.Effect {
	case "Allow":
		st.allow = true
	case "Deny":
	default:
		return st, errors.New("needs Effect Allow or Deny")
	}
	var err error
	switch {
	case len(r.Principal) > 0 && len(r.NotPrincipal) == 0:
		st.principals, err = parsePrincipals(r.Principal)
	case len(r.NotPrincipal) > 0 && len(r.Principal) == 0:
		st.notPrincipal = true
		st.principals, err = parsePrincipals(r.NotPrincipal)
	default:
		err = errors.New("needs exactly one of Principal and NotPrincipal")
	}
	if err != nil {
		return st, err
	}
	switch {
	case len(r.Action) > 0 && len(r.NotAction) == 0:
		st.actions, err = parseStrings(r.Action)
	case len(r.NotAction) > 0 && len(r.Action) == 0:
		st.notAction = true
		st.actions, err = parseStrings(r.NotAction)
	default:
		err = errors.New("needs exactly one of Action and NotAction")
	}
	if err != nil {
		return st, errors.New("has a malformed Action")
	}
	for i := range st.actions {
		st.actions[i] = strings.ToLower(st.actions[i])
	}
	for op, byKey := range r.Condition {
		for key, raw := range byKey {
			c, err := parseKeyPolicyCondition(op, key, raw)
			if err != nil {
				return st, err
			}
			st.conditions = append(st.conditions, c)
		}
	}
	return st, nil
}

// parsePrincipals reads "*" or {"AWS": ..., "Service": ...}. AWS
// principals are kept as written; others are prefixed with their type, so
// they never equal a configured ARN.
func parsePrincipals(raw json.RawMessage) ([]string, error) {
	var star string
	if json.Unmarshal(raw, &star) == nil {
		if star != "*" {
			return nil, errors.New(`has a string Principal other than "*"`)
		}
		return []string{"*"}, nil
	}
	var byType map[string]json.RawMessage
	if json.Unmarshal(raw, &byType) != nil || len(byType) == 0 {
		return nil, errors.New("has a malformed Principal")
	}
	var out []string
	for typ, v := range byType {
		names, err := parseStrings(v)
		if err != nil {
			return nil, errors.New("has a malformed Principal")
		}
		for _, n := range names {
			if typ != "AWS" && n != "*" {
				n = typ + ":" + n
			}
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// parseStrings reads IAM's "a string or a list of strings".
func parseStrings(raw json.RawMessage) ([]string, error) {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if json.Unmarshal(raw, &many) != nil || len(many) == 0 {
		return nil, errors.New("expected a string or a list of strings")
	}
	return many, nil
}

func parseKeyPolicyCondition(op, key string, raw json.RawMessage) (keyPolicyCondition, error) {
	c := keyPolicyCondition{key: strings.ToLower(key)}
	o := strings.ToLower(op)
	if set, rest, ok := strings.Cut(o, ":"); ok {
		c.set, o = set, rest
	}
	c.operator, c.ifExists = strings.CutSuffix(o, "ifexists")
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		c.values = []string{fmt.Sprint(b)}
		return c, nil
	}
	var bs []bool
	if json.Unmarshal(raw, &bs) == nil && len(bs) > 0 {
		for _, v := range bs {
			c.values = append(c.values, fmt.Sprint(v))
		}
		return c, nil
	}
	values, err := parseStrings(raw)
	if err != nil {
		return c, errors.New("has a malformed Condition")
	}
	c.values = values
	return c, nil
}

// checker holds the state of one CheckKMSKeyPolicy call.
type checker struct {
	cfg        KMSKeyPolicyConfig
	statements []keyPolicyStatement
	matches    []actionSet          // per statement
	denied     map[string]actionSet // by principal, from unconditional Deny statements
	found      []KMSPolicyViolation
}

// principal roles, as the configuration names them.
type role int

const (
	roleUnknown role = iota + 1
	roleWildcard
	roleRoot
	roleCustodian
	roleService
	roleAuditor
)

func (c *checker) roleOf(p string) role {
	switch {
	case p == "*":
		return roleWildcard
	case p == c.cfg.rootARN() || p == c.cfg.Account:
		return roleRoot
	case slices.Contains(c.cfg.Custodians, p):
		return roleCustodian
	case slices.Contains(c.cfg.Services, p):
		return roleService
	case slices.Contains(c.cfg.Auditors, p):
		return roleAuditor
	}
	return roleUnknown
}

// checkStatement reports what Allow statement i grants each principal it
// names against that principal's role.
func (c *checker) checkStatement(i int) {
	st := &c.statements[i]
	principals := st.principals
	if st.notPrincipal {
		// Everyone but the named principals: a wildcard.
		principals = []string{"*"}
	}
	for _, p := range principals {
		actions := c.effectiveActions(i, p)
		if len(actions) == 0 {
			continue
		}
		switch c.roleOf(p) {
		case roleWildcard:
			c.report(i, p, KMSPolicyWildcardPrincipal, actions, "allows every principal (\"*\" or NotPrincipal); name the custodians, services and auditors instead")
		case roleUnknown:
			c.report(i, p, KMSPolicyUnknownPrincipal, actions, "allows a principal that is not a configured custodian, service or auditor; remove it or add it to the configuration")
		case roleRoot:
			c.checkRoot(i, p, actions)
		case roleCustodian:
			c.checkCustodian(i, st, p, actions)
		case roleService:
			c.checkService(i, st, p, actions)
		case roleAuditor:
			if beyond := without(actions, kmsReadActions); len(beyond) > 0 {
				c.report(i, p, KMSPolicyAuditorBeyondRead, beyond, "allows an auditor more than reading the key's metadata")
			}
		}
	}
}

func (c *checker) checkRoot(i int, p string, actions []string) {
	if crypto := within(actions, kmsCryptoActions); len(crypto) > 0 {
		c.report(i, p, KMSPolicyAccountRoot, crypto, "lets the account principal, and so any IAM policy of the account, use the key")
	}
	if admin := without(actions, kmsCryptoActions); len(admin) > 0 && !c.cfg.AccountRootAdministers {
		c.report(i, p, KMSPolicyAccountRoot, admin, "delegates administration to IAM through the account principal, so an IAM administrator could write itself Decrypt; remove it or set AccountRootAdministers")
	}
}

func (c *checker) checkCustodian(i int, st *keyPolicyStatement, p string, actions []string) {
	if slices.Contains(actions, "kms:Decrypt") {
		c.report(i, p, KMSPolicyCustodianDecrypt, []string{"kms:Decrypt"}, "lets a custodian decrypt; custodians must never reach plaintext")
	}
	uses := without(within(actions, kmsCryptoActions), append([]string{"kms:Decrypt"}, custodianCryptoActions...))
	if len(uses) > 0 {
		c.report(i, p, KMSPolicyCustodianUsesKey, uses, "lets a custodian use the key with plaintext in or out; custodians may only GenerateDataKeyWithoutPlaintext and ReEncrypt")
	}
	if re := within(actions, []string{"kms:ReEncryptFrom", "kms:ReEncryptTo"}); len(re) > 0 && !c.cfg.AllowCrossKeyReEncrypt && !st.requiresSameKey() {
		c.report(i, p, KMSPolicyCustodianCrossKeyReEncrypt, re, "lets a custodian re-encrypt to or from another KMS key; add the condition Bool kms:ReEncryptOnSameKey true")
	}
	if slices.Contains(actions, "kms:CreateGrant") && !st.limitsGrantOperations() {
		c.report(i, p, KMSPolicyCustodianGrant, []string{"kms:CreateGrant"}, "lets a custodian create grants, which could give anyone Decrypt; remove CreateGrant or limit kms:GrantOperations")
	}
}

func (c *checker) checkService(i int, st *keyPolicyStatement, p string, actions []string) {
	admin := within(actions, kmsAdminActions)
	if slices.Contains(admin, "kms:CreateGrant") && st.grantIsForAWSResource() {
		admin = without(admin, []string{"kms:CreateGrant"})
	}
	if len(admin) > 0 {
		c.report(i, p, KMSPolicyServiceAdministers, admin, "lets a service administer the key; services may only use it")
	}
	crypto := within(actions, kmsCryptoActions)
	if len(crypto) == 0 {
		return
	}
	if c.cfg.BranchKeyStore && st.requiresBranchContext(c.cfg.LogicalStoreName) {
		crypto = without(crypto, branchKeyActions)
	}
	if len(crypto) > 0 && (len(c.cfg.RequiredContextKeys) == 0 || !st.requiresContextKeys(c.cfg.RequiredContextKeys)) {
		c.report(i, p, KMSPolicyServiceWithoutContext, crypto, "lets a service use the key without a condition requiring the configured encryption context keys")
	}
}

func (c *checker) report(i int, p string, code KMSPolicyViolationCode, actions []string, message string) {
	c.found = append(c.found, KMSPolicyViolation{
		Code: code, Statement: i, Sid: c.statements[i].sid, Principal: p, Actions: actions,
		Message: message + " (" + strings.Join(actions, ", ") + ")",
	})
}

// knownKMSActions are the KMS actions a key policy can grant, sorted; an
// actionSet is a subset of them, bit i for knownKMSActions[i].
var knownKMSActions = sortedKMSActions()

type actionSet uint64

func sortedKMSActions() []string {
	all := slices.Concat(kmsAdminActions, kmsReadActions, kmsCryptoActions)
	slices.Sort(all)
	if len(all) > 64 {
		panic("custody: more KMS actions than an actionSet holds")
	}
	return all
}

// prepare computes, once per document, what each statement's actions
// match and what unconditional Deny statements take from each principal,
// so the check is linear in the document's size.
func (c *checker) prepare() {
	c.matches = make([]actionSet, len(c.statements))
	c.denied = map[string]actionSet{}
	for i := range c.statements {
		st := &c.statements[i]
		for b, a := range knownKMSActions {
			if st.matchesAction(a) {
				c.matches[i] |= 1 << b
			}
		}
		if !st.allow && !st.notPrincipal && len(st.conditions) == 0 {
			for _, p := range st.principals {
				c.denied[p] |= c.matches[i]
			}
		}
	}
}

// effectiveActions are the KMS actions statement i allows principal p,
// less those an unconditional Deny takes from p (or from everyone).
func (c *checker) effectiveActions(i int, p string) []string {
	set := c.matches[i] &^ (c.denied[p] | c.denied["*"])
	var out []string
	for b, a := range knownKMSActions {
		if set&(1<<b) != 0 {
			out = append(out, a)
		}
	}
	return out
}

func (st *keyPolicyStatement) matchesAction(action string) bool {
	lower := strings.ToLower(action)
	matched := false
	for _, pat := range st.actions {
		if policyGlob(pat, lower) {
			matched = true
			break
		}
	}
	return matched != st.notAction
}

// policyGlob matches IAM's wildcards (* any run, ? one character) in
// O(len(pattern)·len(s)). kmsmock has its own matcher on purpose: it is
// the KMS the checker is tested against, so the two must not share code
// (or a misunderstanding).
func policyGlob(pattern, s string) bool {
	px, sx, starP, starS := 0, 0, -1, 0
	for sx < len(s) {
		switch {
		case px < len(pattern) && pattern[px] == '*':
			starP, starS = px, sx
			px++
		case px < len(pattern) && (pattern[px] == '?' || pattern[px] == s[sx]):
			px++
			sx++
		case starP >= 0:
			px = starP + 1
			starS++
			sx = starS
		default:
			return false
		}
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}

// requiresContextKeys reports whether every one of keys must be present in
// the encryption context for st to apply: a positive string condition on
// kms:EncryptionContext:KEY, Null false on it, or ForAnyValue on
// kms:EncryptionContextKeys with that one key as its only value.
func (st *keyPolicyStatement) requiresContextKeys(keys []string) bool {
	for _, k := range keys {
		if !st.requiresContextKey(k) {
			return false
		}
	}
	return true
}

func (st *keyPolicyStatement) requiresContextKey(k string) bool {
	for _, c := range st.conditions {
		if c.ifExists || c.set == "forallvalues" {
			continue
		}
		switch {
		case c.key == "kms:encryptioncontext:"+strings.ToLower(k):
			if c.operator == "null" {
				if len(c.values) == 1 && c.values[0] == "false" {
					return true
				}
				continue
			}
			if positiveStringOperator(c.operator) {
				return true
			}
		case c.key == "kms:encryptioncontextkeys" && c.set == "foranyvalue" && len(c.values) == 1:
			switch c.operator {
			case "stringequals":
				if c.values[0] == k {
					return true
				}
			case "stringequalsignorecase":
				if strings.EqualFold(c.values[0], k) {
					return true
				}
			}
		}
	}
	return false
}

func positiveStringOperator(op string) bool {
	return op == "stringequals" || op == "stringequalsignorecase" || op == "stringlike"
}

// requiresBranchContext reports whether st applies only under the branch
// key store's context: StringEquals kms:EncryptionContext:tablename with
// the store's name as its only value.
func (st *keyPolicyStatement) requiresBranchContext(store string) bool {
	for _, c := range st.conditions {
		if c.key == strings.ToLower(branchContextStore) && c.operator == "stringequals" && c.set == "" &&
			!c.ifExists && len(c.values) == 1 && c.values[0] == store {
			return true
		}
	}
	return false
}

// requiresSameKey reports whether st applies to ReEncrypt only back under
// the same key: Bool kms:ReEncryptOnSameKey true.
func (st *keyPolicyStatement) requiresSameKey() bool {
	return st.hasBoolTrue("kms:reencryptonsamekey")
}

// grantIsForAWSResource reports the condition AWS's own key policies put
// on CreateGrant for services integrated with KMS.
func (st *keyPolicyStatement) grantIsForAWSResource() bool {
	return st.hasBoolTrue("kms:grantisforawsresource")
}

func (st *keyPolicyStatement) hasBoolTrue(key string) bool {
	for _, c := range st.conditions {
		if c.key == key && c.operator == "bool" && c.set == "" && !c.ifExists && len(c.values) == 1 && c.values[0] == "true" {
			return true
		}
	}
	return false
}

// limitsGrantOperations reports whether st lets CreateGrant make only
// grants whose operations a custodian may hold: ForAllValues:StringEquals
// kms:GrantOperations over operations outside custodianDeniedActions.
func (st *keyPolicyStatement) limitsGrantOperations() bool {
	for _, c := range st.conditions {
		if c.key != "kms:grantoperations" || c.set != "forallvalues" || c.operator != "stringequals" || c.ifExists {
			continue
		}
		ok := true
		for _, op := range c.values {
			if !slices.Contains(custodianCryptoActions, "kms:"+op) && !slices.Contains(kmsReadActions, "kms:"+op) &&
				op != "RetireGrant" {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// within returns the actions of list that are in set; without, those that
// are not. Both keep list's order.
func within(list, set []string) []string {
	var out []string
	for _, a := range list {
		if slices.Contains(set, a) {
			out = append(out, a)
		}
	}
	return out
}

func without(list, set []string) []string {
	var out []string
	for _, a := range list {
		if !slices.Contains(set, a) {
			out = append(out, a)
		}
	}
	return out
}
