package kmsmock

import (
	"strings"
	"time"
)

// Key states, named as KMS names them in KeyMetadata.KeyState.
const (
	stateEnabled         = "Enabled"
	stateDisabled        = "Disabled"
	statePendingDeletion = "PendingDeletion"
)

// Rotation limits from the KMS API reference.
const (
	defaultRotationDays   = 365
	minRotationDays       = 90
	maxRotationDays       = 2560
	maxOnDemandRotations  = 10
	defaultPendingWindow  = 30
	minPendingWindow      = 7
	maxPendingWindow      = 30
	defaultPolicyName     = "default"
	maxPolicyBytes        = 32768
	maxDescriptionBytes   = 8192
	maxKeyIDBytes         = 2048
	maxAliasNameBytes     = 256
	maxGrantTokens        = 10
	maxPlaintextBytes     = 4096
	maxRandomBytes        = 1024
	maxEncryptionContext  = 8192 // bytes of keys and values together
	maxListLimitKeys      = 1000
	maxListLimitAliases   = 100
	maxListLimitRotations = 1000
)

// key is one KMS key. Backing keys are append-only: index i is the material
// that rotation i produced, and blobs name the index that sealed them.
type key struct {
	ID                 string     `json:"id"`
	Description        string     `json:"description"`
	Created            time.Time  `json:"created"`
	State              string     `json:"state"`
	DeletionDate       time.Time  `json:"deletionDate,omitzero"`
	PendingWindowDays  int        `json:"pendingWindowDays,omitempty"`
	Policy             string     `json:"policy"`
	Backing            [][]byte   `json:"backing"`
	RotationEnabled    bool       `json:"rotationEnabled"`
	RotationPeriodDays int        `json:"rotationPeriodDays,omitempty"`
	NextRotation       time.Time  `json:"nextRotation,omitzero"`
	Rotations          []rotation `json:"rotations,omitempty"`
	OnDemandStarted    time.Time  `json:"onDemandStarted,omitzero"`

	policy *policy
}

type rotation struct {
	Date time.Time `json:"date"`
	Type string    `json:"type"` // AUTOMATIC or ON_DEMAND
}

type alias struct {
	Name    string    `json:"name"`
	KeyID   string    `json:"keyId"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

func (s *Server) keyARN(id string) string {
	return "arn:aws:kms:" + s.region + ":" + s.account + ":key/" + id
}

func (s *Server) aliasARN(name string) string {
	return "arn:aws:kms:" + s.region + ":" + s.account + ":" + name
}

// keyRefKinds says which spellings of a key an operation accepts; AWS accepts
// aliases only on some operations.
type keyRefKinds int

const (
	refIDOrARN keyRefKinds = iota + 1
	refAny                 // key id, key ARN, alias name or alias ARN
)

// findKey resolves a key reference. It must be called with s.mu held.
func (s *Server) findKey(ref string, kinds keyRefKinds) (*key, *apiError) {
	if ref == "" {
		return nil, errValidation("KeyId is required")
	}
	if len(ref) > maxKeyIDBytes {
		return nil, errValidation("KeyId is longer than 2048 characters")
	}
	name := ref
	if strings.HasPrefix(ref, "arn:") {
		resource, err := s.parseARN(ref)
		if err != nil {
			return nil, err
		}
		name = resource
	}
	if strings.HasPrefix(name, "alias/") {
		if kinds != refAny {
			return nil, errNotFound("this operation takes a key id or key ARN, not an alias")
		}
		a, ok := s.aliases[name]
		if !ok {
			return nil, errNotFound("Alias " + s.aliasARN(name) + " is not found.")
		}
		name = "key/" + a.KeyID
	} else if !strings.HasPrefix(name, "key/") {
		name = "key/" + name
	}
	k, ok := s.keys[strings.TrimPrefix(name, "key/")]
	if !ok {
		return nil, errNotFound("Key '" + s.keyARN(strings.TrimPrefix(name, "key/")) + "' does not exist")
	}
	return k, nil
}

// parseARN checks that an ARN names a KMS resource in this server's region and
// account and returns its resource part ("key/ID" or "alias/NAME").
func (s *Server) parseARN(arn string) (string, *apiError) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[1] == "" || parts[2] != "kms" {
		return "", errorf(codeInvalidArn, "the ARN is not a KMS key or alias ARN")
	}
	resource := parts[5]
	if !strings.HasPrefix(resource, "key/") && !strings.HasPrefix(resource, "alias/") {
		return "", errorf(codeInvalidArn, "the ARN is not a KMS key or alias ARN")
	}
	if parts[3] != s.region || parts[4] != s.account {
		return "", errNotFound("the ARN names another region or account")
	}
	return resource, nil
}

// usable reports whether a key may perform cryptographic operations, with the
// exception AWS returns when it may not.
func (k *key) usable() *apiError {
	switch k.State {
	case stateEnabled:
		return nil
	case stateDisabled:
		return errorf(codeDisabled, "key '"+k.ID+"' is disabled")
	default:
		return errorf(codeInvalidState, "key '"+k.ID+"' is pending deletion")
	}
}

func (k *key) notPendingDeletion() *apiError {
	if k.State == statePendingDeletion {
		return errorf(codeInvalidState, "key '"+k.ID+"' is pending deletion")
	}
	return nil
}
