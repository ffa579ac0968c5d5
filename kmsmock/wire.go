package kmsmock

import (
	"strconv"
	"time"
)

// epoch is a timestamp as the KMS JSON protocol writes it: seconds since the
// Unix epoch, as a JSON number.
type epoch time.Time

func (e epoch) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(time.Time(e).UnixMilli())/1000, 'f', 3, 64), nil
}

func epochPtr(t time.Time) *epoch {
	if t.IsZero() {
		return nil
	}
	e := epoch(t)
	return &e
}

type keyMetadata struct {
	AWSAccountID          string   `json:"AWSAccountId"`
	KeyID                 string   `json:"KeyId"`
	Arn                   string   `json:"Arn"`
	CreationDate          *epoch   `json:"CreationDate"`
	Enabled               bool     `json:"Enabled"`
	Description           string   `json:"Description"`
	KeyUsage              string   `json:"KeyUsage"`
	KeyState              string   `json:"KeyState"`
	DeletionDate          *epoch   `json:"DeletionDate,omitempty"`
	PendingDeletionWindow int      `json:"PendingDeletionWindowInDays,omitempty"`
	Origin                string   `json:"Origin"`
	KeyManager            string   `json:"KeyManager"`
	CustomerMasterKeySpec string   `json:"CustomerMasterKeySpec"`
	KeySpec               string   `json:"KeySpec"`
	EncryptionAlgorithms  []string `json:"EncryptionAlgorithms"`
	MultiRegion           bool     `json:"MultiRegion"`
}

func (s *Server) metadata(k *key) keyMetadata {
	return keyMetadata{
		AWSAccountID:          s.account,
		KeyID:                 k.ID,
		Arn:                   s.keyARN(k.ID),
		CreationDate:          epochPtr(k.Created),
		Enabled:               k.State == stateEnabled,
		Description:           k.Description,
		KeyUsage:              "ENCRYPT_DECRYPT",
		KeyState:              k.State,
		DeletionDate:          epochPtr(k.DeletionDate),
		PendingDeletionWindow: k.PendingWindowDays,
		Origin:                "AWS_KMS",
		KeyManager:            "CUSTOMER",
		CustomerMasterKeySpec: "SYMMETRIC_DEFAULT",
		KeySpec:               "SYMMETRIC_DEFAULT",
		EncryptionAlgorithms:  []string{algSymmetric},
		MultiRegion:           false,
	}
}

const algSymmetric = "SYMMETRIC_DEFAULT"

// checkAlgorithm accepts the one algorithm a symmetric key has.
func checkAlgorithm(alg string) *apiError {
	switch alg {
	case "", algSymmetric:
		return nil
	case "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE":
		return errorf(codeInvalidKeyUsage, "the key's KeySpec SYMMETRIC_DEFAULT does not support that encryption algorithm")
	default:
		return errValidation("EncryptionAlgorithm must be SYMMETRIC_DEFAULT")
	}
}

// checkContext bounds an encryption context; values are never echoed.
func checkContext(ctx map[string]string) *apiError {
	n := 0
	for k, v := range ctx {
		if k == "" {
			return errValidation("encryption context keys must not be empty")
		}
		n += len(k) + len(v)
	}
	if n > maxEncryptionContext {
		return errValidation("the encryption context is larger than 8192 bytes")
	}
	return nil
}

func checkGrantTokens(tokens []string) *apiError {
	if len(tokens) > maxGrantTokens {
		return errValidation("at most 10 grant tokens are allowed")
	}
	for _, t := range tokens {
		if len(t) == 0 || len(t) > 8192 {
			return errValidation("each grant token must be 1 to 8192 characters")
		}
	}
	return nil
}
