// Package custody is the key custodian's side of phicrypt. A service
// imports phicrypt, keyring and fieldenc, none of which imports custody, so
// separation of duty shows in the import graph: a service binary cannot
// call these.
//
// For most uses: install a signed Policy per key or key group (its
// custodians, services and auditors, and the quorum M-of-N per kind of
// change) through an Authority over the key store; custodians then propose
// changes (Authority.Propose), approve them with their Ed25519 keys
// (Signer.Approve), and an Executor applies a change only with enough
// valid, distinct, unexpired approvals from custodians of the policy in
// force (Executor.Apply), recording the change, its approvers, every
// refusal and every destruction in the audit log. The change request and
// policy encodings are in docs/FORMAT.md.
//
// The operations themselves: creating branch keys, rotating them on demand
// or by age and use (RotateDue), retiring old versions
// (SetMinDecryptionVersion), crypto-shredding a version or a whole key
// (DestroyVersion, DestroyKey), and moving wrapped keys under another KMS
// key without touching data (Rewrap). The BranchKeys methods are ungated:
// use them for set-up and jobs the policy allows to one custodian, and the
// Executor for everything a quorum must approve.
//
// Break glass: SplitEscrowKey splits a new HPKE escrow key into one share
// per custodian at once, and AuthorizeRecovery, given a quorum-approved
// recover request (ActionRecover) and M shares, reassembles it in memory.
// That key unwraps the data keys services also wrapped to the escrow public
// key, which is what rewrapping them to a new KMS key without producing
// plaintext needs; it is the one unwrapping key custody hands out, and only
// through the quorum (keyctl recover; docs/OPERATIONS.md has the runbook).
// RecoverBranchKeys uses it to open the escrow copies of branch key
// versions, when their KMS key is lost, and has KMS Encrypt each under a
// new key at once.
//
// Otherwise nothing here unwraps a branch key or decrypts data: a custodian's KMS
// principal needs GenerateDataKeyWithoutPlaintext and ReEncrypt, and should
// be denied Decrypt. GenerateKMSKeyPolicy writes a KMS key policy that
// makes KMS enforce the same split, and CheckKMSKeyPolicy and CheckKMSKey
// report where a key's policy does not.
package custody
