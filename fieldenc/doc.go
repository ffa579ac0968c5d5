// Package fieldenc seals the PHI columns of database rows: names, dates of
// birth, record numbers, notes. Mark struct fields with `phi` tags, and a
// Codec seals them on the way to the database and opens them on the way
// back, with equality search through deterministic fields and blind indexes
// that keeps working across key rotation.
//
// For most uses: make a Table over a hierarchical keyring (one branch key
// for the application, in the key store), a Codec for the row type, and
// declare every PHI field as a Sealed[T] (or *Sealed[T]). A Sealed value
// redacts itself in fmt, JSON and slog, and refuses to be written to a
// database while it holds a plaintext that was never sealed; a plain
// string or []byte tagged encrypt is refused when the Codec is made.
//
//	type Patient struct {
//		ID       string                     `phi:"rowid"`
//		Name     fieldenc.Sealed[string]    `phi:"encrypt"`
//		SSN      fieldenc.Sealed[string]    `phi:"encrypt,blindindex=ssn_bidx:24,normalize=digits"`
//		SSNIndex []byte                     `phi:"index=ssn_bidx"`
//		MRN      fieldenc.Sealed[string]    `phi:"encrypt,deterministic"`
//		DOB      fieldenc.Sealed[time.Time] `phi:"encrypt"`
//	}
//
//	table, err := fieldenc.New(fieldenc.Config{Keys: hierarchical, BranchKeyID: "patients-app", Table: "patients"})
//	codec, err := fieldenc.NewCodec[Patient](table)
//	err = codec.Seal(ctx, &p)                                    // all or nothing; then INSERT p's fields
//	ids, err := codec.IndexValues(ctx, "ssn_bidx", "123-45-6789") // WHERE ssn_bidx IN (ids...)
//	err = codec.Open(ctx, &p)                                    // after SELECT
//
// A loop sealing many rows can reuse one buffer for the sealed forms, as
// with cipher.AEAD.Seal, and allocate nothing per row: buf, err =
// codec.SealAppend(ctx, buf[:0], &p), then INSERT p before the next row.
//
// Every value is AES-256-GCM under a key derived (HKDF-SHA-256) from the
// branch key version, the table and the column, with a random nonce; the
// AAD binds the format version, the key reference, the table, the column
// and the row identity (the rowid field), so a value copied to another row
// or column fails with ErrWrongField. Deterministic fields use AES-SIV
// (RFC 5297), equal only within one column and version, and are not bound
// to the row (that is what makes them searchable). Blind indexes are
// HMAC-SHA-256 truncated to the declared bits (RecommendIndexBits sizes
// them). docs/FORMAT.md gives the format byte by byte.
//
// Rotation needs no downtime: while several branch key versions are live,
// IndexValues and EqualValues return the search values under each, a
// Reencrypt job moves rows to the active version in resumable batches, and
// then the old version retires. Every encryption is counted against its
// version in the key store; the hierarchical keyring rotates the branch key
// when its MaxUsesPerVersion is reached, which must stay at or below 2^32
// since nonces are random.
//
// Crypto-shredding: once a custodian destroys a branch key version
// (custody.BranchKeys.DestroyVersion), Open of a value sealed under it
// fails with keyring.ErrKeyDestroyed (errors.Is; not ErrWrongField or
// ErrUnknownKey), and IndexValues and EqualValues leave it out, so rows
// sealed under it stop matching any search. Once the whole key is
// destroyed (DestroyKey; one branch key per patient makes that "forget
// this patient"), Seal, Open, IndexValues and EqualValues all fail with
// keyring.ErrKeyDestroyed. A process sees the destroy within the keyring's
// CacheTTL, or at once after keyring.Hierarchical.Forget and Table.Forget.
//
// What it is not: a way to search ranges or substrings of encrypted data
// (neither is safe with these constructions), or a document store: seal
// whole documents and objects with the phicrypt package. A plaintext taken
// out of a Sealed with Get is as visible as any string. Go cannot promise
// that key schedules inside crypto/cipher values are erased when dropped;
// derived key bytes are cleared after use.
package fieldenc
