package kmsmock

import (
	"crypto/rand"
	"strconv"
)

// authorize evaluates the key's policy for one action by the caller.
func (c *call) authorize(k *key, action string, ctx map[string]string) *apiError {
	rq := requestFacts{
		principal: c.principal,
		account:   c.s.account,
		action:    "kms:" + action,
		resource:  c.s.keyARN(k.ID),
		context:   ctx,
	}
	switch action {
	case "ReEncryptFrom":
		rq.reEncryptSameKey = strconv.FormatBool(k.ID == c.reEncrypt.destination)
	case "ReEncryptTo":
		rq.reEncryptSameKey = strconv.FormatBool(k.ID == c.reEncrypt.source)
	}
	if !k.policy.allows(&rq) {
		return errAccessDenied(c.principal, rq.action, rq.resource)
	}
	return nil
}

// useKey resolves a key for a cryptographic operation: found, allowed by
// policy, and enabled, in the order AWS checks them (so a caller without
// permission learns nothing of the key's state).
func (c *call) useKey(ref string, action string, ctx map[string]string) (*key, *apiError) {
	k, err := c.s.findKey(ref, refAny)
	if err != nil {
		return nil, err
	}
	c.keyARN = c.s.keyARN(k.ID)
	if err := c.authorize(k, action, ctx); err != nil {
		return nil, err
	}
	if err := k.usable(); err != nil {
		return nil, err
	}
	return k, nil
}

func (c *call) seal(k *key, plaintext []byte, ctx map[string]string) []byte {
	v := len(k.Backing) - 1
	return sealBlob(k.Backing[v], blobHeader{keyID: k.ID, backing: uint32(v)}, plaintext, ctx)
}

// open authenticates a ciphertext blob for action ("Decrypt" or
// "ReEncryptFrom"). keyRef, when set, must name the key that sealed the blob.
func (c *call) open(blob []byte, keyRef, action string, ctx map[string]string) (*key, []byte, *apiError) {
	if len(blob) == 0 || len(blob) > maxCiphertextBlob {
		return nil, nil, errValidation("CiphertextBlob must be 1 to 6144 bytes")
	}
	h, ok := parseBlobHeader(blob)
	if !ok {
		return nil, nil, errInvalidCiphertext()
	}
	if keyRef != "" {
		named, err := c.s.findKey(keyRef, refAny)
		if err != nil {
			return nil, nil, err
		}
		if named.ID != h.keyID {
			return nil, nil, errorf(codeIncorrectKey, "the key ID in the request does not identify the KMS key that encrypted the ciphertext")
		}
	}
	k, err := c.useKey(h.keyID, action, ctx)
	if err != nil {
		if err.code == codeValidation {
			err = errInvalidCiphertext()
		}
		return nil, nil, err
	}
	if int(h.backing) >= len(k.Backing) {
		return nil, nil, errInvalidCiphertext()
	}
	pt, ok := openBlob(k.Backing[h.backing], blob, ctx)
	if !ok {
		return nil, nil, errInvalidCiphertext()
	}
	return k, pt, nil
}

type encryptInput struct {
	KeyID               string            `json:"KeyId"`
	Plaintext           []byte            `json:"Plaintext"`
	EncryptionContext   map[string]string `json:"EncryptionContext"`
	GrantTokens         []string          `json:"GrantTokens"`
	EncryptionAlgorithm string            `json:"EncryptionAlgorithm"`
}

type cipherOutput struct {
	CiphertextBlob      []byte `json:"CiphertextBlob,omitempty"`
	Plaintext           []byte `json:"Plaintext,omitempty"`
	KeyID               string `json:"KeyId"`
	EncryptionAlgorithm string `json:"EncryptionAlgorithm,omitempty"`
}

func opEncrypt(c *call, body []byte) (any, *apiError) {
	in, err := decode[encryptInput](body)
	if err != nil {
		return nil, err
	}
	c.context = in.EncryptionContext
	if err := firstError(checkContext(in.EncryptionContext), checkGrantTokens(in.GrantTokens), checkAlgorithm(in.EncryptionAlgorithm)); err != nil {
		return nil, err
	}
	if len(in.Plaintext) == 0 || len(in.Plaintext) > maxPlaintextBytes {
		return nil, errValidation("Plaintext must be 1 to 4096 bytes")
	}
	k, err := c.useKey(in.KeyID, "Encrypt", in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	return cipherOutput{
		CiphertextBlob:      c.seal(k, in.Plaintext, in.EncryptionContext),
		KeyID:               c.s.keyARN(k.ID),
		EncryptionAlgorithm: algSymmetric,
	}, nil
}

type decryptInput struct {
	CiphertextBlob      []byte            `json:"CiphertextBlob"`
	EncryptionContext   map[string]string `json:"EncryptionContext"`
	GrantTokens         []string          `json:"GrantTokens"`
	KeyID               string            `json:"KeyId"`
	EncryptionAlgorithm string            `json:"EncryptionAlgorithm"`
}

func opDecrypt(c *call, body []byte) (any, *apiError) {
	in, err := decode[decryptInput](body)
	if err != nil {
		return nil, err
	}
	c.context = in.EncryptionContext
	if err := firstError(checkContext(in.EncryptionContext), checkGrantTokens(in.GrantTokens), checkAlgorithm(in.EncryptionAlgorithm)); err != nil {
		return nil, err
	}
	k, pt, err := c.open(in.CiphertextBlob, in.KeyID, "Decrypt", in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	return cipherOutput{Plaintext: pt, KeyID: c.s.keyARN(k.ID), EncryptionAlgorithm: algSymmetric}, nil
}

type reEncryptInput struct {
	CiphertextBlob                 []byte            `json:"CiphertextBlob"`
	SourceEncryptionContext        map[string]string `json:"SourceEncryptionContext"`
	SourceKeyID                    string            `json:"SourceKeyId"`
	DestinationKeyID               string            `json:"DestinationKeyId"`
	DestinationEncryptionContext   map[string]string `json:"DestinationEncryptionContext"`
	SourceEncryptionAlgorithm      string            `json:"SourceEncryptionAlgorithm"`
	DestinationEncryptionAlgorithm string            `json:"DestinationEncryptionAlgorithm"`
	GrantTokens                    []string          `json:"GrantTokens"`
}

type reEncryptOutput struct {
	CiphertextBlob                 []byte `json:"CiphertextBlob"`
	SourceKeyID                    string `json:"SourceKeyId"`
	KeyID                          string `json:"KeyId"`
	SourceEncryptionAlgorithm      string `json:"SourceEncryptionAlgorithm"`
	DestinationEncryptionAlgorithm string `json:"DestinationEncryptionAlgorithm"`
}

func opReEncrypt(c *call, body []byte) (any, *apiError) {
	in, err := decode[reEncryptInput](body)
	if err != nil {
		return nil, err
	}
	c.context = in.DestinationEncryptionContext
	if err := firstError(checkContext(in.SourceEncryptionContext), checkContext(in.DestinationEncryptionContext),
		checkGrantTokens(in.GrantTokens), checkAlgorithm(in.SourceEncryptionAlgorithm),
		checkAlgorithm(in.DestinationEncryptionAlgorithm)); err != nil {
		return nil, err
	}
	if in.DestinationKeyID == "" {
		return nil, errValidation("DestinationKeyId is required")
	}
	// kms:ReEncryptOnSameKey compares the two keys, so the destination is
	// resolved (not yet authorized) before the source's policy is asked.
	if dst, err := c.s.findKey(in.DestinationKeyID, refAny); err == nil {
		c.reEncrypt.destination = dst.ID
	}
	src, pt, err := c.open(in.CiphertextBlob, in.SourceKeyID, "ReEncryptFrom", in.SourceEncryptionContext)
	if err != nil {
		return nil, err
	}
	c.reEncrypt.source = src.ID
	dst, err := c.useKey(in.DestinationKeyID, "ReEncryptTo", in.DestinationEncryptionContext)
	if err != nil {
		return nil, err
	}
	return reEncryptOutput{
		CiphertextBlob:                 c.seal(dst, pt, in.DestinationEncryptionContext),
		SourceKeyID:                    c.s.keyARN(src.ID),
		KeyID:                          c.s.keyARN(dst.ID),
		SourceEncryptionAlgorithm:      algSymmetric,
		DestinationEncryptionAlgorithm: algSymmetric,
	}, nil
}

type generateDataKeyInput struct {
	KeyID             string            `json:"KeyId"`
	EncryptionContext map[string]string `json:"EncryptionContext"`
	NumberOfBytes     *int              `json:"NumberOfBytes"`
	KeySpec           string            `json:"KeySpec"`
	GrantTokens       []string          `json:"GrantTokens"`
}

// dataKeyLength applies GenerateDataKey's rule: exactly one of KeySpec and
// NumberOfBytes.
func (in *generateDataKeyInput) dataKeyLength() (int, *apiError) {
	switch {
	case in.NumberOfBytes != nil && in.KeySpec != "":
		return 0, errValidation("specify either KeySpec or NumberOfBytes, not both")
	case in.NumberOfBytes != nil:
		if *in.NumberOfBytes < 1 || *in.NumberOfBytes > maxRandomBytes {
			return 0, errValidation("NumberOfBytes must be 1 to 1024")
		}
		return *in.NumberOfBytes, nil
	case in.KeySpec == "AES_256":
		return 32, nil
	case in.KeySpec == "AES_128":
		return 16, nil
	case in.KeySpec == "":
		return 0, errValidation("specify either KeySpec or NumberOfBytes")
	default:
		return 0, errValidation("KeySpec must be AES_256 or AES_128")
	}
}

func generateDataKey(c *call, body []byte, action string) (*cipherOutput, *apiError) {
	in, err := decode[generateDataKeyInput](body)
	if err != nil {
		return nil, err
	}
	c.context = in.EncryptionContext
	if err := firstError(checkContext(in.EncryptionContext), checkGrantTokens(in.GrantTokens)); err != nil {
		return nil, err
	}
	n, err := in.dataKeyLength()
	if err != nil {
		return nil, err
	}
	k, err := c.useKey(in.KeyID, action, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	pt := make([]byte, n)
	rand.Read(pt)
	return &cipherOutput{
		CiphertextBlob: c.seal(k, pt, in.EncryptionContext),
		Plaintext:      pt,
		KeyID:          c.s.keyARN(k.ID),
	}, nil
}

func opGenerateDataKey(c *call, body []byte) (any, *apiError) {
	out, err := generateDataKey(c, body, "GenerateDataKey")
	if err != nil {
		return nil, err
	}
	return out, nil
}

func opGenerateDataKeyWithoutPlaintext(c *call, body []byte) (any, *apiError) {
	out, err := generateDataKey(c, body, "GenerateDataKeyWithoutPlaintext")
	if err != nil {
		return nil, err
	}
	clear(out.Plaintext)
	out.Plaintext = nil
	return out, nil
}

type generateRandomInput struct {
	NumberOfBytes    *int   `json:"NumberOfBytes"`
	CustomKeyStoreID string `json:"CustomKeyStoreId"`
}

func opGenerateRandom(c *call, body []byte) (any, *apiError) {
	in, err := decode[generateRandomInput](body)
	if err != nil {
		return nil, err
	}
	if in.CustomKeyStoreID != "" {
		return nil, errorf(codeUnsupported, "kmsmock has no custom key stores")
	}
	if in.NumberOfBytes == nil || *in.NumberOfBytes < 1 || *in.NumberOfBytes > maxRandomBytes {
		return nil, errValidation("NumberOfBytes must be 1 to 1024")
	}
	out := make([]byte, *in.NumberOfBytes)
	rand.Read(out)
	return struct {
		Plaintext []byte `json:"Plaintext"`
	}{out}, nil
}

func firstError(errs ...*apiError) *apiError {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
