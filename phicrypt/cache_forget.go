package phicrypt

import "github.com/phicrypt/phicrypt/keyring"

// hierarchyProviderID is the provider id of a hierarchical keyring's
// encrypted data keys (aws-kms-hierarchical-keyring.md "OnEncrypt"); their
// provider info is the branch key id.
const hierarchyProviderID = "aws-kms-hierarchy"

// branchKeysOf returns the branch key ids the hierarchical encrypted data
// keys among edks name (nil if none): what a cache entry made from them
// depends on.
func branchKeysOf(edks []keyring.EncryptedDataKey) []string {
	var ids []string
	for _, e := range edks {
		if e.ProviderID == hierarchyProviderID {
			ids = append(ids, string(e.ProviderInfo))
		}
	}
	return ids
}

// ForgetBranchKey evicts, at once, every cached data key that depends on
// branch key id: encrypt entries whose data key a hierarchical keyring
// wrapped under it, and decrypt entries of messages with an encrypted data
// key under it (each entry records the branch key ids named by its
// encrypted data keys when it is made). Their data keys are wiped once no
// message uses them, so the next Encrypt or Decrypt asks the keyring,
// which refuses a destroyed key (keyring.ErrKeyDestroyed). Call it with
// keyring.Hierarchical.Forget after destroying branch key id or one of its
// versions; without it, entries end by themselves within the keyring's
// CacheTTL (the bound a hierarchical keyring sets on their validity). It
// returns how many entries it evicted. An Encrypt or Decrypt already past
// its keyring call when ForgetBranchKey runs may still cache the data key
// it made; that entry lives at most the keyring's CacheTTL (call
// ForgetBranchKey again once such calls have returned to end it sooner).
func (c *Cache) ForgetBranchKey(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.entries.Load()
	next := make(map[string]*cacheEntry, len(old))
	evicted := 0
	for k, e := range old {
		if dependsOn(e, id) {
			c.drop(e)
			evicted++
			continue
		}
		next[k] = e
	}
	if evicted > 0 {
		c.entries.Store(&next)
	}
	return evicted
}

func dependsOn(e *cacheEntry, id string) bool {
	for _, b := range e.branchKeys {
		if b == id {
			return true
		}
	}
	return false
}
