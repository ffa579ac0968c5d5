package kmsmock

import (
	"strconv"
	"time"
)

const day = 24 * time.Hour

type enableRotationInput struct {
	KeyID                string `json:"KeyId"`
	RotationPeriodInDays *int   `json:"RotationPeriodInDays"`
}

// rotationKey resolves a key for a rotation operation: the key must be
// enabled, as AWS requires (DisabledException, or KMSInvalidStateException
// while pending deletion).
func (c *call) rotationKey(ref, action string) (*key, *apiError) {
	k, err := c.adminKey(ref, action)
	if err != nil {
		return nil, err
	}
	if err := k.usable(); err != nil {
		return nil, err
	}
	return k, nil
}

func opEnableKeyRotation(c *call, body []byte) (any, *apiError) {
	in, err := decode[enableRotationInput](body)
	if err != nil {
		return nil, err
	}
	days := defaultRotationDays
	if in.RotationPeriodInDays != nil {
		days = *in.RotationPeriodInDays
	}
	if days < minRotationDays || days > maxRotationDays {
		return nil, errValidation("RotationPeriodInDays must be 90 to 2560")
	}
	k, err := c.rotationKey(in.KeyID, "EnableKeyRotation")
	if err != nil {
		return nil, err
	}
	k.RotationEnabled, k.RotationPeriodDays = true, days
	k.NextRotation = c.now.Add(time.Duration(days) * day)
	c.s.dirty = true
	return struct{}{}, nil
}

func opDisableKeyRotation(c *call, body []byte) (any, *apiError) {
	in, err := decode[keyIDInput](body)
	if err != nil {
		return nil, err
	}
	k, err := c.rotationKey(in.KeyID, "DisableKeyRotation")
	if err != nil {
		return nil, err
	}
	k.RotationEnabled, k.RotationPeriodDays, k.NextRotation = false, 0, time.Time{}
	c.s.dirty = true
	return struct{}{}, nil
}

type rotationStatusOutput struct {
	KeyRotationEnabled   bool   `json:"KeyRotationEnabled"`
	KeyID                string `json:"KeyId"`
	RotationPeriodInDays int    `json:"RotationPeriodInDays,omitempty"`
	NextRotationDate     *epoch `json:"NextRotationDate,omitempty"`
}

func opGetKeyRotationStatus(c *call, body []byte) (any, *apiError) {
	in, err := decode[keyIDInput](body)
	if err != nil {
		return nil, err
	}
	k, err := c.adminKey(in.KeyID, "GetKeyRotationStatus")
	if err != nil {
		return nil, err
	}
	return rotationStatusOutput{
		KeyRotationEnabled:   k.RotationEnabled,
		KeyID:                c.keyARN,
		RotationPeriodInDays: k.RotationPeriodDays,
		NextRotationDate:     epochPtr(k.NextRotation),
	}, nil
}

// opRotateKeyOnDemand rotates at once (AWS finishes in the background; the
// emulator has nothing to wait for). At most ten on-demand rotations per key.
func opRotateKeyOnDemand(c *call, body []byte) (any, *apiError) {
	in, err := decode[keyIDInput](body)
	if err != nil {
		return nil, err
	}
	k, err := c.rotationKey(in.KeyID, "RotateKeyOnDemand")
	if err != nil {
		return nil, err
	}
	n := 0
	for _, r := range k.Rotations {
		if r.Type == "ON_DEMAND" {
			n++
		}
	}
	if n >= maxOnDemandRotations {
		return nil, errorf(codeLimitExceeded, "this key has had the maximum of 10 on-demand rotations")
	}
	k.rotate(c.now, "ON_DEMAND")
	c.s.dirty = true
	return keyARNOutput{c.keyARN}, nil
}

func (k *key) rotate(at time.Time, kind string) {
	k.Backing = append(k.Backing, newBackingKey())
	k.Rotations = append(k.Rotations, rotation{Date: at, Type: kind})
}

type rotationEntry struct {
	KeyID        string `json:"KeyId"`
	RotationDate *epoch `json:"RotationDate"`
	RotationType string `json:"RotationType"`
}

func opListKeyRotations(c *call, body []byte) (any, *apiError) {
	in, err := decode[listInput](body)
	if err != nil {
		return nil, err
	}
	k, err := c.adminKey(in.KeyID, "ListKeyRotations")
	if err != nil {
		return nil, err
	}
	rs := k.Rotations
	// Rotation dates need not be unique, so the marker is the position.
	lo, hi, next, err := page(len(rs), strconv.Itoa, in.Limit, maxListLimitRotations, in.Marker)
	if err != nil {
		return nil, err
	}
	out := struct {
		Rotations  []rotationEntry `json:"Rotations"`
		NextMarker string          `json:"NextMarker,omitempty"`
		Truncated  bool            `json:"Truncated"`
	}{Rotations: []rotationEntry{}, NextMarker: next, Truncated: next != ""}
	for _, r := range rs[lo:hi] {
		out.Rotations = append(out.Rotations, rotationEntry{k.ID, epochPtr(r.Date), r.Type})
	}
	return out, nil
}

// sweep carries out what the clock has made due: scheduled deletions and
// automatic rotations. It must be called with s.mu held.
func (s *Server) sweep(now time.Time) {
	for id, k := range s.keys {
		if k.State == statePendingDeletion && !now.Before(k.DeletionDate) {
			delete(s.keys, id)
			for name, a := range s.aliases {
				if a.KeyID == id {
					delete(s.aliases, name)
				}
			}
			s.dirty = true
			continue
		}
		// A disabled or pending key does not rotate; AWS resumes the
		// schedule once it is enabled again.
		for k.RotationEnabled && k.State == stateEnabled && !now.Before(k.NextRotation) {
			k.rotate(k.NextRotation, "AUTOMATIC")
			k.NextRotation = k.NextRotation.Add(time.Duration(k.RotationPeriodDays) * day)
			s.dirty = true
		}
	}
}
