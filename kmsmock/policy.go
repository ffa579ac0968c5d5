package kmsmock

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// policy is a parsed key policy: an IAM policy document evaluated on every
// call that names the key. An explicit Deny wins over any Allow; without an
// Allow the call is denied.
type policy struct {
	statements []statement
}

type statement struct {
	allow      bool
	principals []string // "*" matches every caller
	actions    []string // lower-cased glob patterns
	notActions []string
	resources  []string
	conditions []condition
}

type condition struct {
	set      string // "", "forallvalues" or "foranyvalue"
	operator string // lower-cased, without set prefix or IfExists suffix
	ifExists bool
	key      string // lower-cased condition key
	values   []string
}

// requestFacts are what a policy may test about one call.
type requestFacts struct {
	principal string
	account   string
	action    string // e.g. "kms:Encrypt"
	resource  string // key ARN
	context   map[string]string
	// reEncryptSameKey is "true" or "false" in ReEncrypt calls
	// (kms:ReEncryptOnSameKey) and "" in every other call.
	reEncryptSameKey string
}

// Supported condition operators; anything else makes the document malformed
// rather than silently never matching.
var conditionOperators = map[string]bool{
	"stringequals": true, "stringnotequals": true,
	"stringequalsignorecase": true, "stringnotequalsignorecase": true,
	"stringlike": true, "stringnotlike": true,
	"bool": true, "null": true,
}

func defaultPolicy(account string) string {
	return `{"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions",` +
		`"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + account + `:root"},"Action":"kms:*","Resource":"*"}]}`
}

type rawStatement struct {
	Sid          string                                `json:"Sid"`
	Effect       string                                `json:"Effect"`
	Principal    json.RawMessage                       `json:"Principal"`
	NotPrincipal json.RawMessage                       `json:"NotPrincipal"`
	Action       stringList                            `json:"Action"`
	NotAction    stringList                            `json:"NotAction"`
	Resource     stringList                            `json:"Resource"`
	NotResource  stringList                            `json:"NotResource"`
	Condition    map[string]map[string]json.RawMessage `json:"Condition"`
}

// stringList is IAM's "a string or a list of strings".
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	errShape := errors.New("expected a non-empty string or a list of them")
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return errShape
	}
	var many []string
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		many = []string{one}
	} else if err := json.Unmarshal(b, &many); err != nil || len(many) == 0 {
		return errShape
	}
	for _, v := range many {
		if v == "" {
			return errShape
		}
	}
	*l = many
	return nil
}

// conditionValues is a condition's "a string or a list of strings", where
// (unlike names of actions and resources) the empty string is a value.
type conditionValues []string

func (v *conditionValues) UnmarshalJSON(b []byte) error {
	errShape := errors.New("condition values must be strings")
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return errShape
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*v = conditionValues{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errShape
	}
	*v = many
	return nil
}

// parsePolicy parses and checks a key policy document. Its errors say what is
// wrong with the document's structure, never what its values are.
func parsePolicy(doc string) (*policy, error) {
	if len(doc) == 0 || len(doc) > maxPolicyBytes {
		return nil, errors.New("the policy must be 1 to 32768 bytes")
	}
	var raw struct {
		Version   string          `json:"Version"`
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal([]byte(doc), &raw); err != nil {
		return nil, errors.New("the policy is not a JSON object")
	}
	if raw.Version != "" && raw.Version != "2012-10-17" && raw.Version != "2008-10-17" {
		return nil, errors.New("the policy Version must be 2012-10-17")
	}
	var stmts []rawStatement
	if bytes.HasPrefix(bytes.TrimSpace(raw.Statement), []byte("{")) {
		stmts = make([]rawStatement, 1)
		if err := json.Unmarshal(raw.Statement, &stmts[0]); err != nil {
			return nil, errors.New("the policy Statement is malformed")
		}
	} else if err := json.Unmarshal(raw.Statement, &stmts); err != nil || len(stmts) == 0 {
		return nil, errors.New("the policy needs a Statement list")
	}
	p := &policy{}
	for _, rs := range stmts {
		st, err := parseStatement(rs)
		if err != nil {
			return nil, err
		}
		p.statements = append(p.statements, st)
	}
	return p, nil
}

func parseStatement(rs rawStatement) (statement, error) {
	var st statement
	switch rs.Effect {
	case "Allow":
		st.allow = true
	case "Deny":
	default:
		return st, errors.New("each statement needs Effect Allow or Deny")
	}
	if len(rs.NotPrincipal) > 0 || len(rs.NotResource) > 0 {
		return st, errors.New("NotPrincipal and NotResource are not supported by kmsmock")
	}
	principals, err := parsePrincipal(rs.Principal)
	if err != nil {
		return st, err
	}
	st.principals = principals
	if (len(rs.Action) == 0) == (len(rs.NotAction) == 0) {
		return st, errors.New("each statement needs exactly one of Action and NotAction")
	}
	for _, a := range rs.Action {
		st.actions = append(st.actions, strings.ToLower(a))
	}
	for _, a := range rs.NotAction {
		st.notActions = append(st.notActions, strings.ToLower(a))
	}
	if len(rs.Resource) == 0 {
		return st, errors.New("each statement needs a Resource")
	}
	st.resources = rs.Resource
	for opName, byKey := range rs.Condition {
		for condKey, rawValues := range byKey {
			c, err := parseCondition(opName, condKey, rawValues)
			if err != nil {
				return st, err
			}
			st.conditions = append(st.conditions, c)
		}
	}
	return st, nil
}

func parsePrincipal(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, errors.New("each statement needs a Principal")
	}
	var star string
	if json.Unmarshal(raw, &star) == nil {
		if star != "*" {
			return nil, errors.New(`a string Principal must be "*"`)
		}
		return []string{"*"}, nil
	}
	var byType map[string]stringList
	if err := json.Unmarshal(raw, &byType); err != nil {
		return nil, errors.New(`the Principal must be "*" or an object such as {"AWS": [...]}`)
	}
	if len(byType) == 0 {
		return nil, errors.New("the Principal object names no principal")
	}
	// Service and federated principals never match a kmsmock caller, so only
	// AWS principals are kept.
	return byType["AWS"], nil
}

func parseCondition(opName, condKey string, rawValues json.RawMessage) (condition, error) {
	c := condition{key: strings.ToLower(condKey)}
	op := strings.ToLower(opName)
	if set, rest, ok := strings.Cut(op, ":"); ok {
		if set != "forallvalues" && set != "foranyvalue" {
			return c, errors.New("unknown condition set operator in policy")
		}
		c.set, op = set, rest
	}
	c.operator, c.ifExists = strings.CutSuffix(op, "ifexists")
	if !conditionOperators[c.operator] {
		return c, errors.New("unsupported condition operator in policy")
	}
	var values conditionValues
	if err := json.Unmarshal(rawValues, &values); err != nil {
		var b bool
		if json.Unmarshal(rawValues, &b) != nil {
			return c, errors.New("condition values must be strings")
		}
		values = conditionValues{map[bool]string{true: "true", false: "false"}[b]}
	}
	c.values = values
	return c, nil
}

func (p *policy) allows(rq *requestFacts) bool {
	allowed := false
	for i := range p.statements {
		st := &p.statements[i]
		if !st.applies(rq) {
			continue
		}
		if !st.allow {
			return false
		}
		allowed = true
	}
	return allowed
}

func (st *statement) applies(rq *requestFacts) bool {
	if !st.matchesPrincipal(rq) || !st.matchesAction(rq.action) {
		return false
	}
	if !anyMatch(st.resources, rq.resource) {
		return false
	}
	for i := range st.conditions {
		if !st.conditions[i].holds(rq) {
			return false
		}
	}
	return true
}

func (st *statement) matchesPrincipal(rq *requestFacts) bool {
	for _, p := range st.principals {
		if p == "*" || p == rq.principal || p == rq.account || p == "arn:aws:iam::"+rq.account+":root" {
			return true
		}
	}
	return false
}

func (st *statement) matchesAction(action string) bool {
	action = strings.ToLower(action)
	if len(st.actions) > 0 {
		return anyMatch(st.actions, action)
	}
	return !anyMatch(st.notActions, action)
}

// values returns the request's values for a condition key, and whether the
// key is present at all.
func (rq *requestFacts) values(key string) ([]string, bool) {
	switch {
	case key == "kms:encryptioncontextkeys":
		keys := make([]string, 0, len(rq.context))
		for k := range rq.context {
			keys = append(keys, k)
		}
		return keys, len(keys) > 0
	case strings.HasPrefix(key, "kms:encryptioncontext:"):
		// The context key in the condition key is matched without regard to
		// case; the value is compared exactly.
		// Every pair whose key matches counts, so a request cannot slip a
		// second spelling of a key past a condition.
		want := strings.TrimPrefix(key, "kms:encryptioncontext:")
		var vals []string
		for k, v := range rq.context {
			if strings.ToLower(k) == want {
				vals = append(vals, v)
			}
		}
		return vals, len(vals) > 0
	case key == "kms:reencryptonsamekey":
		return []string{rq.reEncryptSameKey}, rq.reEncryptSameKey != ""
	case key == "kms:calleraccount", key == "aws:principalaccount":
		return []string{rq.account}, true
	case key == "aws:principalarn", key == "aws:username":
		if key == "aws:username" {
			return []string{rq.principal[strings.LastIndexByte(rq.principal, '/')+1:]}, true
		}
		return []string{rq.principal}, true
	}
	return nil, false
}

func (c *condition) holds(rq *requestFacts) bool {
	got, present := rq.values(c.key)
	if c.operator == "null" {
		return (len(c.values) == 1 && c.values[0] == "true") != present
	}
	if !present {
		// IAM: ForAllValues over an empty set holds (a documented surprise),
		// ForAnyValue does not, and a negated operator holds when the key is
		// absent, so "Deny unless purpose = phi" denies a request without it.
		switch {
		case c.ifExists || c.set == "forallvalues":
			return true
		case c.set == "foranyvalue":
			return false
		}
		return c.negated()
	}
	switch c.set {
	case "forallvalues":
		for _, v := range got {
			if !c.matchOne(v) {
				return false
			}
		}
		return true
	default: // ForAnyValue, and single-valued keys
		for _, v := range got {
			if c.matchOne(v) {
				return true
			}
		}
		return false
	}
}

func (c *condition) negated() bool {
	switch c.operator {
	case "stringnotequals", "stringnotequalsignorecase", "stringnotlike":
		return true
	}
	return false
}

func (c *condition) matchOne(v string) bool {
	switch c.operator {
	case "stringequals":
		return anyEqual(c.values, v, false)
	case "stringnotequals":
		return !anyEqual(c.values, v, false)
	case "stringequalsignorecase":
		return anyEqual(c.values, v, true)
	case "stringnotequalsignorecase":
		return !anyEqual(c.values, v, true)
	case "stringlike":
		return anyMatch(c.values, v)
	case "stringnotlike":
		return !anyMatch(c.values, v)
	case "bool":
		return anyEqual(c.values, v, true)
	}
	return false
}

func anyEqual(patterns []string, v string, fold bool) bool {
	for _, p := range patterns {
		if p == v || fold && strings.EqualFold(p, v) {
			return true
		}
	}
	return false
}

func anyMatch(patterns []string, v string) bool {
	for _, p := range patterns {
		if globMatch(p, v) {
			return true
		}
	}
	return false
}

// globMatch matches IAM wildcards: * is any run of characters, ? is one
// character. It runs in O(len(p)·len(s)) time whatever the pattern.
func globMatch(pattern, str string) bool {
	p, s := []rune(pattern), []rune(str)
	px, sx := 0, 0
	starP, starS := -1, 0
	for sx < len(s) {
		switch {
		case px < len(p) && p[px] == '*':
			starP, starS = px, sx
			px++
		case px < len(p) && (p[px] == '?' || p[px] == s[sx]):
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
	for px < len(p) && p[px] == '*' {
		px++
	}
	return px == len(p)
}
