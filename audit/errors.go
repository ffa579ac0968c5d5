package audit

import "errors"

// Errors a verifier returns, one per kind of tampering, each matched with
// errors.Is. A verifier reports the first evidence it finds: records whose
// content or order was rewritten to hide an insertion or deletion show as
// ErrEdited.
var (
	// ErrEdited: a record's bytes differ from those the checkpoint commits to.
	ErrEdited = errors.New("audit: a record was edited: the records do not hash to the checkpoint's root")
	// ErrDeleted: a record is missing between two others.
	ErrDeleted = errors.New("audit: a record was deleted: the record indexes have a gap")
	// ErrInserted: a record appears that the log did not write.
	ErrInserted = errors.New("audit: a record was inserted: a record index appears twice")
	// ErrReordered: the records are all there but out of order.
	ErrReordered = errors.New("audit: records were reordered: the record indexes are out of order")
	// ErrTruncated: records at the end that the checkpoint covers are missing.
	ErrTruncated = errors.New("audit: the log was truncated: fewer records than the checkpoint covers")
	// ErrNotIncluded: an inclusion proof does not place the record in the tree.
	ErrNotIncluded = errors.New("audit: the record is not included in the checkpoint's tree")
	// ErrFork: two checkpoints are not consistent: the log's history was rewritten.
	ErrFork = errors.New("audit: forked history: the checkpoints are not consistent")
	// ErrBadSignature: a checkpoint is not signed by the log's key.
	ErrBadSignature = errors.New("audit: the checkpoint is not signed by the log's key")
	// ErrMalformedCheckpoint: a signed checkpoint body is not a tlog checkpoint.
	ErrMalformedCheckpoint = errors.New("audit: malformed checkpoint")
	// ErrMalformedRecord: record bytes are not a version 1 record.
	ErrMalformedRecord = errors.New("audit: malformed record")
	// ErrFieldTooLarge: an event field passes its cap; see the package doc.
	ErrFieldTooLarge = errors.New("audit: an event field is over its size cap")
	// ErrCorrupt: a sink's file is damaged before its last record: restore it from a copy.
	ErrCorrupt = errors.New("audit: the log file is corrupt before its last record")
)
