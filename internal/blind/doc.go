// Package blind holds the building blocks for searchable encryption of PHI
// fields that the public fieldenc package exposes: blind indexes, the
// normalizers applied to a value before it is indexed, a sizing rule for an
// index's width, and purpose-scoped pseudonyms.
//
// For most use cases, use an [Index]: derive a 32-byte key per index (the
// caller's job, from the branch key with HKDF), pick its width with
// [Recommend], normalize the value (for example with [ParseNormalizer] and
// "trim+lower"), and store Sum's output next to the ciphertext. To find a
// row, compute the same Sum over the query value and look it up; then decrypt
// the candidates and discard the false positives that truncation lets
// through.
//
//	idx, err := blind.NewIndex(key, 16)
//	norm, err := blind.ParseNormalizer("trim+lower")
//	v := norm(buf[:0], email)
//	term, err := idx.Sum(term[:0], v)
//
// A blind index is truncated HMAC-SHA-256 under the index's key. It is what
// an equality search needs and no more: equal normalized values give equal
// index values, so anyone who reads the index learns which rows share a
// value (within a table) and, with enough rows, the value's frequency. The
// truncation is deliberate: an index narrow enough that each index value is
// shared by a few real values is not a unique identifier (see [Recommend]).
// A [Pseudonymizer] is the opposite trade-off: a wide, stable token meant to
// link records within one purpose.
//
// What this package is not: it does not encrypt (fieldenc does), it does not
// derive keys (internal/kdf does), it does not support range or prefix
// queries, and nothing in it is reversible.
//
// Hot paths (Sum, SumCompound, Token, the normalizers) append to a
// caller-owned dst, allocate nothing when dst has room, and are safe for
// concurrent use. Errors never contain values or key bytes.
package blind
