// Package custody is the key custodian's side of phicrypt: creating branch
// keys, rotating them on demand or by policy (RotateDue), retiring old
// versions (SetMinDecryptionVersion), and moving wrapped keys under another
// KMS key without touching data (Rewrap). A service imports phicrypt,
// keyring and fieldenc, none of which imports custody, so separation of
// duty shows in the import graph: a service binary cannot call these.
//
// Nothing here unwraps a branch key or decrypts data: a custodian's KMS
// principal needs GenerateDataKeyWithoutPlaintext and ReEncrypt, and should
// be denied Decrypt.
package custody
