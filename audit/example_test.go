package audit_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/phicrypt/phicrypt/audit"
	"golang.org/x/mod/sumdb/note"
)

// The log's operator keeps the signing key and the hash key; an auditor
// gets the verifier key, checkpoints, records and proofs.
func Example() {
	skey, vkey, err := note.GenerateKey(rand.Reader, "audit.example.org/phicrypt")
	if err != nil {
		log.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		log.Fatal(err)
	}
	hashKey := make([]byte, 32)
	rand.Read(hashKey)
	hasher, err := audit.NewHasher(hashKey)
	if err != nil {
		log.Fatal(err)
	}
	auditLog, err := audit.NewLog(audit.Config{Sink: audit.NewMemorySink(), Signer: signer})
	if err != nil {
		log.Fatal(err)
	}

	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ctx := map[string]string{"tenant": "clinic-7"}
	auditLog.Append(hasher.KeyUse(now, "svc-billing", "Decrypt", "patient-00042", ctx))
	auditLog.Append(hasher.Denial(now, "svc-billing", "destroy", "patient-00042", "not a custodian"))
	signed, err := auditLog.Checkpoint()
	if err != nil {
		log.Fatal(err)
	}

	// The auditor's side.
	verifier, err := audit.NewVerifier(vkey)
	if err != nil {
		log.Fatal(err)
	}
	checkpoint, err := verifier.Open(signed)
	if err != nil {
		log.Fatal(err)
	}
	records, err := auditLog.Records(0, checkpoint.Size)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("whole log:", verifier.VerifyRecords(checkpoint, records))
	proof, err := auditLog.ProveRecord(1, checkpoint.Size)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("record 1:", verifier.VerifyRecord(checkpoint, 1, records[1], proof))
	r, err := audit.ParseRecord(records[1])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Kind, r.Actor, r.Operation, r.Key == hasher.BranchKey("patient-00042"))

	err = verifier.VerifyRecords(checkpoint, records[:1])
	fmt.Println("truncated:", errors.Is(err, audit.ErrTruncated))
	// Output:
	// whole log: <nil>
	// record 1: <nil>
	// denial svc-billing destroy true
	// truncated: true
}

// A log on disk survives restarts and crashes; a later checkpoint is
// proved consistent with an earlier one.
func ExampleOpenFileSink() {
	dir, err := os.MkdirTemp("", "audit")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	skey, vkey, _ := note.GenerateKey(rand.Reader, "audit.example.org/phicrypt")
	signer, _ := note.NewSigner(skey)
	verifier, _ := audit.NewVerifier(vkey)
	hasher, _ := audit.NewHasher([]byte("an example key, 32 bytes or more"))
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

	sink, err := audit.OpenFileSink(dir)
	if err != nil {
		log.Fatal(err)
	}
	auditLog, _ := audit.NewLog(audit.Config{Sink: sink, Signer: signer})
	auditLog.Append(hasher.AdminChange(now, "alice", "rotate", "patient-00042", []string{"alice", "bob"}))
	first, _ := auditLog.Checkpoint()
	sink.Close()

	sink, err = audit.OpenFileSink(dir) // after a restart
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()
	auditLog, _ = audit.NewLog(audit.Config{Sink: sink, Signer: signer})
	auditLog.Append(hasher.Destruction(now, "alice", "destroy", "patient-00042", []string{"alice", "carol"}))
	second, _ := auditLog.Checkpoint()

	older, _ := verifier.Open(first)
	newer, _ := verifier.Open(second)
	proof, err := auditLog.ProveTree(older.Size, newer.Size)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(older.Size, newer.Size, verifier.VerifyConsistency(older, newer, proof))
	// Output: 1 2 <nil>
}

// A Hasher turns a branch key id or an encryption context into a digest:
// the same value gives the same digest, and nothing shows the value.
func ExampleNewHasher() {
	hasher, err := audit.NewHasher([]byte("an example key, 32 bytes or more"))
	if err != nil {
		log.Fatal(err)
	}
	a := hasher.BranchKey("patient-00042")
	b := hasher.BranchKey("patient-00042")
	c := hasher.Context(map[string]string{"tenant": "clinic-7"})
	fmt.Println(a == b, a == hasher.BranchKey("patient-00043"), len(c.String()))
	fmt.Println(hasher)
	// Output:
	// true false 64
	// audit.Hasher{key: redacted}
}

// Two logs under one key that share a prefix and then differ are a fork:
// no consistency proof joins their checkpoints.
func ExampleVerifier_VerifyConsistency() {
	skey, vkey, _ := note.GenerateKey(rand.Reader, "audit.example.org/phicrypt")
	signer, _ := note.NewSigner(skey)
	verifier, _ := audit.NewVerifier(vkey)
	hasher, _ := audit.NewHasher([]byte("an example key, 32 bytes or more"))
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

	honest, _ := audit.NewLog(audit.Config{Sink: audit.NewMemorySink(), Signer: signer})
	forked, _ := audit.NewLog(audit.Config{Sink: audit.NewMemorySink(), Signer: signer})
	for _, l := range []*audit.Log{honest, forked} {
		l.Append(hasher.KeyUse(now, "svc", "Decrypt", "k1", nil))
	}
	honest.Append(hasher.Destruction(now, "alice", "destroy", "k1", []string{"alice", "bob"}))
	forked.Append(hasher.KeyUse(now, "svc", "Decrypt", "k1", nil)) // the destruction, hidden
	forked.Append(hasher.KeyUse(now, "svc", "Decrypt", "k1", nil))

	signedOld, _ := honest.Checkpoint()
	signedNew, _ := forked.Checkpoint()
	older, _ := verifier.Open(signedOld)
	newer, _ := verifier.Open(signedNew)
	proof, _ := forked.ProveTree(older.Size, newer.Size)
	err := verifier.VerifyConsistency(older, newer, proof)
	fmt.Println(errors.Is(err, audit.ErrFork))
	// Output: true
}
