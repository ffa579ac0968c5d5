package keyring

import "strings"

// keyARN is a parsed KMS ARN (framework/aws-kms/aws-kms-key-arn.md):
// arn:PARTITION:kms:REGION:ACCOUNT:RESOURCE-TYPE/RESOURCE-ID.
type keyARN struct {
	partition, region, account, resourceType, resourceID string
}

func parseKeyARN(s string) (keyARN, bool) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "kms" {
		return keyARN{}, false
	}
	a := keyARN{partition: parts[1], region: parts[3], account: parts[4]}
	var ok bool
	a.resourceType, a.resourceID, ok = strings.Cut(parts[5], "/")
	if !ok || a.partition == "" || a.region == "" || a.account == "" || a.resourceID == "" {
		return keyARN{}, false
	}
	if a.resourceType != "key" && a.resourceType != "alias" {
		return keyARN{}, false
	}
	return a, true
}
