package kmsmock

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Names used by the policy tables. The caller's account is ptAccount unless a
// row says otherwise.
const (
	ptAccount = "111122223333"
	ptOther   = "444455556666"
	ptAlice   = "arn:aws:iam::" + ptAccount + ":user/alice"
	ptBob     = "arn:aws:iam::" + ptAccount + ":user/bob"
	ptMallory = "arn:aws:iam::" + ptOther + ":user/mallory"
	ptKey     = "arn:aws:kms:us-east-1:" + ptAccount + ":key/1234abcd-12ab-34cd-56ef-1234567890ab"
	ptKey2    = "arn:aws:kms:us-east-1:" + ptAccount + ":key/0987dcba-09fe-87dc-65ba-ab0987654321"
)

// ptDoc wraps statements in a policy document.
func ptDoc(statements ...string) string {
	return `{"Version":"2012-10-17","Statement":[` + strings.Join(statements, ",") + `]}`
}

// ptAllowAll is a statement letting every caller do every action on every key,
// for rows that test a Deny or a condition against it.
const ptAllowAll = `{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}`

// ptCond is an Allow statement for every caller and action with one
// Condition block (JSON object text).
func ptCond(condition string) string {
	return `{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":` + condition + `}`
}

// ptFacts is a request by alice, in ptAccount, to Decrypt under ptKey.
func ptFacts(mods ...func(*requestFacts)) requestFacts {
	rq := requestFacts{principal: ptAlice, account: ptAccount, action: "kms:Decrypt", resource: ptKey}
	for _, m := range mods {
		m(&rq)
	}
	return rq
}

func asPrincipal(p, account string) func(*requestFacts) {
	return func(rq *requestFacts) { rq.principal, rq.account = p, account }
}

func asAction(a string) func(*requestFacts) {
	return func(rq *requestFacts) { rq.action = a }
}

func onResource(r string) func(*requestFacts) {
	return func(rq *requestFacts) { rq.resource = r }
}

func withContext(kv ...string) func(*requestFacts) {
	return func(rq *requestFacts) {
		rq.context = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			rq.context[kv[i]] = kv[i+1]
		}
	}
}

type policyCase struct {
	name string
	doc  string
	rq   requestFacts
	want bool
	// bug, when set, names a divergence from IAM this row once caught
	// (fixed; the row guards against its return).
	bug string
}

func runPolicyCases(t *testing.T, cases []policyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parsePolicy(tc.doc)
			if err != nil {
				t.Fatalf("parsePolicy: %v\n%s", err, tc.doc)
			}
			rq := tc.rq
			if got := p.allows(&rq); got != tc.want {
				t.Errorf("allows(%+v) = %v, want %v\n%s", rq, got, tc.want, tc.doc)
			}
		})
	}
}

func TestPolicyEffectPrecedence(t *testing.T) {
	denyDecrypt := `{"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*"}`
	runPolicyCases(t, []policyCase{
		{"allow matches", ptDoc(ptAllowAll), ptFacts(), true, ""},
		{"no statement applies: implicit deny",
			ptDoc(`{"Effect":"Allow","Principal":"*","Action":"kms:Encrypt","Resource":"*"}`), ptFacts(), false, ""},
		{"explicit deny wins over allow", ptDoc(ptAllowAll, denyDecrypt), ptFacts(), false, ""},
		{"explicit deny wins whatever the order", ptDoc(denyDecrypt, ptAllowAll), ptFacts(), false, ""},
		{"deny for one action leaves the others allowed", ptDoc(ptAllowAll, denyDecrypt), ptFacts(asAction("kms:Encrypt")), true, ""},
		{"deny alone denies", ptDoc(denyDecrypt), ptFacts(), false, ""},
		{"deny for another principal does not apply",
			ptDoc(ptAllowAll, `{"Effect":"Deny","Principal":{"AWS":"`+ptBob+`"},"Action":"kms:*","Resource":"*"}`), ptFacts(), true, ""},
		{"deny whose condition fails does not apply",
			ptDoc(ptAllowAll, `{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*",
				"Condition":{"StringEquals":{"kms:EncryptionContext:tenant":"b"}}}`),
			ptFacts(withContext("tenant", "a")), true, ""},
		{"deny whose condition holds applies",
			ptDoc(ptAllowAll, `{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*",
				"Condition":{"StringEquals":{"kms:EncryptionContext:tenant":"b"}}}`),
			ptFacts(withContext("tenant", "b")), false, ""},
		{"two allows", ptDoc(ptAllowAll, ptAllowAll), ptFacts(), true, ""},
	})
}

func TestPolicyPrincipal(t *testing.T) {
	allowFor := func(principal string) string {
		return ptDoc(`{"Effect":"Allow","Principal":` + principal + `,"Action":"kms:*","Resource":"*"}`)
	}
	root := `{"AWS":"arn:aws:iam::` + ptAccount + `:root"}`
	runPolicyCases(t, []policyCase{
		{"star", allowFor(`"*"`), ptFacts(), true, ""},
		{"star reaches another account", allowFor(`"*"`), ptFacts(asPrincipal(ptMallory, ptOther)), true, ""},
		{"AWS star", allowFor(`{"AWS":"*"}`), ptFacts(), true, ""},
		{"AWS arn: that user", allowFor(`{"AWS":"` + ptAlice + `"}`), ptFacts(), true, ""},
		{"AWS arn: another user", allowFor(`{"AWS":"` + ptAlice + `"}`), ptFacts(asPrincipal(ptBob, ptAccount)), false, ""},
		{"AWS list: member", allowFor(`{"AWS":["` + ptBob + `","` + ptAlice + `"]}`), ptFacts(), true, ""},
		{"AWS list: not a member", allowFor(`{"AWS":["` + ptBob + `"]}`), ptFacts(), false, ""},
		{"account root: alice", allowFor(root), ptFacts(), true, ""},
		{"account root: bob", allowFor(root), ptFacts(asPrincipal(ptBob, ptAccount)), true, ""},
		{"account root: another account's user", allowFor(root), ptFacts(asPrincipal(ptMallory, ptOther)), false, ""},
		{"another account's root: our user", allowFor(`{"AWS":"arn:aws:iam::` + ptOther + `:root"}`), ptFacts(), false, ""},
		{"another account's root: its user",
			allowFor(`{"AWS":"arn:aws:iam::` + ptOther + `:root"}`), ptFacts(asPrincipal(ptMallory, ptOther)), true, ""},
		{"bare account id", allowFor(`{"AWS":"` + ptAccount + `"}`), ptFacts(), true, ""},
		{"bare account id: another account's user", allowFor(`{"AWS":"` + ptAccount + `"}`), ptFacts(asPrincipal(ptMallory, ptOther)), false, ""},
		{"service principal never matches a caller", allowFor(`{"Service":"cloudtrail.amazonaws.com"}`), ptFacts(), false, ""},
		{"user name is not a principal", allowFor(`{"AWS":"alice"}`), ptFacts(), false, ""},
		{"a user arn is not a prefix pattern", allowFor(`{"AWS":"arn:aws:iam::` + ptAccount + `:user/ali"}`), ptFacts(), false, ""},
		{"default key policy: every user of the account",
			defaultPolicy(ptAccount), ptFacts(asPrincipal(ptBob, ptAccount), asAction("kms:PutKeyPolicy")), true, ""},
		{"default key policy: not another account", defaultPolicy(ptAccount), ptFacts(asPrincipal(ptMallory, ptOther)), false, ""},
	})
}

func TestPolicyAction(t *testing.T) {
	allowAction := func(action string) string {
		return ptDoc(`{"Effect":"Allow","Principal":"*","Action":` + action + `,"Resource":"*"}`)
	}
	allowNot := func(action string) string {
		return ptDoc(`{"Effect":"Allow","Principal":"*","NotAction":` + action + `,"Resource":"*"}`)
	}
	runPolicyCases(t, []policyCase{
		{"kms:*", allowAction(`"kms:*"`), ptFacts(), true, ""},
		{"*", allowAction(`"*"`), ptFacts(), true, ""},
		{"exact", allowAction(`"kms:Decrypt"`), ptFacts(), true, ""},
		{"exact: another action", allowAction(`"kms:Encrypt"`), ptFacts(), false, ""},
		{"exact is not a prefix", allowAction(`"kms:Decrypt"`), ptFacts(asAction("kms:DecryptMore")), false, ""},
		{"GenerateDataKey*: GenerateDataKey", allowAction(`"kms:GenerateDataKey*"`), ptFacts(asAction("kms:GenerateDataKey")), true, ""},
		{"GenerateDataKey*: WithoutPlaintext", allowAction(`"kms:GenerateDataKey*"`),
			ptFacts(asAction("kms:GenerateDataKeyWithoutPlaintext")), true, ""},
		{"GenerateDataKey*: not Decrypt", allowAction(`"kms:GenerateDataKey*"`), ptFacts(), false, ""},
		{"Describe*: DescribeKey", allowAction(`"kms:Describe*"`), ptFacts(asAction("kms:DescribeKey")), true, ""},
		{"Describe*: not Decrypt", allowAction(`"kms:Describe*"`), ptFacts(), false, ""},
		{"? is one character", allowAction(`"kms:?ncrypt"`), ptFacts(asAction("kms:Encrypt")), true, ""},
		{"? is exactly one character", allowAction(`"kms:?ncrypt"`), ptFacts(asAction("kms:ReEncrypt")), false, ""},
		{"action in the policy is case-insensitive", allowAction(`"KMS:DECRYPT"`), ptFacts(), true, ""},
		{"action in the request is case-insensitive", allowAction(`"kms:decrypt"`), ptFacts(asAction("KMS:Decrypt")), true, ""},
		{"wildcard is case-insensitive", allowAction(`"KMS:generatedatakey*"`), ptFacts(asAction("kms:GenerateDataKey")), true, ""},
		{"list: member", allowAction(`["kms:Encrypt","kms:Decrypt"]`), ptFacts(), true, ""},
		{"list: not a member", allowAction(`["kms:Encrypt","kms:ReEncrypt*"]`), ptFacts(), false, ""},
		{"other service's wildcard", allowAction(`"s3:*"`), ptFacts(), false, ""},
		{"NotAction: excluded action", allowNot(`"kms:Decrypt"`), ptFacts(), false, ""},
		{"NotAction: other action", allowNot(`"kms:Decrypt"`), ptFacts(asAction("kms:Encrypt")), true, ""},
		{"NotAction wildcard", allowNot(`["kms:Put*","kms:Schedule*"]`), ptFacts(asAction("kms:PutKeyPolicy")), false, ""},
		{"NotAction wildcard: other action", allowNot(`["kms:Put*","kms:Schedule*"]`), ptFacts(), true, ""},
		{"NotAction is case-insensitive", allowNot(`"KMS:DECRYPT"`), ptFacts(), false, ""},
		{"Deny NotAction denies everything else",
			ptDoc(ptAllowAll, `{"Effect":"Deny","Principal":"*","NotAction":"kms:Describe*","Resource":"*"}`), ptFacts(), false, ""},
		{"Deny NotAction spares the excluded action",
			ptDoc(ptAllowAll, `{"Effect":"Deny","Principal":"*","NotAction":"kms:Describe*","Resource":"*"}`),
			ptFacts(asAction("kms:DescribeKey")), true, ""},
	})
}

func TestPolicyResource(t *testing.T) {
	allowOn := func(resource string) string {
		return ptDoc(`{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":` + resource + `}`)
	}
	runPolicyCases(t, []policyCase{
		{"star", allowOn(`"*"`), ptFacts(), true, ""},
		{"this key", allowOn(`"` + ptKey + `"`), ptFacts(), true, ""},
		{"another key", allowOn(`"` + ptKey2 + `"`), ptFacts(), false, ""},
		{"list", allowOn(`["` + ptKey2 + `","` + ptKey + `"]`), ptFacts(), true, ""},
		{"wildcard", allowOn(`"arn:aws:kms:us-east-1:` + ptAccount + `:key/*"`), ptFacts(), true, ""},
		{"wildcard in another account", allowOn(`"arn:aws:kms:us-east-1:` + ptOther + `:key/*"`), ptFacts(), false, ""},
	})
}

func TestPolicyCondition(t *testing.T) {
	ctx := withContext
	runPolicyCases(t, []policyCase{
		// StringEquals on one context key: values exact, key case-insensitive.
		{"StringEquals: equal", ptDoc(ptCond(`{"StringEquals":{"kms:EncryptionContext:purpose":"phi"}}`)),
			ptFacts(ctx("purpose", "phi")), true, ""},
		{"StringEquals: value is case-sensitive", ptDoc(ptCond(`{"StringEquals":{"kms:EncryptionContext:purpose":"phi"}}`)),
			ptFacts(ctx("purpose", "PHI")), false, ""},
		{"StringEquals: different value", ptDoc(ptCond(`{"StringEquals":{"kms:EncryptionContext:purpose":"phi"}}`)),
			ptFacts(ctx("purpose", "billing")), false, ""},
		{"StringEquals: context key matched without case (request)", ptDoc(ptCond(`{"StringEquals":{"kms:EncryptionContext:purpose":"phi"}}`)),
			ptFacts(ctx("Purpose", "phi")), true, ""},
		{"StringEquals: context key matched without case (policy)", ptDoc(ptCond(`{"StringEquals":{"kms:EncryptionContext:PURPOSE":"phi"}}`)),
			ptFacts(ctx("purpose", "phi")), true, ""},
		{"StringEquals: condition key prefix is case-insensitive", ptDoc(ptCond(`{"StringEquals":{"KMS:ENCRYPTIONCONTEXT:purpose":"phi"}}`)),
			ptFacts(ctx("purpose", "phi")), true, ""},
		{"StringEquals: context lacks the key", ptDoc(ptCond(`{"StringEquals":{"kms:EncryptionContext:purpose":"phi"}}`)),
			ptFacts(ctx("tenant", "a")), false, ""},
		{"StringEquals: no context at all", ptDoc(ptCond(`{"StringEquals":{"kms:EncryptionContext:purpose":"phi"}}`)),
			ptFacts(), false, ""},
		{"StringEquals: any of several values", ptDoc(ptCond(`{"StringEquals":{"kms:EncryptionContext:purpose":["billing","phi"]}}`)),
			ptFacts(ctx("purpose", "phi")), true, ""},
		{"StringEquals: empty value matches only the empty value", ptDoc(ptCond(`{"StringEquals":{"kms:EncryptionContext:purpose":""}}`)),
			ptFacts(ctx("purpose", "phi")), false, ""},
		{"StringEquals: every key must hold", ptDoc(ptCond(`{"StringEquals":{"kms:EncryptionContext:purpose":"phi","kms:EncryptionContext:tenant":"a"}}`)),
			ptFacts(ctx("purpose", "phi", "tenant", "b")), false, ""},
		{"every operator must hold", ptDoc(ptCond(`{"StringEquals":{"kms:EncryptionContext:purpose":"phi"},"StringLike":{"kms:EncryptionContext:tenant":"a*"}}`)),
			ptFacts(ctx("purpose", "phi", "tenant", "abc")), true, ""},
		{"every operator must hold: one fails", ptDoc(ptCond(`{"StringEquals":{"kms:EncryptionContext:purpose":"phi"},"StringLike":{"kms:EncryptionContext:tenant":"a*"}}`)),
			ptFacts(ctx("purpose", "phi", "tenant", "xyz")), false, ""},

		// ...IfExists holds when the key is absent, and tests it when present.
		{"StringEqualsIfExists: absent", ptDoc(ptCond(`{"StringEqualsIfExists":{"kms:EncryptionContext:purpose":"phi"}}`)),
			ptFacts(ctx("tenant", "a")), true, ""},
		{"StringEqualsIfExists: present and equal", ptDoc(ptCond(`{"StringEqualsIfExists":{"kms:EncryptionContext:purpose":"phi"}}`)),
			ptFacts(ctx("purpose", "phi")), true, ""},
		{"StringEqualsIfExists: present and different", ptDoc(ptCond(`{"StringEqualsIfExists":{"kms:EncryptionContext:purpose":"phi"}}`)),
			ptFacts(ctx("purpose", "billing")), false, ""},
		{"IfExists on an unknown key", ptDoc(ptCond(`{"StringEqualsIfExists":{"aws:SourceIp":"10.0.0.1"}}`)), ptFacts(), true, ""},
		{"unknown key without IfExists", ptDoc(ptCond(`{"StringEquals":{"aws:SourceIp":"10.0.0.1"}}`)), ptFacts(), false, ""},

		// Other string operators.
		{"StringNotEquals: different", ptDoc(ptCond(`{"StringNotEquals":{"kms:EncryptionContext:purpose":"phi"}}`)),
			ptFacts(ctx("purpose", "billing")), true, ""},
		{"StringNotEquals: equal", ptDoc(ptCond(`{"StringNotEquals":{"kms:EncryptionContext:purpose":"phi"}}`)),
			ptFacts(ctx("purpose", "phi")), false, ""},
		{"StringEqualsIgnoreCase", ptDoc(ptCond(`{"StringEqualsIgnoreCase":{"kms:EncryptionContext:purpose":"PHI"}}`)),
			ptFacts(ctx("purpose", "phi")), true, ""},
		{"StringNotEqualsIgnoreCase", ptDoc(ptCond(`{"StringNotEqualsIgnoreCase":{"kms:EncryptionContext:purpose":"PHI"}}`)),
			ptFacts(ctx("purpose", "phi")), false, ""},
		{"StringLike: star", ptDoc(ptCond(`{"StringLike":{"kms:EncryptionContext:tenant":"tenant-*"}}`)),
			ptFacts(ctx("tenant", "tenant-42")), true, ""},
		{"StringLike: no match", ptDoc(ptCond(`{"StringLike":{"kms:EncryptionContext:tenant":"tenant-*"}}`)),
			ptFacts(ctx("tenant", "other-42")), false, ""},
		{"StringLike: question mark", ptDoc(ptCond(`{"StringLike":{"kms:EncryptionContext:tenant":"t?"}}`)),
			ptFacts(ctx("tenant", "t1")), true, ""},
		{"StringLike: value is case-sensitive", ptDoc(ptCond(`{"StringLike":{"kms:EncryptionContext:tenant":"tenant-*"}}`)),
			ptFacts(ctx("tenant", "TENANT-42")), false, ""},
		{"StringLike: absent", ptDoc(ptCond(`{"StringLike":{"kms:EncryptionContext:tenant":"*"}}`)), ptFacts(), false, ""},
		{"StringNotLike: matching", ptDoc(ptCond(`{"StringNotLike":{"kms:EncryptionContext:tenant":"tenant-*"}}`)),
			ptFacts(ctx("tenant", "tenant-42")), false, ""},
		{"StringNotLike: not matching", ptDoc(ptCond(`{"StringNotLike":{"kms:EncryptionContext:tenant":"tenant-*"}}`)),
			ptFacts(ctx("tenant", "other")), true, ""},

		// ForAllValues over kms:EncryptionContextKeys: every key in the
		// request must be listed; an empty set holds (IAM's rule).
		{"ForAllValues: subset", ptDoc(ptCond(`{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["purpose","tenant"]}}`)),
			ptFacts(ctx("purpose", "phi")), true, ""},
		{"ForAllValues: exact set", ptDoc(ptCond(`{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["purpose","tenant"]}}`)),
			ptFacts(ctx("purpose", "phi", "tenant", "a")), true, ""},
		{"ForAllValues: an extra key", ptDoc(ptCond(`{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["purpose","tenant"]}}`)),
			ptFacts(ctx("purpose", "phi", "extra", "x")), false, ""},
		{"ForAllValues: keys are case-sensitive", ptDoc(ptCond(`{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["purpose"]}}`)),
			ptFacts(ctx("Purpose", "phi")), false, ""},
		{"ForAllValues: empty context holds", ptDoc(ptCond(`{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["purpose"]}}`)),
			ptFacts(), true, ""},
		{"ForAllValues: empty (non-nil) context holds", ptDoc(ptCond(`{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["purpose"]}}`)),
			ptFacts(ctx()), true, ""},
		{"ForAllValues with Null false: empty context refused",
			ptDoc(ptCond(`{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["purpose"]},"Null":{"kms:EncryptionContextKeys":"false"}}`)),
			ptFacts(), false, ""},
		{"ForAllValues with Null false: listed key",
			ptDoc(ptCond(`{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["purpose"]},"Null":{"kms:EncryptionContextKeys":"false"}}`)),
			ptFacts(ctx("purpose", "phi")), true, ""},
		{"ForAllValues:StringLike", ptDoc(ptCond(`{"ForAllValues:StringLike":{"kms:EncryptionContextKeys":"app-*"}}`)),
			ptFacts(ctx("app-a", "1", "app-b", "2")), true, ""},

		// ForAnyValue: at least one key must be listed; an empty set fails.
		{"ForAnyValue: one listed", ptDoc(ptCond(`{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"purpose"}}`)),
			ptFacts(ctx("purpose", "phi", "other", "x")), true, ""},
		{"ForAnyValue: none listed", ptDoc(ptCond(`{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"purpose"}}`)),
			ptFacts(ctx("other", "x")), false, ""},
		{"ForAnyValue: empty context", ptDoc(ptCond(`{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"purpose"}}`)),
			ptFacts(), false, ""},
		{"ForAnyValue:StringLike", ptDoc(ptCond(`{"ForAnyValue:StringLike":{"kms:EncryptionContextKeys":"pur*"}}`)),
			ptFacts(ctx("purpose", "phi")), true, ""},
		{"set operator names are case-insensitive", ptDoc(ptCond(`{"forallvalues:StringEquals":{"kms:EncryptionContextKeys":"purpose"}}`)),
			ptFacts(ctx("other", "x")), false, ""},

		// Null tests presence only.
		{"Null true: absent", ptDoc(ptCond(`{"Null":{"kms:EncryptionContext:purpose":"true"}}`)), ptFacts(), true, ""},
		{"Null true: present", ptDoc(ptCond(`{"Null":{"kms:EncryptionContext:purpose":"true"}}`)), ptFacts(ctx("purpose", "phi")), false, ""},
		{"Null false: present", ptDoc(ptCond(`{"Null":{"kms:EncryptionContext:purpose":"false"}}`)), ptFacts(ctx("purpose", "phi")), true, ""},
		{"Null false: absent", ptDoc(ptCond(`{"Null":{"kms:EncryptionContext:purpose":"false"}}`)), ptFacts(), false, ""},
		{"Null with a JSON boolean", ptDoc(ptCond(`{"Null":{"kms:EncryptionContextKeys":true}}`)), ptFacts(), true, ""},
		{"Null false on EncryptionContextKeys", ptDoc(ptCond(`{"Null":{"kms:EncryptionContextKeys":false}}`)),
			ptFacts(ctx("purpose", "phi")), true, ""},

		// Bool compares "true"/"false" without case.
		{"Bool true", ptDoc(ptCond(`{"Bool":{"kms:EncryptionContext:flag":"true"}}`)), ptFacts(ctx("flag", "true")), true, ""},
		{"Bool true, value in capitals", ptDoc(ptCond(`{"Bool":{"kms:EncryptionContext:flag":"true"}}`)), ptFacts(ctx("flag", "TRUE")), true, ""},
		{"Bool with a JSON boolean", ptDoc(ptCond(`{"Bool":{"kms:EncryptionContext:flag":true}}`)), ptFacts(ctx("flag", "true")), true, ""},
		{"Bool false against true", ptDoc(ptCond(`{"Bool":{"kms:EncryptionContext:flag":"false"}}`)), ptFacts(ctx("flag", "true")), false, ""},
		{"Bool: absent", ptDoc(ptCond(`{"Bool":{"kms:EncryptionContext:flag":"true"}}`)), ptFacts(), false, ""},
		{"BoolIfExists: absent", ptDoc(ptCond(`{"BoolIfExists":{"kms:EncryptionContext:flag":"true"}}`)), ptFacts(), true, ""},

		// Caller keys.
		{"kms:CallerAccount", ptDoc(ptCond(`{"StringEquals":{"kms:CallerAccount":"` + ptAccount + `"}}`)), ptFacts(), true, ""},
		{"kms:CallerAccount: another account", ptDoc(ptCond(`{"StringEquals":{"kms:CallerAccount":"` + ptAccount + `"}}`)),
			ptFacts(asPrincipal(ptMallory, ptOther)), false, ""},
		{"aws:PrincipalArn", ptDoc(ptCond(`{"StringLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/a*"}}`)), ptFacts(), true, ""},
		{"aws:PrincipalArn: another user", ptDoc(ptCond(`{"StringLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/a*"}}`)),
			ptFacts(asPrincipal(ptBob, ptAccount)), false, ""},
		{"aws:username", ptDoc(ptCond(`{"StringEquals":{"aws:username":"alice"}}`)), ptFacts(), true, ""},

		// The usual "deny unless the context says so" guard. IAM evaluates a
		// negated operator on an absent key as true, so a request without
		// the key is denied.
		{"Deny StringNotEquals: right value",
			ptDoc(ptAllowAll, `{"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{"StringNotEquals":{"kms:EncryptionContext:purpose":"phi"}}}`),
			ptFacts(ctx("purpose", "phi")), true, ""},
		{"Deny StringNotEquals: wrong value",
			ptDoc(ptAllowAll, `{"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{"StringNotEquals":{"kms:EncryptionContext:purpose":"phi"}}}`),
			ptFacts(ctx("purpose", "billing")), false, ""},
		{"Deny StringNotEquals: key absent",
			ptDoc(ptAllowAll, `{"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{"StringNotEquals":{"kms:EncryptionContext:purpose":"phi"}}}`),
			ptFacts(), false, "a negated operator (StringNotEquals, StringNotLike, ...) on an absent key must hold, so the Deny applies"},
		{"Deny StringNotLike: key absent",
			ptDoc(ptAllowAll, `{"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{"StringNotLike":{"kms:EncryptionContext:tenant":"tenant-*"}}}`),
			ptFacts(ctx("other", "x")), false, "a negated operator (StringNotEquals, StringNotLike, ...) on an absent key must hold, so the Deny applies"},
		{"Deny StringLike: value starting with *",
			ptDoc(ptAllowAll, `{"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{"StringLike":{"kms:EncryptionContext:tenant":"*-blocked"}}}`),
			ptFacts(ctx("tenant", "*x-blocked")), false, "globMatch matches a * in the pattern literally against a * in the value and then cannot backtrack"},
	})
}

func TestParsePolicyRefusesMalformed(t *testing.T) {
	stmt := func(fields string) string { return ptDoc(`{` + fields + `}`) }
	cases := []struct {
		name string
		doc  string
		bug  string
	}{
		{"empty", "", ""},
		{"not JSON", "Effect: Allow", ""},
		{"truncated JSON", `{"Version":"2012-10-17","Statement":[`, ""},
		{"a JSON list", `[` + ptAllowAll + `]`, ""},
		{"a JSON string", `"policy"`, ""},
		{"JSON null", `null`, ""},
		{"unknown Version", `{"Version":"2020-01-01","Statement":[` + ptAllowAll + `]}`, ""},
		{"no Statement", `{"Version":"2012-10-17"}`, ""},
		{"empty Statement list", `{"Version":"2012-10-17","Statement":[]}`, ""},
		{"Statement is a string", `{"Version":"2012-10-17","Statement":"Allow"}`, ""},
		{"missing Effect", stmt(`"Principal":"*","Action":"kms:*","Resource":"*"`), ""},
		{"bad Effect", stmt(`"Effect":"Permit","Principal":"*","Action":"kms:*","Resource":"*"`), ""},
		{"lower-case Effect", stmt(`"Effect":"allow","Principal":"*","Action":"kms:*","Resource":"*"`), ""},
		{"missing Principal", stmt(`"Effect":"Allow","Action":"kms:*","Resource":"*"`), ""},
		{"string Principal other than *", stmt(`"Effect":"Allow","Principal":"` + ptAlice + `","Action":"kms:*","Resource":"*"`), ""},
		{"Principal is a number", stmt(`"Effect":"Allow","Principal":5,"Action":"kms:*","Resource":"*"`), ""},
		{"Principal is null", stmt(`"Effect":"Allow","Principal":null,"Action":"kms:*","Resource":"*"`), ""},
		{"NotPrincipal", stmt(`"Effect":"Deny","NotPrincipal":{"AWS":"` + ptAlice + `"},"Action":"kms:*","Resource":"*"`), ""},
		{"NotPrincipal with Principal", stmt(`"Effect":"Allow","Principal":"*","NotPrincipal":{"AWS":"` + ptAlice + `"},"Action":"kms:*","Resource":"*"`), ""},
		{"NotResource", stmt(`"Effect":"Allow","Principal":"*","Action":"kms:*","NotResource":"*"`), ""},
		{"neither Action nor NotAction", stmt(`"Effect":"Allow","Principal":"*","Resource":"*"`), ""},
		{"both Action and NotAction", stmt(`"Effect":"Allow","Principal":"*","Action":"kms:*","NotAction":"kms:Decrypt","Resource":"*"`), ""},
		{"empty Action list", stmt(`"Effect":"Allow","Principal":"*","Action":[],"Resource":"*"`), ""},
		{"Action is a number", stmt(`"Effect":"Allow","Principal":"*","Action":5,"Resource":"*"`), ""},
		{"Action list holds a number", stmt(`"Effect":"Allow","Principal":"*","Action":["kms:Decrypt",5],"Resource":"*"`), ""},
		{"missing Resource", stmt(`"Effect":"Allow","Principal":"*","Action":"kms:*"`), ""},
		{"empty Resource list", stmt(`"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":[]`), ""},
		{"unknown operator", stmt(`"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringFuzzy":{"kms:EncryptionContext:a":"b"}}`), ""},
		{"numeric operator", stmt(`"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"NumericLessThan":{"kms:EncryptionContext:a":"5"}}`), ""},
		{"unknown set operator", stmt(`"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"ForSomeValues:StringEquals":{"kms:EncryptionContextKeys":"a"}}`), ""},
		{"condition value is a number", stmt(`"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"kms:EncryptionContext:a":5}}`), ""},
		{"condition value is an object", stmt(`"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"kms:EncryptionContext:a":{"b":"c"}}}`), ""},
		{"Condition is a list", stmt(`"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":["StringEquals"]`), ""},
		{"one good statement, one bad", ptDoc(ptAllowAll, `{"Effect":"Allow","Principal":"*","Resource":"*"}`), ""},
		{"too large", ptDoc(ptAllowAll, `{"Sid":"`+strings.Repeat("x", maxPolicyBytes)+`","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}`), ""},

		// JSON null is not an absent field in IAM; kmsmock's stringList
		// turns it into [""], so these pass the "exactly one of" checks.
		{"Action null", stmt(`"Effect":"Allow","Principal":"*","Action":null,"Resource":"*"`), "stringList decodes JSON null as [\"\"]"},
		{"NotAction null", stmt(`"Effect":"Allow","Principal":"*","NotAction":null,"Resource":"*"`), "stringList decodes JSON null as [\"\"]; this Allow then allows every action"},
		{"Resource null", stmt(`"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":null`), "stringList decodes JSON null as [\"\"]"},
		{"AWS principal list empty", stmt(`"Effect":"Allow","Principal":{"AWS":[]},"Action":"kms:*","Resource":"*"`), ""},
		{"Principal object empty", stmt(`"Effect":"Allow","Principal":{},"Action":"kms:*","Resource":"*"`), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parsePolicy(tc.doc)
			if err == nil {
				t.Fatalf("parsePolicy accepted a malformed document (%d statements):\n%.300s", len(p.statements), tc.doc)
			}
			if p != nil {
				t.Errorf("parsePolicy returned a policy with its error")
			}
			if err.Error() == "" {
				t.Errorf("empty error text")
			}
		})
	}
}

func TestParsePolicyAccepts(t *testing.T) {
	cases := []struct {
		name       string
		doc        string
		statements int
	}{
		{"default key policy", defaultPolicy(ptAccount), 1},
		{"Statement as a single object", `{"Version":"2012-10-17","Statement":` + ptAllowAll + `}`, 1},
		{"Statement as a single object after white space", "{\"Statement\": \n\t " + ptAllowAll + "}", 1},
		{"no Version", `{"Statement":[` + ptAllowAll + `]}`, 1},
		{"Version 2008-10-17", `{"Version":"2008-10-17","Statement":[` + ptAllowAll + `]}`, 1},
		{"two statements", ptDoc(ptAllowAll, `{"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*"}`), 2},
		{"Id, Sid and unknown fields ignored", `{"Id":"key-1","Version":"2012-10-17","Extra":1,"Statement":[{"Sid":"s","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}`, 1},
		{"service principal", ptDoc(`{"Effect":"Allow","Principal":{"Service":"logs.amazonaws.com"},"Action":"kms:*","Resource":"*"}`), 1},
		{"Bool with a JSON boolean", ptDoc(ptCond(`{"Bool":{"aws:SecureTransport":false}}`)), 1},
		{"every supported operator",
			ptDoc(ptCond(`{"StringEquals":{"a":"b"},"StringNotEquals":{"a":"b"},"StringEqualsIgnoreCase":{"a":"b"},
				"StringNotEqualsIgnoreCase":{"a":"b"},"StringLike":{"a":"b"},"StringNotLike":{"a":"b"},"Bool":{"a":"true"},
				"Null":{"a":"true"},"StringEqualsIfExists":{"a":"b"},"ForAllValues:StringLike":{"a":"b"},"ForAnyValue:StringNotEquals":{"a":"b"}}`)), 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parsePolicy(tc.doc)
			require.NoError(t, err, tc.doc)
			require.Len(t, p.statements, tc.statements)
		})
	}

	// The size limit is on bytes: exactly maxPolicyBytes is accepted.
	head := `{"Version":"2012-10-17","Statement":[{"Sid":"`
	tail := `","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}`
	doc := head + strings.Repeat("x", maxPolicyBytes-len(head)-len(tail)) + tail
	require.Len(t, doc, maxPolicyBytes)
	_, err := parsePolicy(doc)
	require.NoError(t, err, "a policy of exactly the limit")
	_, err = parsePolicy(doc[:len(head)] + "x" + doc[len(head):])
	require.Error(t, err, "a policy one byte over the limit")
}

// TestParsePolicyErrorsDoNotEchoValues pushes a secret through every field of
// malformed documents: the error text names what is wrong, never a value.
func TestParsePolicyErrorsDoNotEchoValues(t *testing.T) {
	const canary = "CANARY-PHI-1234"
	docs := []string{
		canary,
		`{"Version":"` + canary + `","Statement":[]}`,
		`{"Statement":"` + canary + `"}`,
		ptDoc(`{"Sid":"` + canary + `","Effect":"` + canary + `","Principal":"*","Action":"kms:*","Resource":"*"}`),
		ptDoc(`{"Effect":"Allow","Principal":"` + canary + `","Action":"kms:*","Resource":"*"}`),
		ptDoc(`{"Effect":"Allow","Principal":{"AWS":5,"` + canary + `":"x"},"Action":"kms:*","Resource":"*"}`),
		ptDoc(`{"Effect":"Allow","Principal":"*","Action":"` + canary + `","NotAction":"` + canary + `","Resource":"*"}`),
		ptDoc(`{"Effect":"Allow","Principal":"*","Action":"kms:*"}`),
		ptDoc(`{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"` + canary + `":{"kms:EncryptionContext:a":"` + canary + `"}}}`),
		ptDoc(`{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"` + canary + `:StringEquals":{"a":"b"}}}`),
		ptDoc(`{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"kms:EncryptionContext:` + canary + `":[5,"` + canary + `"]}}}`),
		ptDoc(`{"Effect":"Deny","NotPrincipal":{"AWS":"` + canary + `"},"Action":"kms:*","Resource":"*"}`),
		`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"` + canary + `"` + strings.Repeat(" ", maxPolicyBytes) + `}]}`,
		`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"` + canary,
	}
	for i, doc := range docs {
		_, err := parsePolicy(doc)
		if err == nil {
			t.Errorf("document %d was accepted", i)
			continue
		}
		if strings.Contains(err.Error(), canary) || strings.Contains(strings.ToLower(err.Error()), strings.ToLower(canary)) {
			t.Errorf("document %d: error echoes the value: %q", i, err)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
		bug        string
	}{
		{"", "", true, ""},
		{"", "a", false, ""},
		{"*", "", true, ""},
		{"*", "anything at all", true, ""},
		{"**", "", true, ""},
		{"?", "", false, ""},
		{"?", "a", true, ""},
		{"?", "ab", false, ""},
		{"abc", "abc", true, ""},
		{"abc", "abd", false, ""},
		{"abc", "ab", false, ""},
		{"ab", "abc", false, ""},
		{"a*", "a", true, ""},
		{"a*", "abc", true, ""},
		{"*c", "abc", true, ""},
		{"*c", "abd", false, ""},
		{"a*c", "ac", true, ""},
		{"a*c", "abbbbc", true, ""},
		{"a*c", "abbbbcd", false, ""},
		{"a*b*c", "aXbYc", true, ""},
		{"a*b*c", "aXcYb", false, ""},
		{"a?c", "abc", true, ""},
		{"a?c", "ac", false, ""},
		{"*?", "", false, ""},
		{"*?", "x", true, ""},
		{"*a*", "banana", true, ""},
		{"*ana", "banana", true, ""}, // needs backtracking past the first "ana"
		{"*an*na", "banana", true, ""},
		{"kms:GenerateDataKey*", "kms:GenerateDataKeyWithoutPlaintext", true, ""},
		{"Abc", "abc", false, ""}, // case-sensitive; callers fold where IAM does
		{"a*", "a*", true, ""},
		{"*", "*", true, ""},
		{"?", "*", true, ""},
		{"*a", "*ba", true, "a * in the value is consumed by the literal-match branch before the * branch, losing the backtrack point"},
		{"*/secret", "*x/secret", true, "a * in the value is consumed by the literal-match branch before the * branch, losing the backtrack point"},
		{"?", "é", true, "? matches one byte, IAM matches one character"},
		{"caf?", "café", true, "? matches one byte, IAM matches one character"},
	}
	for _, tc := range cases {
		if got := globMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

// TestGlobMatchPathological runs patterns that take exponential time in a
// naive backtracking matcher against long subjects. globMatch is O(p·s): the
// largest case here is about 40 × 200000 steps, well under a second even with
// -race, where exponential backtracking would never finish. The deadline is
// deliberately generous: it catches a blow-up, not a slowdown (benchmarks
// below measure speed).
func TestGlobMatchPathological(t *testing.T) {
	long := strings.Repeat("a", 200000)
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"*a*a*a*a*a*b", long, false},
		{"*a*a*a*a*a*b", long + "b", true},
		{strings.Repeat("*a", 20) + "*b", long, false},
		{strings.Repeat("a*", 20) + "b", long, false},
		{strings.Repeat("?*", 20) + "b", long, false},
		{strings.Repeat("*", 1000) + "b", long, false},
		{"*" + strings.Repeat("a", 1000) + "b", long, false},
		{strings.Repeat("*ab", 10), strings.Repeat("ab", 100000), true},
		{strings.Repeat("*ab", 10) + "c", strings.Repeat("ab", 100000), false},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, tc := range cases {
			if got := globMatch(tc.pattern, tc.s); got != tc.want {
				t.Errorf("globMatch(%.40q..., %d bytes) = %v, want %v", tc.pattern, len(tc.s), got, tc.want)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("globMatch did not finish in 30s: exponential backtracking?")
	}
}

// TestPolicyAllowsPathological checks the same through a policy: a 32 KiB
// policy of wildcard conditions against a maximal encryption context.
func TestPolicyAllowsPathological(t *testing.T) {
	var conds []string
	for i := range 60 {
		conds = append(conds, `"kms:EncryptionContext:k`+string(rune('a'+i%26))+string(rune('a'+i/26))+`":"`+strings.Repeat("*a", 100)+`*b"`)
	}
	doc := ptDoc(ptCond(`{"ForAnyValue:StringLike":{"kms:EncryptionContextKeys":"` + strings.Repeat("*a", 200) + `*b"},"StringLike":{` + strings.Join(conds, ",") + `}}`))
	require.LessOrEqual(t, len(doc), maxPolicyBytes)
	p, err := parsePolicy(doc)
	require.NoError(t, err)
	rq := ptFacts(withContext())
	for i := range 60 {
		rq.context["k"+string(rune('a'+i%26))+string(rune('a'+i/26))] = strings.Repeat("a", maxEncryptionContext/60-4)
	}
	done := make(chan bool)
	go func() { done <- p.allows(&rq) }()
	select {
	case got := <-done:
		if got {
			t.Error("allows = true, want false")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("allows did not finish in 30s")
	}
}

func BenchmarkGlobMatchPathological(b *testing.B) {
	s := strings.Repeat("a", 4096)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		if globMatch("*a*a*a*a*a*b", s) {
			b.Fatal("matched")
		}
	}
}
