// Package s3crypt stores objects in Amazon S3 (or any S3-compatible store)
// encrypted on the client, as AWS Encryption SDK messages written by
// phicrypt.
//
// Put streams a message into a multipart upload through the aws-sdk-go-v2
// transfer manager: frames are sealed as the body is read, memory stays
// bounded by the part size times the concurrency, and nothing is written to
// temporary files. The object's body is the whole message, header first, so a
// downloaded or copied object is still a message that the phicrypt CLI and
// the AWS Encryption SDKs decrypt. Object metadata records only what a
// reader needs to plan ranged reads (format, frame length, header length,
// plaintext length); none of it is trusted, since the header authenticates
// the message and every frame authenticates its place in it.
//
// Get decrypts as it reads. GetRange and Object (an io.ReaderAt) read a
// plaintext range with one ranged GET of exactly the frames it touches,
// authenticating each of them; the authenticated header is cached per
// object and ETag, so later reads of the same object fetch no header. Every
// ranged GET carries If-Match with the ETag the header came from, so bytes
// of another version of the object are never mixed in.
//
// Objects written by the Amazon S3 Encryption Client (its V2 and V3 formats,
// KMS-wrapped data keys, AES-GCM content) are read when the Client is given
// a LegacyConfig, and Migrate rewrites one as a phicrypt object. Rewrap
// moves an object's data key to another keyring without decrypting its body.
//
// Errors name the bucket and key; they never contain plaintext, keys or
// encryption-context values.
package s3crypt
