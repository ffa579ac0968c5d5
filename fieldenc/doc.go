// Package fieldenc will hold struct-tag column encryption, deterministic
// fields and blind indexes. Not implemented yet: see the README's status
// table.
package fieldenc
