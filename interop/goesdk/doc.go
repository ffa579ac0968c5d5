// Package goesdk proves message interoperability between phicrypt and the AWS
// Encryption SDK for Go (github.com/aws/aws-encryption-sdk/releases/go/
// encryption-sdk, with the AWS Cryptographic Material Providers Library for
// its keyrings), in both directions: raw AES, raw RSA (every OAEP hash both
// ways, PKCS #1 v1.5 from the ESDK to phicrypt only), KMS and hierarchical
// keyrings (the last over one DynamoDB branch key table that the MPL's
// KeyStore and phicrypt's keystore/dynamodb both write), both committing suites, frame
// lengths from 1 byte to 64 KiB, non-ASCII encryption contexts,
// required-context checks and tampered messages. Every message is made by
// one side at test time and read by the other.
//
// It is its own module, so the AWS SDK's large dependency graph never enters
// phicrypt's go.mod; a replace directive points it at the phicrypt checkout
// around it. It holds tests only. scripts/test.sh runs it after the
// JavaScript interop tests.
package goesdk
