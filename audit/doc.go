// Package audit is a verifiable, append-only audit log of key use and key
// custody, holding no PHI.
//
// For most use cases: build a [Hasher] from a secret the log's operator
// keeps, open a [FileSink], make a [Log] with [NewLog], [Log.Append] events
// built by the Hasher's constructors ([Hasher.KeyUse], [Hasher.StaleServe],
// [Hasher.AdminChange], [Hasher.Denial], [Hasher.Destruction]) and publish
// [Log.Checkpoint] now and then. An auditor holds only the log's verifier
// key: [NewVerifier], then [Verifier.Open] a checkpoint and check records
// with [Verifier.VerifyRecords], one record with [Verifier.VerifyRecord]
// (an inclusion proof from [Log.ProveRecord]) and that history was only
// appended to with [Verifier.VerifyConsistency] (a proof from
// [Log.ProveTree]).
//
// # Sinks
//
// A [Sink] stores the records and the tree's hashes: [FileSink] (a
// locked directory, fsynced, rotated into sealed segments with
// [FileSink.Rotate]), [PostgresSink] (two tables on the application's
// *sql.DB, shared by several writers), [MemorySink] (tests), or a type of
// your own (see the Sink example). [SlogMirror] wraps any of them and
// copies each record to a *slog.Logger for the operations team; it is a
// convenience, not the log. docs/FORMAT.md §5 lays out every byte.
//
// # The tree and checkpoints
//
// Records are the leaves of a Merkle tree hashed as in RFC 6962 (leaf
// SHA-256(0x00 || record), node SHA-256(0x01 || left || right)), computed
// with golang.org/x/mod/sumdb/tlog. A checkpoint is the C2SP
// tlog-checkpoint body (https://c2sp.org/tlog-checkpoint): the origin line
// (the signer's key name), the tree size in decimal and the root hash in
// standard base64, each ending in a newline, signed as a C2SP signed note
// (https://c2sp.org/signed-note) with the log's Ed25519 key through
// golang.org/x/mod/sumdb/note.
//
// # No PHI
//
// Branch key ids (which may be patient numbers) and encryption contexts
// appear in records only as HMAC-SHA-256 digests under the Hasher's key,
// which the log's operator holds and auditors do not: an auditor can see
// that two records name the same key, not which key. The constructors take
// the raw values and hash them; a [Digest] cannot be made any other way.
// Actor, operation, reason and approver fields are principal names and
// fixed words, never data: callers must not put PHI in them.
//
// # Record encoding, version 1
//
// Every integer is big-endian; every string is valid UTF-8 preceded by its
// length as a uint16.
//
//	version    uint8   1; any other version is refused (ErrMalformedRecord)
//	index      uint64  the record's position in the log, from 0
//	time       int64   Unix nanoseconds, UTC
//	kind       uint8   1 key use, 2 stale-cache serve, 3 administrative change,
//	                   4 denial, 5 destruction; 0 and others are refused
//	flags      uint8   bit 0: a key digest follows; bit 1: a context digest
//	                   follows; other bits must be zero
//	key        [32]    HMAC-SHA-256(k, "phicrypt audit v1 branch key\x00" || id)
//	context    [32]    HMAC-SHA-256(k, "phicrypt audit v1 context\x00" ||
//	                   for each key in byte order: len32(key) key len32(value) value)
//	actor      string  at most 128 bytes
//	operation  string  at most 64 bytes
//	reason     string  at most 256 bytes
//	approvers  uint8   count, at most 16, then each a string of at most 128 bytes
//
// Decoding is strict: trailing bytes, non-canonical flags or an oversized
// field are refused, so one event has exactly one encoding.
//
// The package does not decide what to log: the keyring and custody
// packages (or the application) call Append. It holds no encryption keys
// and grants no access.
package audit
