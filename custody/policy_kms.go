package custody

// KMSKeyPolicyConfig returns the KMS key-policy configuration that makes
// KMS enforce p for a branch key store: p's custodians administer the KMS
// key that wraps its branch keys and never decrypt, p's services unwrap
// branch keys, p's auditors read the key's metadata, and services may make
// new branch key versions (the hierarchical keyring's rotation at
// HierarchicalConfig.MaxUsesPerVersion) only where p.ServiceMayRotate
// says so: without it KMS refuses the service's
// GenerateDataKeyWithoutPlaintext, and its keyring fails at the usage cap
// instead of rotating. account is the KMS key's AWS account and
// logicalStoreName the store's keyring.BranchKeysConfig.LogicalStoreName.
// Principals without an AWS principal are left out; pass the result to
// GenerateKMSKeyPolicy (which checks it) or CheckKMSKey.
func (p *Policy) KMSKeyPolicyConfig(account, logicalStoreName string) KMSKeyPolicyConfig {
	custodians, services, auditors := p.AWSPrincipals()
	return KMSKeyPolicyConfig{
		Account:                  account,
		Custodians:               custodians,
		Services:                 services,
		Auditors:                 auditors,
		BranchKeyStore:           true,
		LogicalStoreName:         logicalStoreName,
		ServicesRotateBranchKeys: p.ServiceMayRotate.ByUsage || p.ServiceMayRotate.ByAge,
	}
}
