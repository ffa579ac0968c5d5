// Package crosscheck holds only tests: internal/shamir against the shamir
// package of github.com/getsops/sops/v3 (itself HashiCorp Vault's), an
// independent implementation. It is a module of its own so that sops never
// enters the library's dependency graph.
package crosscheck
