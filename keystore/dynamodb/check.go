package dynamodb

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/phicrypt/phicrypt/keystore"
)

// ErrCorrupt: an item in the table is not what the branch key store
// specification (or phicrypt's own items) say it is: a missing or mistyped
// attribute, a size over a cap, or an item that names another branch key.
var ErrCorrupt = errors.New("dynamodb store: a branch key item in the table is malformed")

// errClosed: the store was used after Close.
var errClosed = fmt.Errorf("%w: the DynamoDB store is closed", keystore.ErrInvalid)

// keyRef names a branch key in errors without its id (which may be PHI),
// as every phicrypt store does.
func keyRef(id string) string { return keystore.Fingerprint(id) }

func checkID(id string) error { return keystore.CheckID(id) }

func checkVersionID(v string) error { return keystore.CheckVersion(v) }

func checkKeyVersion(id, version string) error { return keystore.CheckKeyVersion(id, version) }

func checkWrapped(what string, arn string, ciphertext []byte) error {
	if arn == "" || len(arn) > keystore.MaxKMSKeyARNLen || !utf8.ValidString(arn) || strings.ContainsRune(arn, 0) {
		return fmt.Errorf("%w: a KMS key ARN is 1 to %d bytes of UTF-8, without NUL", keystore.ErrInvalid, keystore.MaxKMSKeyARNLen)
	}
	return checkCiphertext(what, ciphertext)
}

func checkCiphertext(what string, ciphertext []byte) error {
	if len(ciphertext) == 0 || len(ciphertext) > keystore.MaxWrappedBranchKeyLen {
		return fmt.Errorf("%w: %s is 1 to %d bytes, not %d", keystore.ErrInvalid, what, keystore.MaxWrappedBranchKeyLen, len(ciphertext))
	}
	return nil
}

// checkNew validates a version to store as the new active one.
func checkNew(v keystore.BranchKeyVersion, activeCopy []byte) error {
	if err := checkKeyVersion(v.BranchKeyID, v.Version); err != nil {
		return err
	}
	if err := checkWrapped("a wrapped branch key", v.KMSKeyARN, v.Ciphertext); err != nil {
		return err
	}
	if y := v.CreatedAt.UTC().Year(); v.CreatedAt.IsZero() || y < 1 || y > 9999 {
		return fmt.Errorf("%w: a branch key version's creation time is between years 1 and 9999", keystore.ErrInvalid)
	}
	if v.State != keystore.StateActive {
		return fmt.Errorf("%w: the version's state is %v, want active", keystore.ErrInvalid, v.State)
	}
	if v.Usage > keystore.MaxUsage {
		return fmt.Errorf("%w: a branch key version's usage is at most %d", keystore.ErrInvalid, uint64(keystore.MaxUsage))
	}
	return checkCiphertext("the ACTIVE copy of a wrapped branch key", activeCopy)
}

// cancelCodes are the per-item reasons of a canceled transaction, or nil
// if err is not one.
func cancelCodes(err error) []string {
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) {
		return nil
	}
	codes := make([]string, len(tce.CancellationReasons))
	for i, r := range tce.CancellationReasons {
		codes[i] = aws.ToString(r.Code)
	}
	if len(codes) == 0 {
		codes = []string{""} // canceled, reasons unknown
	}
	return codes
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// isTransactionConflict: another transaction held one of the items.
func isTransactionConflict(codes []string) bool {
	for _, c := range codes {
		if c == "TransactionConflict" {
			return true
		}
	}
	return false
}

// ddbError wraps a DynamoDB failure for the caller. DynamoDB's messages may
// quote the request (a key, an expression value), so an API error is shown
// by its code alone; transport and context errors are kept whole, and
// errors.Is sees through to them.
type ddbError struct {
	step string
	err  error
}

func (e *ddbError) Error() string {
	var api smithy.APIError
	if errors.As(e.err, &api) {
		return "dynamodb store: " + e.step + ": DynamoDB error " + api.ErrorCode()
	}
	return "dynamodb store: " + e.step + ": " + e.err.Error()
}

func (e *ddbError) Unwrap() error { return e.err }

func wrap(step string, err error) error { return &ddbError{step: step, err: err} }
