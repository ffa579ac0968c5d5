package kmsmock_test

import (
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// policyKey creates a key under the separation-of-duty policy.
func (e *env) policyKey() (*types.KeyMetadata, error) {
	return e.newKey(e.separationPolicy())
}

func policyCases() []conformanceCase {
	return []conformanceCase{
		{name: "GetKeyPolicy returns the default policy for the account root", ops: []string{"GetKeyPolicy"}, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			out, err := e.admin().GetKeyPolicy(e.ctx, &kms.GetKeyPolicyInput{KeyId: md.KeyId, PolicyName: aws.String("default")})
			if err != nil {
				return err
			}
			var doc struct {
				Statement []struct {
					Effect    string
					Principal struct{ AWS string }
					Action    string
				}
			}
			if err := json.Unmarshal([]byte(aws.ToString(out.Policy)), &doc); err != nil {
				return fmt.Errorf("the default policy is not JSON: %w", err)
			}
			for _, st := range doc.Statement {
				if st.Effect == "Allow" && st.Principal.AWS == "arn:aws:iam::"+e.account+":root" && st.Action == "kms:*" {
					return nil
				}
			}
			return fmt.Errorf("the default policy does not give the account root kms:*: %s", aws.ToString(out.Policy))
		}},
		{name: "PutKeyPolicy replaces the policy", ops: []string{"PutKeyPolicy", "GetKeyPolicy"}, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			doc := e.separationPolicy()
			if _, err := e.admin().PutKeyPolicy(e.ctx, &kms.PutKeyPolicyInput{KeyId: md.KeyId, PolicyName: aws.String("default"), Policy: aws.String(doc)}); err != nil {
				return err
			}
			out, err := e.admin().GetKeyPolicy(e.ctx, &kms.GetKeyPolicyInput{KeyId: md.KeyId, PolicyName: aws.String("default")})
			if err != nil {
				return err
			}
			return check(sameJSON(aws.ToString(out.Policy), doc), "GetKeyPolicy returned another document")
		}},
		{name: "PutKeyPolicy refuses a malformed document", ops: []string{"PutKeyPolicy"}, moto: motoNoPolicy, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			_, err = e.admin().PutKeyPolicy(e.ctx, &kms.PutKeyPolicyInput{KeyId: md.KeyId, PolicyName: aws.String("default"), Policy: aws.String(`{"Statement": "nope"`)})
			return expect[*types.MalformedPolicyDocumentException](err)
		}},
		{name: "PutKeyPolicy refuses a policy that locks the caller out unless bypassed", ops: []string{"PutKeyPolicy"}, moto: motoNoPolicy, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			lockout := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + e.user("someone-else") + `"},"Action":"kms:*","Resource":"*"}]}`
			_, err = e.admin().PutKeyPolicy(e.ctx, &kms.PutKeyPolicyInput{KeyId: md.KeyId, Policy: aws.String(lockout)})
			if err := expect[*types.MalformedPolicyDocumentException](err); err != nil {
				return err
			}
			_, err = e.admin().PutKeyPolicy(e.ctx, &kms.PutKeyPolicyInput{KeyId: md.KeyId, Policy: aws.String(lockout), BypassPolicyLockoutSafetyCheck: true})
			if err != nil {
				return fmt.Errorf("bypassed PutKeyPolicy: %w", err)
			}
			_, err = e.describe(aws.ToString(md.KeyId))
			return expectCode(err, "AccessDeniedException")
		}},
		{name: "a service principal uses the key under its tenant condition", ops: []string{"GenerateDataKey", "Decrypt", "Encrypt"}, run: func(e *env) error {
			md, err := e.policyKey()
			if err != nil {
				return err
			}
			svc := e.client("svc-tenant-a")
			out, err := svc.GenerateDataKey(e.ctx, &kms.GenerateDataKeyInput{KeyId: md.KeyId, KeySpec: types.DataKeySpecAes256, EncryptionContext: tenantA})
			if err != nil {
				return fmt.Errorf("GenerateDataKey: %w", err)
			}
			if _, err := e.decrypt(svc, out.CiphertextBlob, tenantA); err != nil {
				return fmt.Errorf("Decrypt: %w", err)
			}
			_, err = e.encrypt(svc, aws.ToString(md.KeyId), []byte("x"), tenantA)
			return err
		}},
		{name: "a service principal is denied another tenant's context", ops: []string{"GenerateDataKey"}, moto: motoNoPolicy, run: func(e *env) error {
			md, err := e.policyKey()
			if err != nil {
				return err
			}
			svc := e.client("svc-tenant-a")
			_, otherTenant := svc.GenerateDataKey(e.ctx, &kms.GenerateDataKeyInput{KeyId: md.KeyId, KeySpec: types.DataKeySpecAes256, EncryptionContext: map[string]string{"tenant": "b"}})
			_, noContext := svc.GenerateDataKey(e.ctx, &kms.GenerateDataKeyInput{KeyId: md.KeyId, KeySpec: types.DataKeySpecAes256})
			_, caseChanged := svc.GenerateDataKey(e.ctx, &kms.GenerateDataKeyInput{KeyId: md.KeyId, KeySpec: types.DataKeySpecAes256, EncryptionContext: map[string]string{"tenant": "A"}})
			return first(expectCode(otherTenant, "AccessDeniedException"), expectCode(noContext, "AccessDeniedException"),
				expectCode(caseChanged, "AccessDeniedException"))
		}},
		{name: "a service principal cannot administer the key", ops: []string{"DisableKey", "PutKeyPolicy", "ScheduleKeyDeletion"}, moto: motoNoPolicy, run: func(e *env) error {
			md, err := e.policyKey()
			if err != nil {
				return err
			}
			svc := e.client("svc-tenant-a")
			_, disable := svc.DisableKey(e.ctx, &kms.DisableKeyInput{KeyId: md.KeyId})
			_, put := svc.PutKeyPolicy(e.ctx, &kms.PutKeyPolicyInput{KeyId: md.KeyId, Policy: aws.String(e.separationPolicy()), BypassPolicyLockoutSafetyCheck: true})
			_, del := svc.ScheduleKeyDeletion(e.ctx, &kms.ScheduleKeyDeletionInput{KeyId: md.KeyId})
			got, err := e.describe(aws.ToString(md.KeyId))
			if err != nil {
				return err
			}
			return first(expectCode(disable, "AccessDeniedException"), expectCode(put, "AccessDeniedException"),
				expectCode(del, "AccessDeniedException"), check(got.KeyState == types.KeyStateEnabled, "the key is now %s", got.KeyState))
		}},
		{name: "a custodian administers the key", ops: []string{"DisableKey", "EnableKey", "EnableKeyRotation", "DescribeKey", "ScheduleKeyDeletion", "CancelKeyDeletion"}, run: func(e *env) error {
			md, err := e.policyKey()
			if err != nil {
				return err
			}
			cust := e.client("custodian")
			steps := []func() error{
				func() error { _, err := cust.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: md.KeyId}); return err },
				func() error { _, err := cust.DisableKey(e.ctx, &kms.DisableKeyInput{KeyId: md.KeyId}); return err },
				func() error { _, err := cust.EnableKey(e.ctx, &kms.EnableKeyInput{KeyId: md.KeyId}); return err },
				func() error {
					_, err := cust.EnableKeyRotation(e.ctx, &kms.EnableKeyRotationInput{KeyId: md.KeyId})
					return err
				},
				func() error {
					_, err := cust.ScheduleKeyDeletion(e.ctx, &kms.ScheduleKeyDeletionInput{KeyId: md.KeyId, PendingWindowInDays: aws.Int32(30)})
					return err
				},
				func() error {
					_, err := cust.CancelKeyDeletion(e.ctx, &kms.CancelKeyDeletionInput{KeyId: md.KeyId})
					return err
				},
			}
			for i, step := range steps {
				if err := step(); err != nil {
					return fmt.Errorf("custodian step %d: %w", i+1, err)
				}
			}
			return nil
		}},
		{name: "a custodian cannot use the key", ops: []string{"Encrypt", "Decrypt", "GenerateDataKey", "ReEncrypt"}, moto: motoNoPolicy, run: func(e *env) error {
			md, err := e.policyKey()
			if err != nil {
				return err
			}
			blob, err := e.encrypt(e.admin(), aws.ToString(md.KeyId), []byte("phi"), tenantA)
			if err != nil {
				return err
			}
			cust := e.client("custodian")
			_, enc := e.encrypt(cust, aws.ToString(md.KeyId), []byte("x"), tenantA)
			_, dec := e.decrypt(cust, blob, tenantA)
			_, gdk := cust.GenerateDataKey(e.ctx, &kms.GenerateDataKeyInput{KeyId: md.KeyId, KeySpec: types.DataKeySpecAes256, EncryptionContext: tenantA})
			_, re := cust.ReEncrypt(e.ctx, &kms.ReEncryptInput{CiphertextBlob: blob, SourceEncryptionContext: tenantA, DestinationKeyId: md.KeyId, DestinationEncryptionContext: tenantA})
			return first(expectCode(enc, "AccessDeniedException"), expectCode(dec, "AccessDeniedException"),
				expectCode(gdk, "AccessDeniedException"), expectCode(re, "AccessDeniedException"))
		}},
		{name: "a stranger can neither see nor use the key, whatever its state", ops: []string{"DescribeKey", "Encrypt", "DisableKey"}, moto: motoNoPolicy, run: func(e *env) error {
			md, err := e.policyKey()
			if err != nil {
				return err
			}
			if _, err := e.admin().DisableKey(e.ctx, &kms.DisableKeyInput{KeyId: md.KeyId}); err != nil {
				return err
			}
			stranger := e.client("stranger")
			_, desc := stranger.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: md.KeyId})
			// The policy is checked before the key state, so a stranger
			// does not learn that the key is disabled.
			_, enc := e.encrypt(stranger, aws.ToString(md.KeyId), []byte("x"), tenantA)
			return first(expectCode(desc, "AccessDeniedException"), expectCode(enc, "AccessDeniedException"))
		}},
		{name: "ForAllValues:StringEquals limits the context keys", ops: []string{"Encrypt"}, moto: motoNoPolicy, run: func(e *env) error {
			doc := `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Principal":{"AWS":"` + e.user("admin") + `"},"Action":"kms:*","Resource":"*"},
 {"Effect":"Allow","Principal":{"AWS":"` + e.user("svc-keys") + `"},"Action":"kms:Encrypt","Resource":"*",
  "Condition":{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["tenant","purpose"]}}}]}`
			md, err := e.newKey(doc)
			if err != nil {
				return err
			}
			svc := e.client("svc-keys")
			_, allowed := e.encrypt(svc, aws.ToString(md.KeyId), []byte("x"), tenantA)
			_, extra := e.encrypt(svc, aws.ToString(md.KeyId), []byte("x"), map[string]string{"tenant": "a", "patient": "p1"})
			return first(allowed, expectCode(extra, "AccessDeniedException"))
		}},
		{name: "StringLike on a context value", ops: []string{"Encrypt"}, moto: motoNoPolicy, run: func(e *env) error {
			doc := `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Principal":{"AWS":"` + e.user("admin") + `"},"Action":"kms:*","Resource":"*"},
 {"Effect":"Allow","Principal":{"AWS":"` + e.user("svc-like") + `"},"Action":"kms:Encrypt","Resource":"*",
  "Condition":{"StringLike":{"kms:EncryptionContext:table":"patients_*"}}}]}`
			md, err := e.newKey(doc)
			if err != nil {
				return err
			}
			svc := e.client("svc-like")
			_, allowed := e.encrypt(svc, aws.ToString(md.KeyId), []byte("x"), map[string]string{"table": "patients_2026"})
			_, denied := e.encrypt(svc, aws.ToString(md.KeyId), []byte("x"), map[string]string{"table": "billing"})
			return first(allowed, expectCode(denied, "AccessDeniedException"))
		}},
		{name: "an explicit Deny overrides an Allow", ops: []string{"Decrypt"}, moto: motoNoPolicy, run: func(e *env) error {
			doc := `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + e.account + `:root"},"Action":"kms:*","Resource":"*"},
 {"Effect":"Deny","Principal":{"AWS":"` + e.user("auditor") + `"},"Action":["kms:Decrypt","kms:GenerateDataKey*"],"Resource":"*"}]}`
			md, err := e.newKey(doc)
			if err != nil {
				return err
			}
			blob, err := e.encrypt(e.admin(), aws.ToString(md.KeyId), []byte("phi"), nil)
			if err != nil {
				return err
			}
			auditor := e.client("auditor")
			_, dec := e.decrypt(auditor, blob, nil)
			_, desc := auditor.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: md.KeyId})
			return first(expectCode(dec, "AccessDeniedException"), desc)
		}},
		{name: "ReEncrypt needs ReEncryptFrom on the source and ReEncryptTo on the destination", ops: []string{"ReEncrypt"}, moto: motoNoPolicy, run: func(e *env) error {
			from := `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Principal":{"AWS":"` + e.user("admin") + `"},"Action":"kms:*","Resource":"*"},
 {"Effect":"Allow","Principal":{"AWS":"` + e.user("rewrapper") + `"},"Action":"kms:ReEncryptFrom","Resource":"*"}]}`
			src, err := e.newKey(from)
			if err != nil {
				return err
			}
			dst, err := e.newKey("")
			if err != nil {
				return err
			}
			blob, err := e.encrypt(e.admin(), aws.ToString(src.KeyId), []byte("dk"), nil)
			if err != nil {
				return err
			}
			// The destination's default policy lets the whole account in,
			// so the rewrapper may ReEncryptTo it; the source allows only
			// ReEncryptFrom, which is all ReEncrypt needs there.
			_, ok := e.client("rewrapper").ReEncrypt(e.ctx, &kms.ReEncryptInput{CiphertextBlob: blob, DestinationKeyId: dst.KeyId})
			// The reverse direction lacks ReEncryptTo on src.
			blob2, err := e.encrypt(e.admin(), aws.ToString(dst.KeyId), []byte("dk"), nil)
			if err != nil {
				return err
			}
			_, denied := e.client("rewrapper").ReEncrypt(e.ctx, &kms.ReEncryptInput{CiphertextBlob: blob2, DestinationKeyId: src.KeyId})
			return first(ok, expectCode(denied, "AccessDeniedException"))
		}},
		{name: "kms:ReEncryptOnSameKey allows ReEncrypt only back under the same key", ops: []string{"ReEncrypt"}, moto: motoNoPolicy, run: func(e *env) error {
			doc := `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Principal":{"AWS":"` + e.user("admin") + `"},"Action":"kms:*","Resource":"*"},
 {"Effect":"Allow","Principal":{"AWS":"` + e.user("same-key") + `"},"Action":["kms:ReEncryptFrom","kms:ReEncryptTo"],"Resource":"*",
  "Condition":{"Bool":{"kms:ReEncryptOnSameKey":true}}}]}`
			md, err := e.newKey(doc)
			if err != nil {
				return err
			}
			other, err := e.newKey("")
			if err != nil {
				return err
			}
			blob, err := e.encrypt(e.admin(), aws.ToString(md.KeyId), []byte("dk"), tenantA)
			if err != nil {
				return err
			}
			c := e.client("same-key")
			_, same := c.ReEncrypt(e.ctx, &kms.ReEncryptInput{CiphertextBlob: blob, SourceEncryptionContext: tenantA,
				DestinationKeyId: md.KeyId, DestinationEncryptionContext: map[string]string{"tenant": "a", "purpose": "moved"}})
			// The other key's default policy admits the whole account
			// (ReEncryptTo), but the source refuses ReEncryptFrom to it.
			_, away := c.ReEncrypt(e.ctx, &kms.ReEncryptInput{CiphertextBlob: blob, SourceEncryptionContext: tenantA, DestinationKeyId: other.KeyId})
			return first(same, expectCode(away, "AccessDeniedException"))
		}},
	}
}

func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
