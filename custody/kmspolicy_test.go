package custody_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

// policyWorld is kmsmock with a client per principal (kmsmock names the
// principal arn:aws:iam::ACCOUNT:user/<access key id>) and one key under
// the generated policy.
type policyWorld struct {
	ctx                context.Context
	kms                *kmsmock.Local
	cfg                custody.KMSKeyPolicyConfig
	custodian, service *kms.Client
	auditor, stranger  *kms.Client
	keyARN             string
	doc                []byte
}

const policyStore = "policy-test-store"

func (w *policyWorld) user(name string) string {
	return "arn:aws:iam::" + w.kms.Account() + ":user/" + name
}

func newPolicyWorld(t *testing.T) *policyWorld {
	t.Helper()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	w := &policyWorld{ctx: context.Background(), kms: l,
		custodian: l.Client("custodian"), service: l.Client("svc-patients"),
		auditor: l.Client("auditor"), stranger: l.Client("stranger")}
	w.cfg = custody.KMSKeyPolicyConfig{
		Account:             l.Account(),
		Custodians:          []string{w.user("custodian"), w.user("custodian-2")},
		Services:            []string{w.user("svc-patients")},
		Auditors:            []string{w.user("auditor")},
		RequiredContextKeys: []string{"tenant", "purpose"},
		BranchKeyStore:      true,
		LogicalStoreName:    policyStore,
	}
	// The key starts under KMS's default policy (the account principal);
	// a custodian replaces it, and the lockout check passes because the
	// new policy still lets custodians change it.
	out, err := w.custodian.CreateKey(w.ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	w.keyARN = aws.ToString(out.KeyMetadata.Arn)
	w.doc, err = custody.GenerateKMSKeyPolicy(w.cfg)
	require.NoError(t, err)
	_, err = w.custodian.PutKeyPolicy(w.ctx, &kms.PutKeyPolicyInput{KeyId: &w.keyARN, Policy: aws.String(string(w.doc))})
	require.NoError(t, err)
	return w
}

var dataContext = map[string]string{"tenant": "general-hospital", "purpose": "phi"}

// branchContext is a branch key's encryption context as
// keyring.BranchKeys binds it.
func (w *policyWorld) branchContext() map[string]string {
	return map[string]string{"branch-key-id": "b", "type": "branch:version:v", "create-time": "2026-01-01T00:00:00.000000Z",
		"tablename": policyStore, "kms-arn": w.keyARN, "hierarchy-version": "1"}
}

func requireDenied(t *testing.T, err error, what string) {
	t.Helper()
	var api smithy.APIError
	require.Truef(t, errors.As(err, &api) && api.ErrorCode() == "AccessDeniedException", "%s: want AccessDeniedException, got %v", what, err)
}

// KMS (kmsmock's policy engine) enforces the generated policy per
// principal: services use the key only under the context, custodians
// administer it and never decrypt.
func TestKMSKeyPolicyEnforcedByKMS(t *testing.T) {
	w := newPolicyWorld(t)
	ctx, key := w.ctx, &w.keyARN

	t.Run("service uses the key under the required context", func(t *testing.T) {
		gdk, err := w.service.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: key, KeySpec: types.DataKeySpecAes256, EncryptionContext: dataContext})
		require.NoError(t, err)
		dec, err := w.service.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: gdk.CiphertextBlob, EncryptionContext: dataContext})
		require.NoError(t, err)
		require.Equal(t, gdk.Plaintext, dec.Plaintext)
		_, err = w.service.Encrypt(ctx, &kms.EncryptInput{KeyId: key, Plaintext: []byte("dk"), EncryptionContext: dataContext})
		require.NoError(t, err)
		_, err = w.service.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: key, KeySpec: types.DataKeySpecAes256, EncryptionContext: dataContext})
		require.NoError(t, err)
	})
	t.Run("service without a required context key is denied", func(t *testing.T) {
		_, noPurpose := w.service.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: key, KeySpec: types.DataKeySpecAes256,
			EncryptionContext: map[string]string{"tenant": "general-hospital"}})
		requireDenied(t, noPurpose, "GenerateDataKey without purpose")
		_, none := w.service.Encrypt(ctx, &kms.EncryptInput{KeyId: key, Plaintext: []byte("dk")})
		requireDenied(t, none, "Encrypt without context")
	})
	t.Run("service cannot administer the key", func(t *testing.T) {
		_, del := w.service.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: key, PendingWindowInDays: aws.Int32(7)})
		requireDenied(t, del, "service ScheduleKeyDeletion")
		_, put := w.service.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: key, Policy: aws.String(string(w.doc)), BypassPolicyLockoutSafetyCheck: true})
		requireDenied(t, put, "service PutKeyPolicy")
		_, disable := w.service.DisableKey(ctx, &kms.DisableKeyInput{KeyId: key})
		requireDenied(t, disable, "service DisableKey")
	})
	t.Run("custodian cannot decrypt or put plaintext in", func(t *testing.T) {
		blob, err := w.service.Encrypt(ctx, &kms.EncryptInput{KeyId: key, Plaintext: []byte("phi"), EncryptionContext: dataContext})
		require.NoError(t, err)
		_, dec := w.custodian.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob.CiphertextBlob, EncryptionContext: dataContext})
		requireDenied(t, dec, "custodian Decrypt")
		_, enc := w.custodian.Encrypt(ctx, &kms.EncryptInput{KeyId: key, Plaintext: []byte("planted"), EncryptionContext: w.branchContext()})
		requireDenied(t, enc, "custodian Encrypt")
		_, gdk := w.custodian.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: key, KeySpec: types.DataKeySpecAes256, EncryptionContext: w.branchContext()})
		requireDenied(t, gdk, "custodian GenerateDataKey")
	})
	t.Run("custodian makes and re-encrypts branch keys under the same key only", func(t *testing.T) {
		made, err := w.custodian.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: key, NumberOfBytes: aws.Int32(32), EncryptionContext: w.branchContext()})
		require.NoError(t, err)
		active := w.branchContext()
		active["type"] = "branch:ACTIVE"
		_, err = w.custodian.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: made.CiphertextBlob, SourceEncryptionContext: w.branchContext(),
			DestinationKeyId: key, DestinationEncryptionContext: active})
		require.NoError(t, err, "ReEncrypt back under the same key (the ACTIVE copy)")
		// Another key the custodian controls completely (KMS's default
		// policy): re-encrypting a branch key there would hand it over.
		other, err := w.custodian.CreateKey(ctx, &kms.CreateKeyInput{})
		require.NoError(t, err)
		_, away := w.custodian.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: made.CiphertextBlob, SourceEncryptionContext: w.branchContext(),
			DestinationKeyId: other.KeyMetadata.KeyId, DestinationEncryptionContext: w.branchContext()})
		requireDenied(t, away, "custodian ReEncrypt to another key")
		_, dataCtx := w.custodian.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: key, NumberOfBytes: aws.Int32(32), EncryptionContext: dataContext})
		requireDenied(t, dataCtx, "custodian GenerateDataKeyWithoutPlaintext outside the branch key context")
	})
	t.Run("custodian administers the key", func(t *testing.T) {
		_, err := w.custodian.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: key})
		require.NoError(t, err)
		_, err = w.custodian.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: key})
		require.NoError(t, err)
		_, err = w.custodian.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: key, PendingWindowInDays: aws.Int32(30)})
		require.NoError(t, err)
		_, err = w.custodian.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: key})
		require.NoError(t, err)
		_, err = w.custodian.EnableKey(ctx, &kms.EnableKeyInput{KeyId: key})
		require.NoError(t, err)
	})
	t.Run("auditor reads, stranger sees nothing", func(t *testing.T) {
		_, err := w.auditor.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: key})
		require.NoError(t, err)
		_, disable := w.auditor.DisableKey(ctx, &kms.DisableKeyInput{KeyId: key})
		requireDenied(t, disable, "auditor DisableKey")
		_, enc := w.auditor.Encrypt(ctx, &kms.EncryptInput{KeyId: key, Plaintext: []byte("x"), EncryptionContext: dataContext})
		requireDenied(t, enc, "auditor Encrypt")
		_, desc := w.stranger.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: key})
		requireDenied(t, desc, "stranger DescribeKey")
	})
	t.Run("the checker finds nothing in the key's policy", func(t *testing.T) {
		found, err := custody.CheckKMSKey(ctx, w.auditor, w.keyARN, w.cfg)
		require.NoError(t, err)
		require.Empty(t, found)
	})
}

// With AccountRootAdministers, the account principal may administer (in
// kmsmock, which has no IAM, that is every principal of the account), but
// the explicit denies still keep custodians from plaintext and services
// from administration.
func TestKMSKeyPolicyAccountRootKeepsDenies(t *testing.T) {
	w := newPolicyWorld(t)
	w.cfg.AccountRootAdministers = true
	doc, err := custody.GenerateKMSKeyPolicy(w.cfg)
	require.NoError(t, err)
	require.Contains(t, string(doc), `"arn:aws:iam::`+w.kms.Account()+`:root"`)
	_, err = w.custodian.PutKeyPolicy(w.ctx, &kms.PutKeyPolicyInput{KeyId: &w.keyARN, Policy: aws.String(string(doc))})
	require.NoError(t, err)

	_, err = w.stranger.DescribeKey(w.ctx, &kms.DescribeKeyInput{KeyId: &w.keyARN})
	require.NoError(t, err, "the account principal delegates to IAM, which kmsmock takes as allowing every principal")
	_, del := w.service.ScheduleKeyDeletion(w.ctx, &kms.ScheduleKeyDeletionInput{KeyId: &w.keyARN, PendingWindowInDays: aws.Int32(7)})
	requireDenied(t, del, "service ScheduleKeyDeletion despite the account statement")
	blob, err := w.service.Encrypt(w.ctx, &kms.EncryptInput{KeyId: &w.keyARN, Plaintext: []byte("phi"), EncryptionContext: dataContext})
	require.NoError(t, err)
	_, dec := w.custodian.Decrypt(w.ctx, &kms.DecryptInput{CiphertextBlob: blob.CiphertextBlob, EncryptionContext: dataContext})
	requireDenied(t, dec, "custodian Decrypt despite the account statement")

	found, err := custody.CheckKMSKeyPolicy(doc, w.cfg)
	require.NoError(t, err)
	require.Empty(t, found)
	w.cfg.AccountRootAdministers = false
	found, err = custody.CheckKMSKeyPolicy(doc, w.cfg)
	require.NoError(t, err)
	require.Equal(t, []custody.KMSPolicyViolationCode{custody.KMSPolicyAccountRoot}, codes(found))
	require.Equal(t, "AccountRootAdministersKey", found[0].Sid)
}

// A bad policy put with BypassPolicyLockoutSafetyCheck (the putter gave
// up its own PutKeyPolicy) is reported when the key is checked.
func TestCheckKMSKeyReportsABypassedPolicy(t *testing.T) {
	w := newPolicyWorld(t)
	bad := `{"Version":"2012-10-17","Statement":[
 {"Sid":"Everything","Effect":"Allow","Principal":{"AWS":"` + w.user("svc-patients") + `"},"Action":"kms:*","Resource":"*"},
 {"Sid":"Read","Effect":"Allow","Principal":{"AWS":"` + w.user("auditor") + `"},"Action":["kms:DescribeKey","kms:GetKeyPolicy"],"Resource":"*"}]}`
	_, err := w.custodian.PutKeyPolicy(w.ctx, &kms.PutKeyPolicyInput{KeyId: &w.keyARN, Policy: aws.String(bad)})
	var malformed *types.MalformedPolicyDocumentException
	require.ErrorAs(t, err, &malformed, "KMS's lockout check refuses it without the bypass")
	_, err = w.custodian.PutKeyPolicy(w.ctx, &kms.PutKeyPolicyInput{KeyId: &w.keyARN, Policy: aws.String(bad), BypassPolicyLockoutSafetyCheck: true})
	require.NoError(t, err)

	found, err := custody.CheckKMSKey(w.ctx, w.auditor, w.keyARN, w.cfg)
	require.NoError(t, err)
	require.Equal(t, []custody.KMSPolicyViolationCode{custody.KMSPolicyServiceAdministers, custody.KMSPolicyServiceWithoutContext}, codes(found))
	for _, v := range found {
		require.Equal(t, "Everything", v.Sid)
		require.Equal(t, w.user("svc-patients"), v.Principal)
	}
	require.Contains(t, found[0].Actions, "kms:PutKeyPolicy")
	require.Contains(t, found[0].Actions, "kms:ScheduleKeyDeletion")

	// The custodian locked itself out: it can no longer read the policy.
	_, err = custody.CheckKMSKey(w.ctx, w.custodian, w.keyARN, w.cfg)
	requireDenied(t, errors.Unwrap(err), "custodian GetKeyPolicy after the bypass")
	require.ErrorContains(t, err, "custody: reading the key policy of "+w.keyARN)
}

// A custodian creates and rotates branch keys under the generated policy;
// the service encrypts and decrypts with the hierarchical keyring over its
// own KMS client; the custodian cannot unwrap a branch key.
func TestKMSKeyPolicyBranchKeyStoreEndToEnd(t *testing.T) {
	w := newPolicyWorld(t)
	store, err := keystore.OpenFileStore(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	config := func(client *kms.Client) keyring.BranchKeysConfig {
		return keyring.BranchKeysConfig{Store: store, Client: client, KMSKeyARN: w.keyARN, LogicalStoreName: policyStore}
	}
	cust, err := custody.NewBranchKeys(config(w.custodian))
	require.NoError(t, err)
	v1, err := cust.CreateBranchKey(w.ctx, "tenant-general-hospital")
	require.NoError(t, err)

	svcKeys, err := keyring.NewBranchKeys(config(w.service))
	require.NoError(t, err)
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: svcKeys, BranchKeyID: "tenant-general-hospital", CacheTTL: time.Minute})
	require.NoError(t, err)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, RequiredContextKeys: []string{"tenant"}})
	require.NoError(t, err)
	msg, err := enc.Encrypt(w.ctx, []byte("patient record"), map[string]string{"tenant": "general-hospital"})
	require.NoError(t, err)
	pt, _, err := enc.Decrypt(w.ctx, msg, map[string]string{"tenant": "general-hospital"})
	require.NoError(t, err)
	require.Equal(t, "patient record", string(pt))

	_, err = cust.Rotate(w.ctx, "tenant-general-hospital")
	require.NoError(t, err, "rotation is GenerateDataKeyWithoutPlaintext under the branch key context")

	// The custodian's own client cannot unwrap the version it made.
	custKeys, err := keyring.NewBranchKeys(config(w.custodian))
	require.NoError(t, err)
	_, err = custKeys.Unwrap(w.ctx, v1)
	var api smithy.APIError
	require.ErrorAs(t, err, &api)
	require.Equal(t, "AccessDeniedException", api.ErrorCode())
	secret, err := svcKeys.Unwrap(w.ctx, v1)
	require.NoError(t, err, "the service can")
	secret.Wipe()
}

func codes(vs []custody.KMSPolicyViolation) []custody.KMSPolicyViolationCode {
	out := make([]custody.KMSPolicyViolationCode, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.Code)
	}
	return out
}

func sortedCodes(vs []custody.KMSPolicyViolation) []custody.KMSPolicyViolationCode {
	out := codes(vs)
	slices.Sort(out)
	return slices.Compact(out)
}

const acct = "111122223333"

var checkCfg = custody.KMSKeyPolicyConfig{
	Account:             acct,
	Custodians:          []string{"arn:aws:iam::111122223333:role/custodian"},
	Services:            []string{"arn:aws:iam::111122223333:role/svc"},
	Auditors:            []string{"arn:aws:iam::111122223333:role/auditor"},
	RequiredContextKeys: []string{"tenant"},
	BranchKeyStore:      true,
	LogicalStoreName:    "store",
}

// policyOf wraps statements (JSON objects) into a key policy.
func policyOf(statements ...string) []byte {
	return []byte(`{"Version":"2012-10-17","Statement":[` + strings.Join(statements, ",") + `]}`)
}

func allow(principal, actions, condition string) string {
	s := `{"Sid":"S","Effect":"Allow","Principal":` + principal + `,"Action":` + actions + `,"Resource":"*"`
	if condition != "" {
		s += `,"Condition":` + condition
	}
	return s + "}"
}

const (
	pCustodian = `{"AWS":"arn:aws:iam::111122223333:role/custodian"}`
	pService   = `{"AWS":["arn:aws:iam::111122223333:role/svc"]}`
	pAuditor   = `{"AWS":"arn:aws:iam::111122223333:role/auditor"}`
	pRoot      = `{"AWS":"arn:aws:iam::111122223333:root"}`
	tenantCond = `{"StringEquals":{"kms:EncryptionContext:tenant":"hospital-42"}}`
)

func TestCheckKMSKeyPolicyFindsViolations(t *testing.T) {
	cases := []struct {
		name string
		doc  []byte
		want []custody.KMSPolicyViolationCode // sorted, distinct
	}{
		{"custodian with kms:*", policyOf(allow(pCustodian, `"kms:*"`, "")), []custody.KMSPolicyViolationCode{
			custody.KMSPolicyCustodianCrossKeyReEncrypt, custody.KMSPolicyCustodianDecrypt, custody.KMSPolicyCustodianGrant, custody.KMSPolicyCustodianUsesKey}},
		{"custodian with a Decrypt-granting wildcard", policyOf(allow(pCustodian, `["kms:Describe*","kms:Dec*"]`, "")),
			[]custody.KMSPolicyViolationCode{custody.KMSPolicyCustodianDecrypt}},
		{"custodian with every action but Encrypt", policyOf(allow(pCustodian, `"kms:Describe*"`, ""),
			`{"Effect":"Allow","Principal":`+pCustodian+`,"NotAction":"kms:Encrypt","Resource":"*"}`), []custody.KMSPolicyViolationCode{
			custody.KMSPolicyCustodianCrossKeyReEncrypt, custody.KMSPolicyCustodianDecrypt, custody.KMSPolicyCustodianGrant, custody.KMSPolicyCustodianUsesKey}},
		{"unconditional Deny takes Decrypt away", policyOf(allow(pCustodian, `["kms:Decrypt","kms:DescribeKey"]`, ""),
			`{"Effect":"Deny","Principal":`+pCustodian+`,"Action":"kms:Decrypt","Resource":"*"}`), nil},
		{"a conditional Deny is not credited", policyOf(allow(pCustodian, `"kms:Decrypt"`, ""),
			`{"Effect":"Deny","Principal":`+pCustodian+`,"Action":"kms:Decrypt","Resource":"*","Condition":`+tenantCond+`}`),
			[]custody.KMSPolicyViolationCode{custody.KMSPolicyCustodianDecrypt}},
		{"custodian ReEncrypt on the same key", policyOf(allow(pCustodian, `"kms:ReEncrypt*"`, `{"Bool":{"kms:ReEncryptOnSameKey":"true"}}`)), nil},
		{"custodian grants limited to no plaintext", policyOf(allow(pCustodian, `"kms:CreateGrant"`,
			`{"ForAllValues:StringEquals":{"kms:GrantOperations":["GenerateDataKeyWithoutPlaintext","DescribeKey"]}}`)), nil},
		{"custodian grants that may include Decrypt", policyOf(allow(pCustodian, `"kms:CreateGrant"`,
			`{"ForAllValues:StringEquals":{"kms:GrantOperations":["Decrypt","DescribeKey"]}}`)), []custody.KMSPolicyViolationCode{custody.KMSPolicyCustodianGrant}},
		{"principal *", policyOf(allow(`"*"`, `"kms:Decrypt"`, tenantCond)), []custody.KMSPolicyViolationCode{custody.KMSPolicyWildcardPrincipal}},
		{"AWS principal *", policyOf(allow(`{"AWS":"*"}`, `"kms:DescribeKey"`, "")), []custody.KMSPolicyViolationCode{custody.KMSPolicyWildcardPrincipal}},
		{"NotPrincipal", policyOf(`{"Effect":"Allow","NotPrincipal":` + pCustodian + `,"Action":"kms:Encrypt","Resource":"*"}`),
			[]custody.KMSPolicyViolationCode{custody.KMSPolicyWildcardPrincipal}},
		{"service with PutKeyPolicy", policyOf(allow(pService, `["kms:PutKeyPolicy"]`, "")), []custody.KMSPolicyViolationCode{custody.KMSPolicyServiceAdministers}},
		{"service with CreateGrant", policyOf(allow(pService, `"kms:CreateGrant"`, "")), []custody.KMSPolicyViolationCode{custody.KMSPolicyServiceAdministers}},
		{"service with CreateGrant for AWS resources", policyOf(allow(pService, `"kms:CreateGrant"`, `{"Bool":{"kms:GrantIsForAWSResource":true}}`)), nil},
		{"service without the context condition", policyOf(allow(pService, `["kms:Encrypt","kms:Decrypt"]`, "")),
			[]custody.KMSPolicyViolationCode{custody.KMSPolicyServiceWithoutContext}},
		{"service with the context key as a value condition", policyOf(allow(pService, `["kms:Encrypt","kms:Decrypt"]`, tenantCond)), nil},
		{"service with ForAnyValue on the context keys", policyOf(allow(pService, `"kms:GenerateDataKey"`,
			`{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"tenant"}}`)), nil},
		{"service with ForAllValues on the context keys (holds for no context)", policyOf(allow(pService, `"kms:GenerateDataKey"`,
			`{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["tenant"]}}`)), []custody.KMSPolicyViolationCode{custody.KMSPolicyServiceWithoutContext}},
		{"service with IfExists", policyOf(allow(pService, `"kms:Decrypt"`, `{"StringLikeIfExists":{"kms:EncryptionContext:tenant":"*"}}`)),
			[]custody.KMSPolicyViolationCode{custody.KMSPolicyServiceWithoutContext}},
		{"service Decrypt of branch keys", policyOf(allow(pService, `"kms:Decrypt"`, `{"StringEquals":{"kms:EncryptionContext:tablename":"store"}}`)), nil},
		{"service Encrypt under the branch key context", policyOf(allow(pService, `"kms:Encrypt"`, `{"StringEquals":{"kms:EncryptionContext:tablename":"store"}}`)),
			[]custody.KMSPolicyViolationCode{custody.KMSPolicyServiceWithoutContext}},
		{"another store's branch keys", policyOf(allow(pService, `"kms:Decrypt"`, `{"StringEquals":{"kms:EncryptionContext:tablename":"other"}}`)),
			[]custody.KMSPolicyViolationCode{custody.KMSPolicyServiceWithoutContext}},
		{"account root with kms:*", policyOf(allow(pRoot, `"kms:*"`, "")), []custody.KMSPolicyViolationCode{custody.KMSPolicyAccountRoot}},
		{"account id as principal", policyOf(allow(`{"AWS":"111122223333"}`, `"kms:DescribeKey"`, "")), []custody.KMSPolicyViolationCode{custody.KMSPolicyAccountRoot}},
		{"another account", policyOf(allow(`{"AWS":"arn:aws:iam::999999999999:root"}`, `"kms:DescribeKey"`, "")),
			[]custody.KMSPolicyViolationCode{custody.KMSPolicyUnknownPrincipal}},
		{"an AWS service principal", policyOf(allow(`{"Service":"logs.amazonaws.com"}`, `"kms:Encrypt"`, tenantCond)),
			[]custody.KMSPolicyViolationCode{custody.KMSPolicyUnknownPrincipal}},
		{"auditor disabling the key", policyOf(allow(pAuditor, `["kms:DescribeKey","kms:DisableKey"]`, "")),
			[]custody.KMSPolicyViolationCode{custody.KMSPolicyAuditorBeyondRead}},
		{"auditor reading", policyOf(allow(pAuditor, `["kms:Describe*","kms:GetKeyPolicy","kms:GetKeyRotationStatus","kms:List*"]`, "")), nil},
		// kms:Get* includes GetParametersForImport, the first step of
		// importing key material.
		{"auditor with kms:Get*", policyOf(allow(pAuditor, `"kms:Get*"`, "")), []custody.KMSPolicyViolationCode{custody.KMSPolicyAuditorBeyondRead}},
		{"a Deny alone", policyOf(`{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*"}`), nil},
		{"non-KMS actions", policyOf(allow(pService, `"s3:*"`, "")), nil},
		{"a single statement object", []byte(`{"Statement":` + allow(pService, `"kms:PutKeyPolicy"`, "") + `}`),
			[]custody.KMSPolicyViolationCode{custody.KMSPolicyServiceAdministers}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			found, err := custody.CheckKMSKeyPolicy(c.doc, checkCfg)
			require.NoError(t, err)
			if c.want == nil {
				require.Empty(t, found)
				return
			}
			require.Equal(t, c.want, sortedCodes(found))
			for _, v := range found {
				require.NotEmpty(t, v.Actions)
				require.NotEmpty(t, v.Message)
				require.NotContains(t, v.String(), "hospital-42", "a condition's value never reaches a violation")
				require.NotContains(t, fmt.Sprintf("%+v", v), "hospital-42")
			}
		})
	}
}

func TestCheckKMSKeyPolicyNamesTheStatement(t *testing.T) {
	doc := policyOf(
		`{"Sid":"Fine","Effect":"Allow","Principal":`+pAuditor+`,"Action":"kms:DescribeKey","Resource":"*"}`,
		`{"Sid":"TooMuch","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:role/custodian","arn:aws:iam::111122223333:role/svc"]},"Action":["kms:Decrypt","kms:ScheduleKeyDeletion"],"Resource":"*"}`)
	found, err := custody.CheckKMSKeyPolicy(doc, checkCfg)
	require.NoError(t, err)
	require.Equal(t, []custody.KMSPolicyViolation{
		{Code: custody.KMSPolicyCustodianDecrypt, Statement: 1, Sid: "TooMuch", Principal: "arn:aws:iam::111122223333:role/custodian",
			Actions: []string{"kms:Decrypt"}, Message: found[0].Message},
		{Code: custody.KMSPolicyServiceAdministers, Statement: 1, Sid: "TooMuch", Principal: "arn:aws:iam::111122223333:role/svc",
			Actions: []string{"kms:ScheduleKeyDeletion"}, Message: found[1].Message},
		{Code: custody.KMSPolicyServiceWithoutContext, Statement: 1, Sid: "TooMuch", Principal: "arn:aws:iam::111122223333:role/svc",
			Actions: []string{"kms:Decrypt"}, Message: found[2].Message},
	}, found)
	require.Equal(t, "statement 1 (TooMuch): lets a custodian decrypt; custodians must never reach plaintext (kms:Decrypt)", found[0].String())
}

func TestCheckKMSKeyPolicyRefusesMalformedDocuments(t *testing.T) {
	for name, doc := range map[string][]byte{
		"empty":             nil,
		"not JSON":          []byte(`{"Statement": [`),
		"no statements":     []byte(`{"Version":"2012-10-17","Statement":[]}`),
		"no effect":         policyOf(`{"Principal":"*","Action":"kms:*","Resource":"*"}`),
		"no principal":      policyOf(`{"Effect":"Allow","Action":"kms:*","Resource":"*"}`),
		"both actions":      policyOf(`{"Effect":"Allow","Principal":"*","Action":"kms:*","NotAction":"kms:Decrypt","Resource":"*"}`),
		"numeric action":    policyOf(`{"Effect":"Allow","Principal":"*","Action":7,"Resource":"*"}`),
		"odd principal":     policyOf(`{"Effect":"Allow","Principal":"someone","Action":"kms:*","Resource":"*"}`),
		"odd condition":     policyOf(allow(pService, `"kms:Decrypt"`, `{"StringEquals":{"kms:EncryptionContext:tenant":{"x":1}}}`)),
		"two Actions":       policyOf(`{"Effect":"Allow","Principal":` + pService + `,"Action":"kms:Decrypt","Action":"kms:DescribeKey","Resource":"*"}`),
		"Action and action": policyOf(`{"Effect":"Allow","Principal":` + pService + `,"action":"kms:Decrypt","Action":"kms:DescribeKey","Resource":"*"}`),
		"two Statements":    []byte(`{"Statement":[` + allow(pService, `"kms:PutKeyPolicy"`, "") + `],"Statement":[]}`),
		"nested deeply":     policyOf(allow(pService, `"kms:Decrypt"`, `{"StringEquals":{"k":`+strings.Repeat("[", 20)+strings.Repeat("]", 20)+`}}`)),
		"larger than 32K":   policyOf(allow(pService, `"kms:Decrypt"`, `{"StringEquals":{"kms:EncryptionContext:tenant":"`+strings.Repeat("a", 33000)+`"}}`)),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := custody.CheckKMSKeyPolicy(doc, checkCfg)
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), "custody: "), err.Error())
			require.NotContains(t, err.Error(), "aaaa")
		})
	}
}

func TestGenerateKMSKeyPolicyIsDeterministic(t *testing.T) {
	cfg := checkCfg
	cfg.Custodians = []string{"arn:aws:iam::111122223333:role/custodian-b", "arn:aws:iam::111122223333:role/custodian-a"}
	cfg.RequiredContextKeys = []string{"tenant", "purpose"}
	a, err := custody.GenerateKMSKeyPolicy(cfg)
	require.NoError(t, err)
	cfg.Custodians = []string{"arn:aws:iam::111122223333:role/custodian-a", "arn:aws:iam::111122223333:role/custodian-b", "arn:aws:iam::111122223333:role/custodian-a"}
	cfg.RequiredContextKeys = []string{"purpose", "tenant"}
	b, err := custody.GenerateKMSKeyPolicy(cfg)
	require.NoError(t, err)
	require.Equal(t, string(a), string(b))

	var doc struct {
		Statement []struct {
			Sid, Effect string
			Principal   struct{ AWS []string }
			Action      []string
			Condition   map[string]map[string]any
		}
	}
	require.NoError(t, json.Unmarshal(a, &doc))
	var sids []string
	for _, st := range doc.Statement {
		sids = append(sids, st.Sid)
		require.NotContains(t, st.Principal.AWS, "arn:aws:iam::111122223333:root", "no account principal by default")
		if st.Effect == "Allow" && slices.Contains(st.Principal.AWS, "arn:aws:iam::111122223333:role/custodian-a") {
			require.NotContains(t, st.Action, "kms:Decrypt")
			require.NotContains(t, st.Action, "kms:CreateGrant")
		}
	}
	require.Equal(t, []string{"CustodiansAdministerKey", "CustodiansMakeBranchKeys", "CustodiansReEncryptBranchKeys",
		"ServicesUseKeyUnderContext", "ServicesUnwrapBranchKeys", "AuditorsReadKey", "DenyCustodiansPlaintext",
		"DenyCustodiansCrossKeyReEncrypt", "DenyServicesAdministration"}, sids)
	require.Equal(t, map[string]any{"kms:EncryptionContext:purpose": "*", "kms:EncryptionContext:tenant": "*"}, doc.Statement[3].Condition["StringLike"])
	require.Equal(t, []string{"arn:aws:iam::111122223333:role/custodian-a", "arn:aws:iam::111122223333:role/custodian-b"}, doc.Statement[0].Principal.AWS)

	found, err := custody.CheckKMSKeyPolicy(a, cfg)
	require.NoError(t, err)
	require.Empty(t, found)

	// Cross-key ReEncrypt for a rewrap, and services that rotate: still
	// clean against the same configuration.
	cfg.AllowCrossKeyReEncrypt, cfg.ServicesRotateBranchKeys = true, true
	c, err := custody.GenerateKMSKeyPolicy(cfg)
	require.NoError(t, err)
	require.NotContains(t, string(c), "ReEncryptOnSameKey")
	found, err = custody.CheckKMSKeyPolicy(c, cfg)
	require.NoError(t, err)
	require.Empty(t, found)
	cfg.AllowCrossKeyReEncrypt = false
	found, err = custody.CheckKMSKeyPolicy(c, cfg)
	require.NoError(t, err)
	require.Equal(t, []custody.KMSPolicyViolationCode{custody.KMSPolicyCustodianCrossKeyReEncrypt}, sortedCodes(found))
	require.Len(t, found, 2, "one per custodian")
}

func TestGenerateKMSKeyPolicyRefusesBadConfigurations(t *testing.T) {
	both := "arn:aws:iam::111122223333:role/both"
	cases := map[string]struct {
		edit func(*custody.KMSKeyPolicyConfig)
		want string
	}{
		"custodian and service": {func(c *custody.KMSKeyPolicyConfig) {
			c.Custodians = append(c.Custodians, both)
			c.Services = append(c.Services, both)
		}, both + " is listed as both a custodian and a service"},
		"no custodians":     {func(c *custody.KMSKeyPolicyConfig) { c.Custodians = nil }, "Custodians is empty"},
		"bad account":       {func(c *custody.KMSKeyPolicyConfig) { c.Account = "12345" }, "12-digit"},
		"wildcard service":  {func(c *custody.KMSKeyPolicyConfig) { c.Services = []string{"*"} }, "not an IAM user or role ARN"},
		"root custodian":    {func(c *custody.KMSKeyPolicyConfig) { c.Custodians = []string{"arn:aws:iam::111122223333:root"} }, "not an IAM user or role ARN"},
		"wildcard in role":  {func(c *custody.KMSKeyPolicyConfig) { c.Auditors = []string{"arn:aws:iam::111122223333:role/*"} }, "not an IAM user or role ARN"},
		"kms ARN":           {func(c *custody.KMSKeyPolicyConfig) { c.Services = []string{"arn:aws:kms:us-east-1:111122223333:key/x"} }, "not an IAM user or role ARN"},
		"no context keys":   {func(c *custody.KMSKeyPolicyConfig) { c.RequiredContextKeys, c.BranchKeyStore = nil, false }, "RequiredContextKeys is empty"},
		"wildcard key":      {func(c *custody.KMSKeyPolicyConfig) { c.RequiredContextKeys = []string{"ten*"} }, "RequiredContextKeys"},
		"variable key":      {func(c *custody.KMSKeyPolicyConfig) { c.RequiredContextKeys = []string{"${aws:username}"} }, "RequiredContextKeys"},
		"key twice":         {func(c *custody.KMSKeyPolicyConfig) { c.RequiredContextKeys = []string{"tenant", "Tenant"} }, "twice"},
		"no store name":     {func(c *custody.KMSKeyPolicyConfig) { c.LogicalStoreName = "" }, "LogicalStoreName"},
		"rotate, no store":  {func(c *custody.KMSKeyPolicyConfig) { c.BranchKeyStore, c.ServicesRotateBranchKeys = false, true }, "needs BranchKeyStore"},
		"too many auditors": {func(c *custody.KMSKeyPolicyConfig) { c.Auditors = slices.Repeat(c.Auditors, 101) }, "more than 100"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := checkCfg
			cfg.Custodians = slices.Clone(cfg.Custodians)
			cfg.Services = slices.Clone(cfg.Services)
			c.edit(&cfg)
			_, err := custody.GenerateKMSKeyPolicy(cfg)
			require.ErrorContains(t, err, c.want)
			require.True(t, strings.HasPrefix(err.Error(), "custody: "))
			_, err = custody.CheckKMSKeyPolicy(policyOf(allow(pAuditor, `"kms:DescribeKey"`, "")), cfg)
			require.ErrorContains(t, err, c.want, "the checker refuses the same configuration")
		})
	}
	t.Run("one partition", func(t *testing.T) {
		cfg := checkCfg
		cfg.Services = []string{"arn:aws-us-gov:iam::111122223333:role/svc"}
		_, err := custody.GenerateKMSKeyPolicy(cfg)
		require.ErrorContains(t, err, "arn:aws-us-gov:iam::111122223333:role/svc is in another AWS partition")
	})
	t.Run("the account principal is in the custodians' partition", func(t *testing.T) {
		cfg := custody.KMSKeyPolicyConfig{Account: acct, Custodians: []string{"arn:aws-us-gov:iam::111122223333:role/custodian"}, AccountRootAdministers: true}
		doc, err := custody.GenerateKMSKeyPolicy(cfg)
		require.NoError(t, err)
		require.Contains(t, string(doc), `"arn:aws-us-gov:iam::111122223333:root"`)
		found, err := custody.CheckKMSKeyPolicy(doc, cfg)
		require.NoError(t, err)
		require.Empty(t, found)
	})
	t.Run("the input is not changed", func(t *testing.T) {
		cfg := checkCfg
		cfg.Custodians = []string{"arn:aws:iam::111122223333:role/z", "arn:aws:iam::111122223333:role/a"}
		_, err := custody.GenerateKMSKeyPolicy(cfg)
		require.NoError(t, err)
		require.Equal(t, "arn:aws:iam::111122223333:role/z", cfg.Custodians[0])
	})
}

// A key policy for one KMS key: two custodians administer it, one service
// uses it when the encryption context names a tenant, an auditor reads it.
func ExampleGenerateKMSKeyPolicy() {
	doc, err := custody.GenerateKMSKeyPolicy(custody.KMSKeyPolicyConfig{
		Account:             "111122223333",
		Custodians:          []string{"arn:aws:iam::111122223333:role/key-custodian-1", "arn:aws:iam::111122223333:role/key-custodian-2"},
		Services:            []string{"arn:aws:iam::111122223333:role/patients-api"},
		Auditors:            []string{"arn:aws:iam::111122223333:role/security-audit"},
		RequiredContextKeys: []string{"tenant"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	var policy struct {
		Statement []struct{ Sid, Effect string }
	}
	if err := json.Unmarshal(doc, &policy); err != nil {
		fmt.Println(err)
		return
	}
	for _, st := range policy.Statement {
		fmt.Println(st.Effect, st.Sid)
	}
	// Output:
	// Allow CustodiansAdministerKey
	// Allow ServicesUseKeyUnderContext
	// Allow AuditorsReadKey
	// Deny DenyCustodiansPlaintext
	// Deny DenyCustodiansCrossKeyReEncrypt
	// Deny DenyServicesAdministration
}

// KMS's default key policy gives the account principal every action: by
// IAM, anyone in the account may decrypt.
func ExampleCheckKMSKeyPolicy() {
	defaultPolicy := `{"Version":"2012-10-17","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow",
		"Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}`
	found, err := custody.CheckKMSKeyPolicy([]byte(defaultPolicy), custody.KMSKeyPolicyConfig{
		Account:             "111122223333",
		Custodians:          []string{"arn:aws:iam::111122223333:role/key-custodian"},
		Services:            []string{"arn:aws:iam::111122223333:role/patients-api"},
		RequiredContextKeys: []string{"tenant"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, v := range found {
		fmt.Println(v.Code, v.Sid, v.Principal, slices.Contains(v.Actions, "kms:Decrypt"))
	}
	// Output:
	// account-root Enable IAM User Permissions arn:aws:iam::111122223333:root true
	// account-root Enable IAM User Permissions arn:aws:iam::111122223333:root false
}

// A custodian puts the generated policy on a key and checks what the key
// has; afterwards its own Decrypt is refused by KMS.
func ExampleCheckKMSKey() {
	ctx := context.Background()
	l, err := kmsmock.Start(kmsmock.Config{}, "") // an in-process KMS on 127.0.0.1
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	custodian := l.Client("key-custodian") // signs as arn:aws:iam::ACCOUNT:user/key-custodian
	cfg := custody.KMSKeyPolicyConfig{
		Account:             l.Account(),
		Custodians:          []string{"arn:aws:iam::" + l.Account() + ":user/key-custodian"},
		Services:            []string{"arn:aws:iam::" + l.Account() + ":user/patients-api"},
		RequiredContextKeys: []string{"tenant"},
	}
	doc, err := custody.GenerateKMSKeyPolicy(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	key, err := custodian.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(string(doc))})
	if err != nil {
		fmt.Println(err)
		return
	}
	found, err := custody.CheckKMSKey(ctx, custodian, aws.ToString(key.KeyMetadata.Arn), cfg)
	fmt.Println(len(found), err)

	blob, err := l.Client("patients-api").Encrypt(ctx, &kms.EncryptInput{KeyId: key.KeyMetadata.KeyId,
		Plaintext: []byte("data key"), EncryptionContext: map[string]string{"tenant": "general-hospital"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = custodian.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob.CiphertextBlob,
		EncryptionContext: map[string]string{"tenant": "general-hospital"}})
	var api smithy.APIError
	fmt.Println(errors.As(err, &api) && api.ErrorCode() == "AccessDeniedException")
	// Output:
	// 0 <nil>
	// true
}

// The checker reads documents from KMS, which anyone with PutKeyPolicy
// wrote: any bytes give violations or an error, never a panic, and a
// violation names only what it should.
func FuzzCheckKMSKeyPolicy(f *testing.F) {
	generated, err := custody.GenerateKMSKeyPolicy(checkCfg)
	require.NoError(f, err)
	f.Add(generated)
	f.Add(policyOf(allow(pCustodian, `"kms:*"`, tenantCond), `{"Effect":"Deny","NotPrincipal":"*","NotAction":["kms:D?c*"],"Resource":"*"}`))
	f.Add(policyOf(allow(`{"AWS":["*","111122223333"],"Service":"x"}`, `["*"]`, `{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":["tenant"]},"Null":{"kms:EncryptionContext:tenant":false}}`)))
	f.Add([]byte(`{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}}`))
	f.Add([]byte(`[[[{"a":{"A":1}}]]]`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		found, err := custody.CheckKMSKeyPolicy(doc, checkCfg)
		if err != nil {
			require.Empty(t, found)
			require.True(t, strings.HasPrefix(err.Error(), "custody: "), err.Error())
			return
		}
		for _, v := range found {
			require.NotEmpty(t, v.Code)
			require.NotEmpty(t, v.Actions)
			for _, a := range v.Actions {
				require.True(t, strings.HasPrefix(a, "kms:"), a)
			}
			require.False(t, strings.Contains(v.Message, "hospital-42"))
		}
	})
}

// The largest document KMS accepts, as many small statements as fit, each
// with a wildcard action: the check stays linear in its size.
func BenchmarkCheckKMSKeyPolicyLargest(b *testing.B) {
	st := `{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:role/x","*"]},"Action":["kms:*","kms:D?c*"],"Resource":"*"}`
	sts := []string{}
	for len(policyOf(append(sts, st)...)) <= 32*1024 {
		sts = append(sts, st)
	}
	doc := policyOf(sts...)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		found, err := custody.CheckKMSKeyPolicy(doc, checkCfg)
		if err != nil || len(found) != 2*len(sts) {
			b.Fatalf("%d violations, %v", len(found), err)
		}
	}
}
