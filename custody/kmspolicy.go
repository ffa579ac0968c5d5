package custody

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
)

// The KMS key policy that implements separation of duty on one KMS key,
// and a checker for the policy a key has. Action names and condition keys
// follow the AWS KMS Developer Guide ("AWS KMS condition keys", "Default
// key policy"): a key policy alone decides who may use a key unless it
// names the account principal, which delegates to IAM.

// KMSKeyPolicyConfig names the principals of one KMS key and what services
// must put in the encryption context. GenerateKMSKeyPolicy writes the
// policy; CheckKMSKeyPolicy and CheckKMSKey hold a policy against it.
type KMSKeyPolicyConfig struct {
	// Account is the 12-digit AWS account that owns the key.
	Account string
	// Custodians administer the key (describe, enable, disable, rotate,
	// tag, alias, change the policy, schedule and cancel deletion) and never
	// use it to reach plaintext: no Decrypt, Encrypt, GenerateDataKey or
	// CreateGrant, each also denied explicitly, so neither an IAM policy nor
	// a grant can give it back. IAM user or role ARNs (or STS assumed-role
	// ARNs); at least one.
	Custodians []string
	// Services use the key: Encrypt, Decrypt, GenerateDataKey and
	// GenerateDataKeyWithoutPlaintext under the RequiredContextKeys
	// condition, and (BranchKeyStore) Decrypt of branch keys. They are
	// explicitly denied every administrative action. No ARN may be both a
	// custodian and a service.
	Services []string
	// Auditors may read the key's metadata: DescribeKey, GetKeyPolicy,
	// GetKeyRotationStatus, ListGrants, ListKeyPolicies, ListKeyRotations
	// and ListResourceTags. Nothing else.
	Auditors []string
	// RequiredContextKeys must all be present in the encryption context of
	// every cryptographic call a service makes under the data-key
	// statement (any values). Required when there are services and
	// BranchKeyStore is off.
	//
	// Each key becomes a "StringLike": {"kms:EncryptionContext:KEY": "*"}
	// condition in one block, so they are ANDed and a request without one
	// of them is denied. kms:EncryptionContextKeys does not say "all of
	// these": with ForAnyValue one listed key suffices, and ForAllValues
	// only limits the keys to the listed ones and holds for a request with
	// no context at all (both as AWS documents them). The cost: AWS matches
	// the context key in a kms:EncryptionContext: condition key without
	// regard to case, so "Tenant" satisfies a required "tenant"; phicrypt's
	// Encryptor checks its required keys exactly before KMS is called.
	RequiredContextKeys []string
	// BranchKeyStore adds what the hierarchical keyring and its branch key
	// store need, under the branch key encryption context (tablename
	// LogicalStoreName, hierarchy-version 1): services may Decrypt to
	// unwrap branch keys; custodians may GenerateDataKeyWithoutPlaintext to
	// make them and ReEncryptFrom/ReEncryptTo to make the ACTIVE copy a
	// store in AWS's layout keeps (custody.BranchKeys, Rewrap).
	BranchKeyStore bool
	// LogicalStoreName is the branch key store's name
	// (keyring.BranchKeysConfig.LogicalStoreName), bound into every branch
	// key's encryption context as "tablename". Required with
	// BranchKeyStore.
	LogicalStoreName string
	// AllowCrossKeyReEncrypt lets custodians ReEncrypt branch keys to and
	// from other KMS keys, as Rewrap to a new key needs. Off, their
	// ReEncrypt is allowed only back under this same key
	// (kms:ReEncryptOnSameKey), and denied otherwise: ReEncryptFrom to a
	// key a custodian may Decrypt under would hand it every branch key, and
	// ReEncryptTo from such a key would let it plant a branch key it knows.
	// Turn it on for the duration of a rewrap, on the old key and the new,
	// by a reviewed policy change.
	AllowCrossKeyReEncrypt bool
	// ServicesRotateBranchKeys also lets services
	// GenerateDataKeyWithoutPlaintext under the branch key context, which
	// a hierarchical keyring with HierarchicalConfig.MaxUsesPerVersion
	// needs to rotate a version that reached its cap. Only with
	// BranchKeyStore.
	ServicesRotateBranchKeys bool
	// AccountRootAdministers adds a statement giving the account principal
	// (arn:aws:iam::ACCOUNT:root) the custodians' administrative actions,
	// never cryptographic ones. AWS's default key policy has such a
	// statement (with kms:*) so that the key cannot become unmanageable when
	// every principal it names is deleted. The price: the account principal
	// delegates to IAM, so any IAM administrator of the account can grant
	// itself PutKeyPolicy and then write itself Decrypt, and the policy no
	// longer bounds who administers the key. Off by default: name at least
	// two custodians instead, and keep the break-glass path (AWS Support)
	// for the case where all of them are gone.
	AccountRootAdministers bool
}

// Limits on a configuration and on a document: AWS caps a key policy at
// 32 KB, which also bounds how many statements and principals the checker
// reads.
const (
	maxKMSPolicyBytes      = 32 * 1024
	maxKMSPolicyPrincipals = 100 // per role
	maxContextKeyBytes     = 128
	maxPrincipalARNBytes   = 2048
	maxStoreNameBytes      = 512
)

// Actions, in the spelling of the AWS KMS permissions reference. Lists are
// written out rather than as wildcards ("kms:Create*" includes
// CreateGrant, "kms:GenerateDataKey*" includes the data key pairs), so
// that a new KMS action is not granted by a policy written before it.
var (
	// kmsAdminActions change the key, its aliases or who may use it.
	kmsAdminActions = []string{
		"kms:CancelKeyDeletion", "kms:CreateAlias", "kms:CreateGrant", "kms:DeleteAlias",
		"kms:DeleteImportedKeyMaterial", "kms:DisableKey", "kms:DisableKeyRotation", "kms:EnableKey",
		"kms:EnableKeyRotation", "kms:GetParametersForImport", "kms:ImportKeyMaterial", "kms:PutKeyPolicy",
		"kms:ReplicateKey", "kms:RetireGrant", "kms:RevokeGrant", "kms:RotateKeyOnDemand",
		"kms:ScheduleKeyDeletion", "kms:SynchronizeMultiRegionKey", "kms:TagResource", "kms:UntagResource",
		"kms:UpdateAlias", "kms:UpdateKeyDescription", "kms:UpdatePrimaryRegion",
	}
	// kmsReadActions reveal metadata only.
	kmsReadActions = []string{
		"kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:GetPublicKey",
		"kms:ListGrants", "kms:ListKeyPolicies", "kms:ListKeyRotations", "kms:ListResourceTags",
	}
	// kmsCryptoActions use the key material.
	kmsCryptoActions = []string{
		"kms:Decrypt", "kms:DeriveSharedSecret", "kms:Encrypt", "kms:GenerateDataKey",
		"kms:GenerateDataKeyPair", "kms:GenerateDataKeyPairWithoutPlaintext", "kms:GenerateDataKeyWithoutPlaintext",
		"kms:GenerateMac", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:Sign", "kms:Verify", "kms:VerifyMac",
	}

	// custodianActions: administration without CreateGrant, which could
	// give a custodian (or anyone) Decrypt.
	custodianActions = []string{
		"kms:CancelKeyDeletion", "kms:CreateAlias", "kms:DeleteAlias", "kms:DescribeKey", "kms:DisableKey",
		"kms:DisableKeyRotation", "kms:EnableKey", "kms:EnableKeyRotation", "kms:GetKeyPolicy",
		"kms:GetKeyRotationStatus", "kms:ListGrants", "kms:ListKeyPolicies", "kms:ListKeyRotations",
		"kms:ListResourceTags", "kms:PutKeyPolicy", "kms:RevokeGrant", "kms:RotateKeyOnDemand",
		"kms:ScheduleKeyDeletion", "kms:TagResource", "kms:UntagResource", "kms:UpdateAlias",
		"kms:UpdateKeyDescription",
	}
	auditorActions = []string{
		"kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListGrants",
		"kms:ListKeyPolicies", "kms:ListKeyRotations", "kms:ListResourceTags",
	}
	serviceDataActions = []string{"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext"}
	// custodianDeniedActions yield plaintext, take plaintext in (a key
	// the custodian chose) or grant either.
	custodianDeniedActions = []string{"kms:CreateGrant", "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyPair"}
	// custodianCryptoActions are the cryptographic actions a custodian may
	// hold: none returns plaintext.
	custodianCryptoActions = []string{"kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo"}
	// branchKeyActions are those a statement bound to the branch key
	// context may grant services.
	branchKeyActions = []string{"kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo"}
)

// Statement ids of the generated policy, in the order it lists them.
const (
	sidRoot                   = "AccountRootAdministersKey"
	sidCustodians             = "CustodiansAdministerKey"
	sidCustodiansMake         = "CustodiansMakeBranchKeys"
	sidCustodiansReEncrypt    = "CustodiansReEncryptBranchKeys"
	sidServicesData           = "ServicesUseKeyUnderContext"
	sidServicesBranch         = "ServicesUnwrapBranchKeys"
	sidAuditors               = "AuditorsReadKey"
	sidDenyCustodiansUse      = "DenyCustodiansPlaintext"
	sidDenyCustodiansMove     = "DenyCustodiansCrossKeyReEncrypt"
	sidDenyServicesAdminister = "DenyServicesAdministration"
)

// Branch key encryption context (branch-key-store.md "Encryption
// Context"): keyring.BranchKeys.EncryptionContext binds these.
const (
	branchContextStore            = "kms:EncryptionContext:tablename"
	branchContextHierarchyVersion = "kms:EncryptionContext:hierarchy-version"
)

type policyDocument struct {
	Version   string            `json:"Version"`
	ID        string            `json:"Id"`
	Statement []policyStatement `json:"Statement"`
}

type policyStatement struct {
	Sid       string                    `json:"Sid"`
	Effect    string                    `json:"Effect"`
	Principal policyPrincipal           `json:"Principal"`
	Action    []string                  `json:"Action"`
	Resource  string                    `json:"Resource"`
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

type policyPrincipal struct {
	AWS []string `json:"AWS"`
}

// GenerateKMSKeyPolicy returns the key policy for cfg: indented JSON, the
// same bytes for the same configuration (principals sorted, statements in
// a fixed order with fixed Sids). Put it with PutKeyPolicy (or CreateKey's
// Policy) as a custodian: without AccountRootAdministers, only custodians
// may change it afterwards, which KMS's lockout safety check verifies.
//
// Statements: custodians administer; services use the key under
// RequiredContextKeys; with BranchKeyStore, custodians make and re-encrypt
// branch keys and services unwrap them, all under the branch key context;
// auditors read; then explicit denies (custodians: Decrypt, Encrypt,
// GenerateDataKey, GenerateDataKeyPair, CreateGrant, and ReEncrypt to or
// from another key unless AllowCrossKeyReEncrypt; services: every
// administrative action), which outrank any IAM policy or grant.
func GenerateKMSKeyPolicy(cfg KMSKeyPolicyConfig) ([]byte, error) {
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	var sts []policyStatement
	add := func(sid, effect string, who []string, actions []string, cond map[string]map[string]any) {
		if len(who) > 0 {
			sts = append(sts, policyStatement{Sid: sid, Effect: effect, Principal: policyPrincipal{who},
				Action: actions, Resource: "*", Condition: cond})
		}
	}
	if cfg.AccountRootAdministers {
		add(sidRoot, "Allow", []string{cfg.rootARN()}, custodianActions, nil)
	}
	add(sidCustodians, "Allow", cfg.Custodians, custodianActions, nil)
	if cfg.BranchKeyStore {
		add(sidCustodiansMake, "Allow", cfg.Custodians, []string{"kms:GenerateDataKeyWithoutPlaintext"}, cfg.branchCondition())
		reCond := cfg.branchCondition()
		if !cfg.AllowCrossKeyReEncrypt {
			reCond["Bool"] = map[string]any{"kms:ReEncryptOnSameKey": true}
		}
		add(sidCustodiansReEncrypt, "Allow", cfg.Custodians, []string{"kms:ReEncryptFrom", "kms:ReEncryptTo"}, reCond)
	}
	if len(cfg.RequiredContextKeys) > 0 {
		like := map[string]any{}
		for _, k := range cfg.RequiredContextKeys {
			like["kms:EncryptionContext:"+k] = "*"
		}
		add(sidServicesData, "Allow", cfg.Services, serviceDataActions, map[string]map[string]any{"StringLike": like})
	}
	if cfg.BranchKeyStore {
		actions := []string{"kms:Decrypt"}
		if cfg.ServicesRotateBranchKeys {
			actions = append(actions, "kms:GenerateDataKeyWithoutPlaintext")
		}
		add(sidServicesBranch, "Allow", cfg.Services, actions, cfg.branchCondition())
	}
	add(sidAuditors, "Allow", cfg.Auditors, auditorActions, nil)
	add(sidDenyCustodiansUse, "Deny", cfg.Custodians, custodianDeniedActions, nil)
	if !cfg.AllowCrossKeyReEncrypt {
		add(sidDenyCustodiansMove, "Deny", cfg.Custodians, []string{"kms:ReEncryptFrom", "kms:ReEncryptTo"},
			map[string]map[string]any{"Bool": {"kms:ReEncryptOnSameKey": false}})
	}
	add(sidDenyServicesAdminister, "Deny", cfg.Services, kmsAdminActions, nil)

	doc, err := json.MarshalIndent(policyDocument{Version: "2012-10-17", ID: "phicrypt-separation-of-duty", Statement: sts}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("custody: encoding the key policy: %w", err)
	}
	if len(doc) > maxKMSPolicyBytes {
		return nil, fmt.Errorf("custody: the key policy is %d bytes, more than KMS's 32 KB; name fewer principals (use roles)", len(doc))
	}
	return doc, nil
}

// rootARN is the account principal, in the partition of the custodians'
// ARNs (normalized checks that every principal shares it).
func (cfg *KMSKeyPolicyConfig) rootARN() string {
	a, _ := arn.Parse(cfg.Custodians[0])
	return "arn:" + a.Partition + ":iam::" + cfg.Account + ":root"
}

// branchCondition is the branch key encryption context every branch key
// statement requires. A fresh map each call: callers add to it.
func (cfg *KMSKeyPolicyConfig) branchCondition() map[string]map[string]any {
	return map[string]map[string]any{"StringEquals": {
		branchContextStore:            cfg.LogicalStoreName,
		branchContextHierarchyVersion: "1",
	}}
}

// normalized checks cfg and returns it with each principal list sorted and
// without duplicates.
func (cfg KMSKeyPolicyConfig) normalized() (KMSKeyPolicyConfig, error) {
	if len(cfg.Account) != 12 || strings.Trim(cfg.Account, "0123456789") != "" {
		return cfg, errors.New("custody: KMSKeyPolicyConfig.Account must be a 12-digit AWS account id")
	}
	roles := []struct {
		name string
		arns *[]string
	}{{"Custodians", &cfg.Custodians}, {"Services", &cfg.Services}, {"Auditors", &cfg.Auditors}}
	for _, r := range roles {
		list := slices.Clone(*r.arns)
		if len(list) > maxKMSPolicyPrincipals {
			return cfg, fmt.Errorf("custody: KMSKeyPolicyConfig.%s names %d principals, more than %d; use roles", r.name, len(list), maxKMSPolicyPrincipals)
		}
		for _, p := range list {
			if err := checkPrincipalARN(p); err != nil {
				return cfg, fmt.Errorf("custody: KMSKeyPolicyConfig.%s: %w", r.name, err)
			}
		}
		slices.Sort(list)
		*r.arns = slices.Compact(list)
	}
	if len(cfg.Custodians) == 0 {
		return cfg, errors.New("custody: KMSKeyPolicyConfig.Custodians is empty; someone must administer the key")
	}
	partition, _ := arn.Parse(cfg.Custodians[0])
	for _, p := range slices.Concat(cfg.Custodians, cfg.Services, cfg.Auditors) {
		if a, _ := arn.Parse(p); a.Partition != partition.Partition {
			return cfg, fmt.Errorf("custody: %s is in another AWS partition than the custodians; a key policy names principals of one partition", p)
		}
	}
	for _, p := range cfg.Custodians {
		if _, both := slices.BinarySearch(cfg.Services, p); both {
			return cfg, fmt.Errorf("custody: %s is listed as both a custodian and a service of the key; one principal never holds both roles", p)
		}
	}
	if len(cfg.Services) > 0 && len(cfg.RequiredContextKeys) == 0 && !cfg.BranchKeyStore {
		return cfg, errors.New("custody: KMSKeyPolicyConfig.RequiredContextKeys is empty; services may use the key only under an encryption context condition")
	}
	seen := map[string]bool{}
	for _, k := range cfg.RequiredContextKeys {
		if err := checkPolicyLiteral(k, maxContextKeyBytes); err != nil || strings.ContainsAny(k, "*?:") {
			return cfg, errors.New("custody: KMSKeyPolicyConfig.RequiredContextKeys: each key must be 1 to 128 printable characters without *, ?, : or ${")
		}
		// AWS matches the context key of the condition key without case.
		if seen[strings.ToLower(k)] {
			return cfg, errors.New("custody: KMSKeyPolicyConfig.RequiredContextKeys lists one key twice (keys are compared without case)")
		}
		seen[strings.ToLower(k)] = true
	}
	cfg.RequiredContextKeys = slices.Clone(cfg.RequiredContextKeys)
	slices.Sort(cfg.RequiredContextKeys)
	if cfg.ServicesRotateBranchKeys && !cfg.BranchKeyStore {
		return cfg, errors.New("custody: KMSKeyPolicyConfig.ServicesRotateBranchKeys needs BranchKeyStore")
	}
	if cfg.BranchKeyStore {
		if err := checkPolicyLiteral(cfg.LogicalStoreName, maxStoreNameBytes); err != nil {
			return cfg, fmt.Errorf("custody: KMSKeyPolicyConfig.LogicalStoreName: %w", err)
		}
	}
	return cfg, nil
}

// checkPrincipalARN accepts an IAM user or role ARN, or an STS
// assumed-role ARN: one named principal, never a wildcard or an account.
func checkPrincipalARN(p string) error {
	if len(p) > maxPrincipalARNBytes {
		return errors.New("a principal ARN is longer than 2048 bytes")
	}
	a, err := arn.Parse(p)
	if err != nil || (a.Service != "iam" && a.Service != "sts") || len(a.AccountID) != 12 ||
		strings.ContainsAny(p, "*? \t\r\n\"\\") || a.Resource == "root" ||
		!(strings.HasPrefix(a.Resource, "user/") || strings.HasPrefix(a.Resource, "role/") || strings.HasPrefix(a.Resource, "assumed-role/")) {
		return fmt.Errorf("%q is not an IAM user or role ARN (arn:aws:iam::ACCOUNT:role/NAME)", p)
	}
	return nil
}

// checkPolicyLiteral accepts a string a policy can hold literally:
// printable, bounded, and no policy variable ("${").
func checkPolicyLiteral(s string, limit int) error {
	if s == "" || len(s) > limit || strings.Contains(s, "${") {
		return fmt.Errorf("must be 1 to %d characters without ${", limit)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return errors.New("must not contain control characters")
		}
	}
	return nil
}
