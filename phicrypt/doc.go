// Package phicrypt will hold the encryptor: the AWS Encryption SDK message
// format (version 2, committing suites), framed streaming, ranged reads and
// the data-key cache. Not implemented yet: see the README's status table.
package phicrypt
