package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/phicrypt/phicrypt/audit"
)

// The audit directory holds the log (audit.FileSink's two files), a lock
// file and checkpoint: the latest signed checkpoint, rewritten after every
// record keyctl appends, so an auditor verifies the records against it.
const (
	checkpointFile = "checkpoint"
	auditLockFile  = ".lock"
)

// auditLog is the configured audit log, held under its directory's lock
// (audit.FileSink wants one process at a time).
type auditLog struct {
	dir    string
	sink   *audit.FileSink
	log    *audit.Log
	hasher *audit.Hasher
	unlock func() error
}

// makeAuditKeys creates the log's signer, verifier and hash keys under
// dir for a log named name, refusing to replace existing ones.
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
func openAuditLog(c auditConfig) (*auditLog, error) {
	if c.Dir == "" {
		return nil, usagef("no audit log in the configuration (audit.dir)")
	}
	signer, err := readSigner(c.SignerKeyFile)
	if err != nil {
		return nil, err
	}
	hasher, err := readHasher(c.HashKeyFile)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, err
	}
	unlock, err := lockFile(filepath.Join(c.Dir, auditLockFile))
	if err != nil {
		return nil, fmt.Errorf("locking the audit log: %w", err)
	}
	sink, err := audit.OpenFileSink(c.Dir)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("opening the audit log: %w", err)
	}
	log, err := audit.NewLog(audit.Config{Sink: sink, Signer: signer})
	if err != nil {
		sink.Close()
		unlock()
		return nil, fmt.Errorf("opening the audit log: %w", err)
	}
	return &auditLog{dir: c.Dir, sink: sink, log: log, hasher: hasher, unlock: unlock}, nil
}

// Append adds e to the log and publishes a new signed checkpoint.
func (l *auditLog) Append(e audit.Event) error {
	if _, err := l.log.Append(e); err != nil {
		return fmt.Errorf("writing the audit event: %w", err)
	}
	return l.publish()
}

// publish writes the signed checkpoint of the whole log.
func (l *auditLog) publish() error {
	cp, err := l.log.Checkpoint()
	if err != nil {
		return fmt.Errorf("signing the audit checkpoint: %w", err)
	}
	return writeFileAtomic(filepath.Join(l.dir, checkpointFile), cp, 0o644)
}

// Close closes the sink and releases the lock.
func (l *auditLog) Close() error {
	return errors.Join(l.sink.Close(), l.unlock())
}

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
