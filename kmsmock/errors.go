package kmsmock

import "net/http"

// apiError is an error in the shape AWS KMS returns: an HTTP status, a
// "__type" naming the exception, and a message. Messages name keys and
// operations but never echo plaintext, key material or encryption-context
// values.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

// The exception names below are the ones AWS KMS documents; the SDK maps each
// "__type" to its typed error (for example *types.DisabledException).
const (
	codeAccessDenied      = "AccessDeniedException"
	codeAlreadyExists     = "AlreadyExistsException"
	codeDisabled          = "DisabledException"
	codeIncorrectKey      = "IncorrectKeyException"
	codeNotAuthorized     = "NotAuthorizedException"
	codeInvalidArn        = "InvalidArnException"
	codeInvalidCiphertext = "InvalidCiphertextException"
	codeInvalidKeyUsage   = "InvalidKeyUsageException"
	codeInvalidMarker     = "InvalidMarkerException"
	codeInternal          = "KMSInternalException"
	codeInvalidState      = "KMSInvalidStateException"
	codeLimitExceeded     = "LimitExceededException"
	codeMalformedPolicy   = "MalformedPolicyDocumentException"
	codeNotFound          = "NotFoundException"
	codeUnsupported       = "UnsupportedOperationException"
	codeValidation        = "ValidationException"
	codeThrottling        = "ThrottlingException"
	codeUnknownOperation  = "UnknownOperationException"
	codeSerialization     = "SerializationException"
	codeMissingAuth       = "MissingAuthenticationTokenException"
	codeIncompleteSig     = "IncompleteSignatureException"
	codeInvalidSignature  = "InvalidSignatureException"
	codeUnrecognized      = "UnrecognizedClientException"
)

func errorf(code, msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, msg: msg}
}

func errValidation(msg string) *apiError { return errorf(codeValidation, msg) }

func errNotFound(msg string) *apiError { return errorf(codeNotFound, msg) }

func errInternal() *apiError {
	return &apiError{status: http.StatusInternalServerError, code: codeInternal, msg: "internal error; retry the request"}
}

func errThrottled() *apiError {
	return errorf(codeThrottling, "Rate exceeded")
}

func errAccessDenied(principal, action, keyARN string) *apiError {
	return errorf(codeAccessDenied, "User: "+principal+" is not authorized to perform: "+action+
		" on resource: "+keyARN+" because no resource-based policy allows the "+action+" action")
}

func errInvalidCiphertext() *apiError {
	// One opaque message for every reason a blob does not open: a wrong
	// context, a tampered blob and a foreign blob look the same to the caller.
	return errorf(codeInvalidCiphertext, "the ciphertext is invalid or the encryption context does not match")
}
