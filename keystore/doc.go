// Package keystore keeps branch keys: the Store interface, branch key
// versions and their states, usage counters, the embedded file store and
// the backup format.
//
// For most uses, open the file store, a directory safe for several
// processes on one host:
//
//	store, err := keystore.OpenFileStore("/var/lib/myservice/branch-keys")
//
// and give it to keyring.NewBranchKeys. Fleets of service instances share
// a PostgreSQL store (keystore/postgres) on the application's own
// database; single nodes may prefer SQLite (keystore/sqlite). Those
// subpackages link no database driver: the program imports the one it
// uses, so importing keystore, keyring, phicrypt or fieldenc links none.
// keystore/storetest is the conformance suite every store passes, exported
// so that a store of your own can run it.
//
// Every store of this module also keeps records (Records): small values
// the custodian's tools keep beside the branch keys, such as signed
// policies and the ids of applied change requests, each changed only by
// compare-and-swap on its revision.
//
// Crypto-shredding: Store.Destroy and DestroyKey erase a version's (or a
// whole key's) wrapped material and keep a tombstone (StateDestroyed, no
// Ciphertext), so that data under it fails as destroyed, not as unknown;
// each store's documentation says what it overwrites and what it cannot
// reach, and docs/OPERATIONS.md "Crypto-shredding" gathers it.
//
// A store never sees plaintext key material (only what KMS wrapped), and
// never the KMS: it is storage with conditional writes. It is not for
// encrypting data; keyring and phicrypt are.
package keystore
