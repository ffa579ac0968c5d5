// Package kmsmock is an AWS KMS emulator: an http.Handler that speaks the
// KMS JSON 1.1 protocol, so the real aws-sdk-go-v2 KMS client talks to it over
// HTTP exactly as it talks to AWS.
//
// For most tests, start one on loopback and take a client per principal:
//
//	l := kmsmock.StartTest(t, kmsmock.Config{})
//	svc := l.Client("svc-patients") // signs as arn:aws:iam::111122223333:user/svc-patients
//
// What it is for: exercising keyrings, caches and custody tools against the
// behaviour AWS documents and that common emulators get wrong for PHI
// workloads: key states (DisabledException, KMSInvalidStateException),
// deletion that really happens when the server's clock passes the deletion
// date (Server.Advance), rotation with old ciphertexts still readable,
// encryption contexts bound to every ciphertext, and key policies evaluated
// per principal on every call. It also injects faults (SetFault, SetOutage),
// counts calls per operation (Calls) and keeps a CloudTrail-like trail with
// hashed encryption-context values (Trail).
//
// What it is not: a secure key store. Key material lives in process memory
// and, with Config.StateFile, in a file on disk. It supports only symmetric
// (SYMMETRIC_DEFAULT) keys, has no grants (grant tokens are accepted and
// ignored), no custom key stores and no multi-Region keys, and it evaluates
// key policies only (no IAM identity policies): CreateKey, ListKeys,
// ListAliases and GenerateRandom are open to every authenticated principal of
// the account.
//
// Ciphertext blobs are kmsmock's own (see blob.go); they are opaque to
// callers, as AWS's are, and readable only by the server that made them (or
// one restored from its state file).
package kmsmock
