package blind

import "errors"

// Errors returned by this package, wrapped with context where there is some
// to add; test them with [errors.Is]. None of them, and no error this
// package returns, contains a value or key bytes.
var (
	// ErrKeySize: a key is not [KeySize] bytes. Derive one per index or per
	// purpose with HKDF-SHA-256.
	ErrKeySize = errors.New("blind: key must be 32 bytes; derive one per index or purpose")
	// ErrBits: an index width outside 1..256 bits.
	ErrBits = errors.New("blind: index width must be 1..256 bits; see Recommend")
	// ErrValueTooLarge: a value longer than [MaxValueLen] bytes.
	ErrValueTooLarge = errors.New("blind: value longer than 64 KiB; index a shorter normalized form")
	// ErrTooManyValues: a compound index over more than [MaxCompoundValues]
	// values.
	ErrTooManyValues = errors.New("blind: more than 16 values in a compound index; split it")
	// ErrNoValues: a compound index over no values.
	ErrNoValues = errors.New("blind: compound index over no values; pass at least one")
	// ErrUnknownNormalizer: a normalizer spec names no known normalizer.
	ErrUnknownNormalizer = errors.New("blind: unknown normalizer; use lower, trim, digits or last4, joined with +")
	// ErrDomainTooSmall: too few distinct values for any index width to
	// both hide them and keep false positives bounded.
	ErrDomainTooSmall = errors.New("blind: too few distinct values for a blind index; every width either identifies values or matches most rows")
)
