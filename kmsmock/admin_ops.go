package kmsmock

import (
	"cmp"
	"crypto/rand"
	"slices"
	"time"
)

const maxKeys = 100000

type createKeyInput struct {
	Policy                         string `json:"Policy"`
	Description                    string `json:"Description"`
	KeyUsage                       string `json:"KeyUsage"`
	KeySpec                        string `json:"KeySpec"`
	CustomerMasterKeySpec          string `json:"CustomerMasterKeySpec"`
	Origin                         string `json:"Origin"`
	MultiRegion                    bool   `json:"MultiRegion"`
	BypassPolicyLockoutSafetyCheck bool   `json:"BypassPolicyLockoutSafetyCheck"`
	CustomKeyStoreID               string `json:"CustomKeyStoreId"`
	XksKeyID                       string `json:"XksKeyId"`
	Tags                           []struct {
		TagKey   string `json:"TagKey"`
		TagValue string `json:"TagValue"`
	} `json:"Tags"`
}

type keyMetadataOutput struct {
	KeyMetadata keyMetadata `json:"KeyMetadata"`
}

// opCreateKey creates a symmetric encryption key. CreateKey is governed by
// IAM, not by a key policy, so every authenticated principal may call it.
func opCreateKey(c *call, body []byte) (any, *apiError) {
	in, err := decode[createKeyInput](body)
	if err != nil {
		return nil, err
	}
	if len(in.Description) > maxDescriptionBytes {
		return nil, errValidation("Description is longer than 8192 characters")
	}
	if (in.KeyUsage != "" && in.KeyUsage != "ENCRYPT_DECRYPT") ||
		(in.KeySpec != "" && in.KeySpec != algSymmetric) ||
		(in.CustomerMasterKeySpec != "" && in.CustomerMasterKeySpec != algSymmetric) {
		return nil, errorf(codeUnsupported, "kmsmock supports only SYMMETRIC_DEFAULT keys for ENCRYPT_DECRYPT")
	}
	if (in.Origin != "" && in.Origin != "AWS_KMS") || in.MultiRegion || in.CustomKeyStoreID != "" || in.XksKeyID != "" {
		return nil, errorf(codeUnsupported, "kmsmock supports only single-region keys with origin AWS_KMS")
	}
	if len(c.s.keys) >= maxKeys {
		return nil, errorf(codeLimitExceeded, "kmsmock holds at most 100000 keys")
	}
	k := &key{ID: newUUID(), Description: in.Description, Created: c.now, State: stateEnabled}
	doc := in.Policy
	if doc == "" {
		doc = defaultPolicy(c.s.account)
	}
	if err := c.setPolicy(k, doc, in.BypassPolicyLockoutSafetyCheck); err != nil {
		return nil, err
	}
	k.Backing = [][]byte{newBackingKey()}
	c.s.keys[k.ID] = k
	c.s.dirty = true
	c.keyARN = c.s.keyARN(k.ID)
	return keyMetadataOutput{c.s.metadata(k)}, nil
}

func newBackingKey() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// setPolicy parses doc and, unless bypassed, applies KMS's lockout safety
// check: the caller must still be allowed to change the policy afterwards.
func (c *call) setPolicy(k *key, doc string, bypass bool) *apiError {
	p, perr := parsePolicy(doc)
	if perr != nil {
		return errorf(codeMalformedPolicy, perr.Error())
	}
	if !bypass {
		rq := requestFacts{principal: c.principal, account: c.s.account, action: "kms:PutKeyPolicy", resource: c.s.keyARN(k.ID)}
		if !p.allows(&rq) {
			return errorf(codeMalformedPolicy, "The new key policy will not allow you to update the key policy in the future.")
		}
	}
	k.Policy, k.policy = doc, p
	return nil
}

type keyIDInput struct {
	KeyID string `json:"KeyId"`
}

// adminKey resolves a key for an administrative operation, which takes a key
// id or key ARN (not an alias), and checks the caller's permission.
func (c *call) adminKey(ref, action string) (*key, *apiError) {
	k, err := c.s.findKey(ref, refIDOrARN)
	if err != nil {
		return nil, err
	}
	c.keyARN = c.s.keyARN(k.ID)
	if err := c.authorize(k, action, nil); err != nil {
		return nil, err
	}
	return k, nil
}

func opDescribeKey(c *call, body []byte) (any, *apiError) {
	in, err := decode[keyIDInput](body)
	if err != nil {
		return nil, err
	}
	k, err := c.s.findKey(in.KeyID, refAny)
	if err != nil {
		return nil, err
	}
	c.keyARN = c.s.keyARN(k.ID)
	if err := c.authorize(k, "DescribeKey", nil); err != nil {
		return nil, err
	}
	return keyMetadataOutput{c.s.metadata(k)}, nil
}

type keyARNOutput struct {
	KeyID string `json:"KeyId"`
}

func opEnableKey(c *call, body []byte) (any, *apiError) {
	return c.setState(body, "EnableKey", stateEnabled)
}

func opDisableKey(c *call, body []byte) (any, *apiError) {
	return c.setState(body, "DisableKey", stateDisabled)
}

func (c *call) setState(body []byte, action, state string) (any, *apiError) {
	in, err := decode[keyIDInput](body)
	if err != nil {
		return nil, err
	}
	k, err := c.adminKey(in.KeyID, action)
	if err != nil {
		return nil, err
	}
	if err := k.notPendingDeletion(); err != nil {
		return nil, err
	}
	k.State = state
	c.s.dirty = true
	return struct{}{}, nil
}

type scheduleDeletionInput struct {
	KeyID               string `json:"KeyId"`
	PendingWindowInDays *int   `json:"PendingWindowInDays"`
}

type scheduleDeletionOutput struct {
	KeyID               string `json:"KeyId"`
	DeletionDate        *epoch `json:"DeletionDate"`
	KeyState            string `json:"KeyState"`
	PendingWindowInDays int    `json:"PendingWindowInDays"`
}

func opScheduleKeyDeletion(c *call, body []byte) (any, *apiError) {
	in, err := decode[scheduleDeletionInput](body)
	if err != nil {
		return nil, err
	}
	days := defaultPendingWindow
	if in.PendingWindowInDays != nil {
		days = *in.PendingWindowInDays
	}
	if days < minPendingWindow || days > maxPendingWindow {
		return nil, errValidation("PendingWindowInDays must be 7 to 30")
	}
	k, err := c.adminKey(in.KeyID, "ScheduleKeyDeletion")
	if err != nil {
		return nil, err
	}
	if err := k.notPendingDeletion(); err != nil {
		return nil, err
	}
	k.State = statePendingDeletion
	k.PendingWindowDays = days
	k.DeletionDate = c.now.Add(time.Duration(days) * 24 * time.Hour)
	c.s.dirty = true
	return scheduleDeletionOutput{c.keyARN, epochPtr(k.DeletionDate), k.State, days}, nil
}

// opCancelKeyDeletion leaves the key Disabled, as AWS does: the custodian
// must enable it deliberately.
func opCancelKeyDeletion(c *call, body []byte) (any, *apiError) {
	in, err := decode[keyIDInput](body)
	if err != nil {
		return nil, err
	}
	k, err := c.adminKey(in.KeyID, "CancelKeyDeletion")
	if err != nil {
		return nil, err
	}
	if k.State != statePendingDeletion {
		return nil, errorf(codeInvalidState, "key '"+k.ID+"' is not pending deletion")
	}
	k.State, k.DeletionDate, k.PendingWindowDays = stateDisabled, time.Time{}, 0
	c.s.dirty = true
	return keyARNOutput{c.keyARN}, nil
}

type getKeyPolicyInput struct {
	KeyID      string `json:"KeyId"`
	PolicyName string `json:"PolicyName"`
}

func checkPolicyName(name string) *apiError {
	if name != "" && name != defaultPolicyName {
		return errNotFound("the only key policy name is \"default\"")
	}
	return nil
}

func opGetKeyPolicy(c *call, body []byte) (any, *apiError) {
	in, err := decode[getKeyPolicyInput](body)
	if err != nil {
		return nil, err
	}
	if err := checkPolicyName(in.PolicyName); err != nil {
		return nil, err
	}
	k, err := c.adminKey(in.KeyID, "GetKeyPolicy")
	if err != nil {
		return nil, err
	}
	return struct {
		Policy     string `json:"Policy"`
		PolicyName string `json:"PolicyName"`
	}{k.Policy, defaultPolicyName}, nil
}

type putKeyPolicyInput struct {
	KeyID                          string `json:"KeyId"`
	PolicyName                     string `json:"PolicyName"`
	Policy                         string `json:"Policy"`
	BypassPolicyLockoutSafetyCheck bool   `json:"BypassPolicyLockoutSafetyCheck"`
}

func opPutKeyPolicy(c *call, body []byte) (any, *apiError) {
	in, err := decode[putKeyPolicyInput](body)
	if err != nil {
		return nil, err
	}
	if err := checkPolicyName(in.PolicyName); err != nil {
		return nil, err
	}
	if in.Policy == "" {
		return nil, errValidation("Policy is required")
	}
	k, err := c.adminKey(in.KeyID, "PutKeyPolicy")
	if err != nil {
		return nil, err
	}
	if err := c.setPolicy(k, in.Policy, in.BypassPolicyLockoutSafetyCheck); err != nil {
		return nil, err
	}
	c.s.dirty = true
	return struct{}{}, nil
}

type listInput struct {
	KeyID  string `json:"KeyId"`
	Limit  *int   `json:"Limit"`
	Marker string `json:"Marker"`
}

// page applies Limit and Marker to a sorted list of n items named by name(i).
// The marker is the name of the first item of the next page.
func page(n int, name func(int) string, limit *int, maxLimit int, marker string) (lo, hi int, next string, aerr *apiError) {
	size := 100
	if limit != nil {
		if *limit < 1 || *limit > maxLimit {
			return 0, 0, "", errValidation("Limit is out of range")
		}
		size = *limit
	}
	if marker != "" {
		lo = -1
		for i := range n {
			if name(i) == marker {
				lo = i
				break
			}
		}
		if lo < 0 {
			return 0, 0, "", errorf(codeInvalidMarker, "the marker does not name a position in this list")
		}
	}
	hi = min(n, lo+size)
	if hi < n {
		next = name(hi)
	}
	return lo, hi, next, nil
}

type keyListEntry struct {
	KeyID  string `json:"KeyId"`
	KeyArn string `json:"KeyArn"`
}

// opListKeys lists every key. Like CreateKey it is an account-level (IAM)
// permission, open to every authenticated principal.
func opListKeys(c *call, body []byte) (any, *apiError) {
	in, err := decode[listInput](body)
	if err != nil {
		return nil, err
	}
	keys := c.s.sortedKeys()
	lo, hi, next, err := page(len(keys), func(i int) string { return keys[i].ID }, in.Limit, maxListLimitKeys, in.Marker)
	if err != nil {
		return nil, err
	}
	out := struct {
		Keys       []keyListEntry `json:"Keys"`
		NextMarker string         `json:"NextMarker,omitempty"`
		Truncated  bool           `json:"Truncated"`
	}{Keys: []keyListEntry{}, NextMarker: next, Truncated: next != ""}
	for _, k := range keys[lo:hi] {
		out.Keys = append(out.Keys, keyListEntry{k.ID, c.s.keyARN(k.ID)})
	}
	return out, nil
}

func (s *Server) sortedKeys() []*key {
	keys := make([]*key, 0, len(s.keys))
	for _, k := range s.keys {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b *key) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	return keys
}
