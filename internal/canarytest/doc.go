// Package canarytest holds only tests: the canary test that walks every
// exported type of every public package of the module, builds a value of it
// carrying known secrets (plaintext, key bytes, a branch key id, encryption
// context keys and values), formats it every way a program might print or
// log it (fmt verbs, encoding/json, log/slog), and fails if a secret shows.
//
// A new exported type makes the test fail until it has an entry in the
// table in canary_test.go.
package canarytest
