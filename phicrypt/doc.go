// Package phicrypt encrypts messages, streams and byte ranges in the AWS
// Encryption SDK message format (version 2), so what it writes is read by the
// ESDK in C, Java, Python, JavaScript, .NET and Rust, and the reverse.
//
// For most uses, make one Encryptor over a KMS keyring and share it:
//
//	kr, _ := keyring.NewKMS(keyring.KMSConfig{Client: kmsClient, Generator: keyARN})
//	enc, _ := phicrypt.New(phicrypt.Config{Keyring: kr})
//	msg, _ := enc.Encrypt(ctx, record, map[string]string{"tenant": "general-hospital"})
//	record, ec, _ := enc.Decrypt(ctx, msg, map[string]string{"tenant": "general-hospital"})
//
// NewWriter and NewReader stream messages of any size in memory bounded by a
// few frames; NewReaderAt reads byte ranges, authenticating the header and
// only the frames a read touches.
//
// The default algorithm suite, AES_256_GCM_HKDF_SHA512_COMMIT_KEY (0x0478),
// commits to its key: a message decrypts to one plaintext only, whatever keys
// an attacker controls. Messages without commitment (format version 1) are
// read only when the commitment policy allows, and never written.
//
// Errors wrap one of a few sentinels (ErrMalformed, ErrAuthentication, ...)
// in a *MessageError that names the stage of failure; they never contain
// plaintext, key bytes or encryption-context values.
package phicrypt
