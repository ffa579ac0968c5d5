package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/phicrypt/phicrypt/audit"
)

// The audit log lives in a directory (file:DIR, an audit.FileSink) or in
// PostgreSQL (postgres:URL, an audit.PostgresSink shared by every
// custodian). After each record it appends, keyctl writes the log's signed
// checkpoint to the checkpoint file; an auditor verifies the records
// against it (or against a checkpoint kept from earlier).
const (
	// auditLockFile, in a file log's directory, queues keyctl processes:
	// audit.FileSink refuses a second opener rather than waiting.
	auditLockFile = ".keyctl-lock"
	// defaultAuditTable is the PostgreSQL table of a postgres: log.
	defaultAuditTable = "keyctl_audit"
	// appendRetries bounds the appends lost to other writers of a shared
	// (PostgreSQL) log before keyctl gives up.
	appendRetries = 8
)

// sinkLocation splits an audit log location: file:DIR (or a bare
// directory) or postgres:URL (or a postgres:// URL as is).
func sinkLocation(loc string) (kind, where string, err error) {
	switch {
	case strings.HasPrefix(loc, "postgres://"), strings.HasPrefix(loc, "postgresql://"):
		return "postgres", loc, nil
	case strings.HasPrefix(loc, "postgres:"):
		return "postgres", strings.TrimPrefix(loc, "postgres:"), nil
	case strings.HasPrefix(loc, "file:"):
		loc = strings.TrimPrefix(loc, "file:")
	}
	if loc == "" {
		return "", "", usagef("no audit log location: want file:DIR or postgres:URL")
	}
	return "file", loc, nil
}

// openSink opens the sink at loc; close releases it (and, for a file log,
// the queue lock).
func openSink(ctx context.Context, loc, table string, wait bool) (audit.Sink, func() error, error) {
	kind, where, err := sinkLocation(loc)
	if err != nil {
		return nil, nil, err
	}
	if kind == "postgres" {
		if table == "" {
			table = defaultAuditTable
		}
		db, err := sql.Open("pgx", where)
		if err != nil {
			return nil, nil, fmt.Errorf("opening the audit log's database: %w", err)
		}
		sink, err := audit.NewPostgresSink(ctx, db, table)
		if err != nil {
			db.Close()
			return nil, nil, fmt.Errorf("opening the audit log: %w", err)
		}
		return sink, db.Close, nil
	}
	if err := os.MkdirAll(where, 0o700); err != nil {
		return nil, nil, err
	}
	unlock := func() error { return nil }
	if l, err := lockFile(filepath.Join(where, auditLockFile)); err == nil {
		unlock = l
	} else if wait {
		return nil, nil, fmt.Errorf("locking the audit log: %w", err)
	} // an auditor who may only read the directory goes on without it
	sink, err := audit.OpenFileSink(where)
	if err != nil {
		unlock()
		return nil, nil, fmt.Errorf("opening the audit log: %w", err)
	}
	return sink, func() error { return errors.Join(sink.Close(), unlock()) }, nil
}

// auditLog is the configured audit log, open for appending.
type auditLog struct {
	checkpoint string
	log        *audit.Log
	hasher     *audit.Hasher
	close      func() error
}

// makeAuditKeys creates the log's signer, verifier and hash keys for a log
// named name, refusing to replace existing ones.
func makeAuditKeys(c *auditConfig, name string) error {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return fmt.Errorf("making the audit log's signing key: %w", err)
	}
	hashKey := make([]byte, audit.MinHashKeySize)
	if _, err := rand.Read(hashKey); err != nil {
		return err
	}
	if err := writeNewFile(c.SignerKeyFile, []byte(skey+"\n"), 0o600); err != nil {
		return err
	}
	if err := writeNewFile(c.VerifierKeyFile, []byte(vkey+"\n"), 0o644); err != nil {
		return err
	}
	return writeNewFile(c.HashKeyFile, []byte(base64.StdEncoding.EncodeToString(hashKey)+"\n"), 0o600)
}

// openAuditLog opens the log for appending.
func openAuditLog(ctx context.Context, c auditConfig) (*auditLog, error) {
	signer, err := readSigner(c.SignerKeyFile)
	if err != nil {
		return nil, err
	}
	hasher, err := readHasher(c.HashKeyFile)
	if err != nil {
		return nil, err
	}
	sink, closeSink, err := openSink(ctx, c.Log, c.Table, true)
	if err != nil {
		return nil, err
	}
	log, err := audit.NewLog(audit.Config{Sink: sink, Signer: signer})
	if err != nil {
		closeSink()
		return nil, fmt.Errorf("opening the audit log: %w", err)
	}
	return &auditLog{checkpoint: c.CheckpointFile, log: log, hasher: hasher, close: closeSink}, nil
}

// Append adds e to the log (again, if another writer of a shared log took
// its index) and publishes a new signed checkpoint. Its signature is that
// of custody.AuditLog.
func (l *auditLog) Append(e audit.Event) (int64, error) {
	for i := 0; ; i++ {
		n, err := l.log.Append(e)
		if errors.Is(err, audit.ErrConflict) && i < appendRetries {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("writing the audit event: %w", err)
		}
		return n, l.publish()
	}
}

// record appends e, for callers that need no index.
func (l *auditLog) record(e audit.Event) error {
	_, err := l.Append(e)
	return err
}

// publish writes the signed checkpoint of the whole log.
func (l *auditLog) publish() error {
	cp, err := l.log.Checkpoint()
	if err != nil {
		return fmt.Errorf("signing the audit checkpoint: %w", err)
	}
	return writeFileAtomic(l.checkpoint, cp, 0o644)
}

// Close closes the sink.
func (l *auditLog) Close() error { return l.close() }

func readSigner(path string) (note.Signer, error) {
	if err := checkPrivate(path); err != nil {
		return nil, fmt.Errorf("the audit signer key: %w", err)
	}
	b, err := readSmallFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the audit signer key: %w", err)
	}
	s, err := note.NewSigner(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("the audit signer key %s is not a note signer key", path)
	}
	return s, nil
}

func readHasher(path string) (*audit.Hasher, error) {
	if err := checkPrivate(path); err != nil {
		return nil, fmt.Errorf("the audit hash key: %w", err)
	}
	b, err := readSmallFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the audit hash key: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("the audit hash key %s is not base64", path)
	}
	return audit.NewHasher(key)
}

// readVerifierKey reads the log's verifier key.
func readVerifierKey(path string) (string, error) {
	b, err := readSmallFile(path)
	if err != nil {
		return "", fmt.Errorf("reading the audit verifier key: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
