package kmsmock

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// sigV4 is the parsed Authorization header of a SigV4-signed request:
//
//	AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/kms/aws4_request,
//	    SignedHeaders=host;x-amz-date;x-amz-target, Signature=<hex>
type sigV4 struct {
	accessKey     string
	date          string
	region        string
	service       string
	signedHeaders []string
	signature     string
}

const sigV4Algorithm = "AWS4-HMAC-SHA256"

func parseSigV4(header string) (sigV4, bool) {
	rest, ok := strings.CutPrefix(header, sigV4Algorithm+" ")
	if !ok {
		return sigV4{}, false
	}
	var v sigV4
	var scope string
	for field := range strings.SplitSeq(rest, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(field), "=")
		if !ok {
			return sigV4{}, false
		}
		switch name {
		case "Credential":
			scope = value
		case "SignedHeaders":
			v.signedHeaders = strings.Split(value, ";")
		case "Signature":
			v.signature = value
		}
	}
	parts := strings.Split(scope, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" || parts[0] == "" || v.signature == "" || len(v.signedHeaders) == 0 {
		return sigV4{}, false
	}
	v.accessKey, v.date, v.region, v.service = parts[0], parts[1], parts[2], parts[3]
	return v, true
}

// authenticate names the caller. KMS refuses unsigned requests; the access
// key id in the credential scope becomes the IAM user
// arn:aws:iam::ACCOUNT:user/<access key id>. Signing-time skew is not checked,
// because tests advance the server's clock far past the client's.
func (s *Server) authenticate(r *http.Request) (string, *apiError) {
	header := r.Header.Get("Authorization")
	if header == "" {
		return "", errorf(codeMissingAuth, "Missing Authentication Token")
	}
	sig, ok := parseSigV4(header)
	if !ok {
		return "", errorf(codeIncompleteSig, "the Authorization header is not a well-formed AWS4-HMAC-SHA256 signature")
	}
	if sig.service != "kms" || sig.region != s.region {
		return "", errorf(codeInvalidSignature, "Credential should be scoped to service 'kms' in region '"+s.region+"'")
	}
	if !validAccessKey(sig.accessKey) {
		return "", errorf(codeUnrecognized, "The security token included in the request is invalid.")
	}
	if s.credentials != nil {
		secret, known := s.credentials[sig.accessKey]
		if !known {
			return "", errorf(codeUnrecognized, "The security token included in the request is invalid.")
		}
		if !verifySigV4(r, sig, secret) {
			return "", errorf(codeInvalidSignature, "The request signature we calculated does not match the signature you provided.")
		}
	}
	return "arn:aws:iam::" + s.account + ":user/" + sig.accessKey, nil
}

// validAccessKey keeps principal names printable and bounded.
func validAccessKey(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// verifySigV4 recomputes the signature with the SDK's own signer over the
// headers the client says it signed, and compares in constant time. It
// reads the body (bounded) and puts it back for the handler.
func verifySigV4(r *http.Request, sig sigV4, secret string) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	if err != nil || len(body) > maxRequestBytes {
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	signedAt, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || !slices.Contains(sig.signedHeaders, "host") {
		return false
	}
	clone, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	if err != nil {
		return false
	}
	clone.Host = r.Host
	for _, h := range sig.signedHeaders {
		switch h {
		case "host":
		case "content-length":
			clone.ContentLength = r.ContentLength
		default:
			for _, v := range r.Header.Values(h) {
				clone.Header.Add(h, v)
			}
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: sig.accessKey, SecretAccessKey: secret, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	err = v4.NewSigner().SignHTTP(context.Background(), creds, clone, hex.EncodeToString(sum[:]), sig.service, sig.region, signedAt)
	if err != nil {
		return false
	}
	want, ok := parseSigV4(clone.Header.Get("Authorization"))
	return ok && subtle.ConstantTimeCompare([]byte(want.signature), []byte(sig.signature)) == 1
}
