package kmsmock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Seed lists keys and aliases to create when a server starts, as read from
// the binary's -seed file:
//
//	{"keys": [{"id": "…uuid…", "description": "PHI wrapping key",
//	           "aliases": ["alias/phi"], "rotationPeriodDays": 365,
//	           "policy": {…IAM policy document…}}]}
//
// Applying a seed is idempotent: a key whose id (or, without an id, whose
// first alias) already exists is left as it is, so a seed and a -state file
// can be used together.
type Seed struct {
	Keys []SeedKey `json:"keys"`
}

// SeedKey is one key of a Seed.
type SeedKey struct {
	// ID fixes the key id (a lower-case UUID) so configurations can name the
	// ARN in advance; empty picks a random one.
	ID          string          `json:"id,omitempty"`
	Description string          `json:"description,omitempty"`
	Aliases     []string        `json:"aliases,omitempty"`
	Policy      json.RawMessage `json:"policy,omitempty"`
	Disabled    bool            `json:"disabled,omitempty"`
	// RotationPeriodDays > 0 enables automatic rotation.
	RotationPeriodDays int `json:"rotationPeriodDays,omitempty"`
}

// ReadSeed reads a seed file, refusing unknown fields so that a typo does
// not silently leave a key unprotected.
func ReadSeed(path string) (Seed, error) {
	var sd Seed
	b, err := os.ReadFile(path)
	if err != nil {
		return sd, fmt.Errorf("kmsmock: reading seed: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sd); err != nil {
		return sd, fmt.Errorf("kmsmock: seed file %s: %w", path, err)
	}
	return sd, nil
}

// ApplySeed creates the seed's keys and aliases that do not exist yet.
func (s *Server) ApplySeed(sd Seed) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.persist()
	now := s.clock()
	for i, sk := range sd.Keys {
		if err := s.applySeedKey(sk, now); err != nil {
			return fmt.Errorf("kmsmock: seed key %d: %w", i, err)
		}
	}
	return nil
}

func (s *Server) applySeedKey(sk SeedKey, now time.Time) error {
	if sk.ID != "" && !isUUID([]byte(sk.ID)) {
		return fmt.Errorf("id %q is not a lower-case UUID", sk.ID)
	}
	if s.keys[sk.ID] != nil || sk.ID == "" && len(sk.Aliases) > 0 && s.aliases[sk.Aliases[0]] != nil {
		return nil
	}
	for _, name := range sk.Aliases {
		if err := checkAliasName(name); err != nil {
			return fmt.Errorf("alias %q: %s", name, err.msg)
		}
		if s.aliases[name] != nil {
			return fmt.Errorf("alias %q already names another key", name)
		}
	}
	k := &key{ID: sk.ID, Description: sk.Description, Created: now, State: stateEnabled, Backing: [][]byte{newBackingKey()}}
	if k.ID == "" {
		k.ID = newUUID()
	}
	k.Policy = defaultPolicy(s.account)
	if len(sk.Policy) > 0 {
		k.Policy = string(sk.Policy)
	}
	p, err := parsePolicy(k.Policy)
	if err != nil {
		return err
	}
	k.policy = p
	if sk.Disabled {
		k.State = stateDisabled
	}
	if sk.RotationPeriodDays != 0 {
		if sk.RotationPeriodDays < minRotationDays || sk.RotationPeriodDays > maxRotationDays {
			return fmt.Errorf("rotationPeriodDays must be %d to %d", minRotationDays, maxRotationDays)
		}
		k.RotationEnabled, k.RotationPeriodDays = true, sk.RotationPeriodDays
		k.NextRotation = now.Add(time.Duration(sk.RotationPeriodDays) * day)
	}
	s.keys[k.ID] = k
	for _, name := range sk.Aliases {
		s.aliases[name] = &alias{Name: name, KeyID: k.ID, Created: now, Updated: now}
	}
	s.dirty = true
	return nil
}
