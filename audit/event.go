package audit

import (
	"slices"
	"time"
)

// Kind says what an event records. The zero Kind is not valid.
type Kind uint8

const (
	KindKeyUse      Kind = 1 // a key use that reached KMS (or another key provider)
	KindStaleServe  Kind = 2 // a cached key served past its time to live
	KindAdminChange Kind = 3 // an administrative change, with its approvers
	KindDenial      Kind = 4 // an operation refused
	KindDestruction Kind = 5 // a key or key version destroyed
)

var kindNames = map[Kind]string{
	KindKeyUse: "key-use", KindStaleServe: "stale-serve", KindAdminChange: "admin-change",
	KindDenial: "denial", KindDestruction: "destruction",
}

// String is the kind's name, as it appears in JSON.
func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return "invalid"
}

// MarshalText encodes the kind by name.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Caps on event fields, in bytes (approvers: a count).
const (
	MaxActor     = 128
	MaxOperation = 64
	MaxReason    = 256
	MaxApprovers = 16
)

// Event is one thing that happened. Build it with a Hasher's constructor,
// which hashes the branch key id and encryption context; Key and Context
// can hold nothing else; a constructor given an empty branch key id
// leaves Key absent. Actor, Operation, Reason and Approvers are
// principal names and fixed words: never data.
type Event struct {
	Time      time.Time
	Kind      Kind
	Actor     string   // the principal who acted
	Operation string   // what it did: "Decrypt", "rotate", "destroy", ...
	Key       Digest   // the branch key id's digest, if any
	Context   Digest   // the encryption context's digest, if any
	Reason    string   // why a denial or change happened, in words
	Approvers []string // the custodians whose approvals an admin change carried
}

// keyOf is the digest of a branch key id, or none for "" (an event about
// no one key).
func (h *Hasher) keyOf(branchKeyID string) Digest {
	if branchKeyID == "" {
		return Digest{}
	}
	return h.BranchKey(branchKeyID)
}

// KeyUse records operation (GenerateDataKey, Decrypt, ...) reaching KMS
// for a branch key under an encryption context.
func (h *Hasher) KeyUse(at time.Time, actor, operation, branchKeyID string, ctx map[string]string) Event {
	return Event{Time: at, Kind: KindKeyUse, Actor: actor, Operation: operation,
		Key: h.keyOf(branchKeyID), Context: h.Context(ctx)}
}

// StaleServe records a cached branch key served past its time to live
// because the store could not be read (reason says why).
func (h *Hasher) StaleServe(at time.Time, actor, branchKeyID, reason string) Event {
	return Event{Time: at, Kind: KindStaleServe, Actor: actor, Operation: "serve-stale",
		Key: h.keyOf(branchKeyID), Reason: reason}
}

// AdminChange records a change (create, rotate, retire, policy, ...) to a
// branch key and the custodians who approved it.
func (h *Hasher) AdminChange(at time.Time, actor, change, branchKeyID string, approvers []string) Event {
	return Event{Time: at, Kind: KindAdminChange, Actor: actor, Operation: change,
		Key: h.keyOf(branchKeyID), Approvers: slices.Clone(approvers)}
}

// Denial records operation refused to actor on a branch key, and why.
func (h *Hasher) Denial(at time.Time, actor, operation, branchKeyID, reason string) Event {
	return Event{Time: at, Kind: KindDenial, Actor: actor, Operation: operation,
		Key: h.keyOf(branchKeyID), Reason: reason}
}

// Destruction records a branch key (or one version, say which in
// operation) destroyed, and the custodians who approved it.
func (h *Hasher) Destruction(at time.Time, actor, operation, branchKeyID string, approvers []string) Event {
	return Event{Time: at, Kind: KindDestruction, Actor: actor, Operation: operation,
		Key: h.keyOf(branchKeyID), Approvers: slices.Clone(approvers)}
}
