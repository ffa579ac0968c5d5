// Package interop proves message interoperability with the AWS Encryption SDK
// for JavaScript, in both directions. Its tests carry the build tag
// "interop" and run in the full suite (scripts/test.sh), after
// `npm ci --prefix interop/js` has installed the pinned ESDK. Every vector is
// made by the peer at test time.
package interop
