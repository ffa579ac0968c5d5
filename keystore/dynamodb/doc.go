// Package dynamodb is a branch key store (keystore.Store) in a DynamoDB
// table laid out as AWS's branch key store specification says
// (awslabs/aws-encryption-sdk-specification, framework/branch-key-store.md,
// version 0.9.0, hierarchy version 1). A table that AWS's KeyStore (in any
// language) writes serves phicrypt's hierarchical keyring unchanged, and a
// branch key phicrypt creates or rotates here is read by AWS's hierarchical
// keyring.
//
// For most uses: create the table once with CreateTable, then open the store
// on the application's DynamoDB client with New, and hand it to
// keyring.BranchKeys as its Store.
//
// What it is not: it never calls KMS. AWS's layout keeps, besides each
// version's wrapped key, a second wrapped copy of the active version (the
// "branch:ACTIVE" item) and a beacon key (the "beacon:ACTIVE" item); the
// caller makes those with KMS and passes them to CreateWithCopies,
// RotateWithCopy and RewrapWithCopy (see Store for the exact KMS calls).
// Store.Create and Store.Rotate, which cannot carry them, are refused.
//
// What phicrypt keeps beyond AWS's layout (usage counters and the retired
// state) lives in items of its own in the same partition ("phicrypt:version:"
// sort keys), never on AWS's items: AWS's readers bind every attribute of an
// item into the KMS encryption context, so one extra attribute would make
// the item undecryptable for them. docs/FORMAT.md describes every item.
package dynamodb
