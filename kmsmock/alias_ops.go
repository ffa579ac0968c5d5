package kmsmock

import (
	"regexp"
	"slices"
	"strings"
)

var aliasPattern = regexp.MustCompile(`^alias/[a-zA-Z0-9/_-]+$`)

const maxAliases = 100000

type aliasInput struct {
	AliasName   string `json:"AliasName"`
	TargetKeyID string `json:"TargetKeyId"`
}

// checkAliasName applies AWS's rules, with AWS's answers: a syntax error is a
// ValidationException, the reserved prefix NotAuthorizedException.
func checkAliasName(name string) *apiError {
	if !strings.HasPrefix(name, "alias/") {
		return errValidation(`Alias must start with the prefix "alias/"`)
	}
	if len(name) > maxAliasNameBytes || !aliasPattern.MatchString(name) {
		return errValidation("the alias name contains invalid characters or is longer than 256; use letters, digits, /, _ and -")
	}
	if strings.HasPrefix(name, "alias/aws/") {
		return errorf(codeNotAuthorized, "the alias/aws/ prefix is reserved for AWS managed keys")
	}
	return nil
}

// aliasTarget resolves the key an alias is to point at: a key id or ARN,
// not pending deletion, on which the caller holds action.
func (c *call) aliasTarget(ref, action string) (*key, *apiError) {
	k, err := c.adminKey(ref, action)
	if err != nil {
		return nil, err
	}
	if err := k.notPendingDeletion(); err != nil {
		return nil, err
	}
	return k, nil
}

func opCreateAlias(c *call, body []byte) (any, *apiError) {
	in, err := decode[aliasInput](body)
	if err != nil {
		return nil, err
	}
	if err := checkAliasName(in.AliasName); err != nil {
		return nil, err
	}
	k, err := c.aliasTarget(in.TargetKeyID, "CreateAlias")
	if err != nil {
		return nil, err
	}
	if _, taken := c.s.aliases[in.AliasName]; taken {
		return nil, errorf(codeAlreadyExists, "an alias with that name already exists")
	}
	if len(c.s.aliases) >= maxAliases {
		return nil, errorf(codeLimitExceeded, "kmsmock holds at most 100000 aliases")
	}
	c.s.aliases[in.AliasName] = &alias{Name: in.AliasName, KeyID: k.ID, Created: c.now, Updated: c.now}
	c.s.dirty = true
	return struct{}{}, nil
}

func (c *call) existingAlias(name, action string) (*alias, *apiError) {
	if err := checkAliasName(name); err != nil {
		return nil, err
	}
	a, ok := c.s.aliases[name]
	if !ok {
		return nil, errNotFound("Alias " + c.s.aliasARN(name) + " is not found.")
	}
	if _, err := c.adminKey(a.KeyID, action); err != nil {
		return nil, err
	}
	return a, nil
}

func opUpdateAlias(c *call, body []byte) (any, *apiError) {
	in, err := decode[aliasInput](body)
	if err != nil {
		return nil, err
	}
	a, err := c.existingAlias(in.AliasName, "UpdateAlias")
	if err != nil {
		return nil, err
	}
	k, err := c.aliasTarget(in.TargetKeyID, "UpdateAlias")
	if err != nil {
		return nil, err
	}
	a.KeyID, a.Updated = k.ID, c.now
	c.s.dirty = true
	return struct{}{}, nil
}

func opDeleteAlias(c *call, body []byte) (any, *apiError) {
	in, err := decode[aliasInput](body)
	if err != nil {
		return nil, err
	}
	if _, err := c.existingAlias(in.AliasName, "DeleteAlias"); err != nil {
		return nil, err
	}
	delete(c.s.aliases, in.AliasName)
	c.s.dirty = true
	return struct{}{}, nil
}

type aliasEntry struct {
	AliasName       string `json:"AliasName"`
	AliasArn        string `json:"AliasArn"`
	TargetKeyID     string `json:"TargetKeyId"`
	CreationDate    *epoch `json:"CreationDate"`
	LastUpdatedDate *epoch `json:"LastUpdatedDate"`
}

// opListAliases lists aliases, all of them or those of one key. Listing is an
// account-level permission; naming a key additionally needs that key to exist.
func opListAliases(c *call, body []byte) (any, *apiError) {
	in, err := decode[listInput](body)
	if err != nil {
		return nil, err
	}
	var only string
	if in.KeyID != "" {
		k, err := c.s.findKey(in.KeyID, refIDOrARN)
		if err != nil {
			return nil, err
		}
		only = k.ID
	}
	var names []string
	for name, a := range c.s.aliases {
		if only == "" || a.KeyID == only {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	lo, hi, next, err := page(len(names), func(i int) string { return names[i] }, in.Limit, maxListLimitAliases, in.Marker)
	if err != nil {
		return nil, err
	}
	out := struct {
		Aliases    []aliasEntry `json:"Aliases"`
		NextMarker string       `json:"NextMarker,omitempty"`
		Truncated  bool         `json:"Truncated"`
	}{Aliases: []aliasEntry{}, NextMarker: next, Truncated: next != ""}
	for _, name := range names[lo:hi] {
		a := c.s.aliases[name]
		out.Aliases = append(out.Aliases, aliasEntry{name, c.s.aliasARN(name), a.KeyID, epochPtr(a.Created), epochPtr(a.Updated)})
	}
	return out, nil
}
