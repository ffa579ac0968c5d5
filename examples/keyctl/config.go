package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// configVersion is the only version of the configuration file this keyctl
// reads.
const configVersion = 1

// maxConfigBytes caps what keyctl reads of a configuration, identity or key
// file.
const maxConfigBytes = 1 << 20

// config is the configuration file keyctl init writes (JSON, mode 0600).
// Every path in it is absolute. Flags and environment variables override
// the store, the KMS key, region and endpoint, and the identity.
type config struct {
	Version int `json:"version"`
	// Store is where branch keys live: file:DIR, sqlite:PATH,
	// postgres:URL (or a postgres:// URL as is) or dynamodb:TABLE.
	Store string `json:"store"`
	// LogicalStoreName is bound into every wrapped version's encryption
	// context; the services' keyrings must use the same.
	LogicalStoreName string `json:"logical_store_name"`
	// KMSKeyARN wraps new branch key versions.
	KMSKeyARN   string `json:"kms_key_arn"`
	Region      string `json:"region"`
	KMSEndpoint string `json:"kms_endpoint,omitempty"`
	// DynamoDBEndpoint, for a dynamodb: store outside AWS (moto, say).
	DynamoDBEndpoint string `json:"dynamodb_endpoint,omitempty"`
	// Identity is the default custodian identity file (init identity).
	Identity string      `json:"identity,omitempty"`
	Audit    auditConfig `json:"audit"`
}

// auditConfig says where the audit log is and which keys it uses.
type auditConfig struct {
	// Log is file:DIR (an audit.FileSink) or postgres:URL (an
	// audit.PostgresSink in Table, shared by every custodian).
	Log   string `json:"log"`
	Table string `json:"table,omitempty"`
	// CheckpointFile receives the log's latest signed checkpoint after
	// every record keyctl appends.
	CheckpointFile string `json:"checkpoint_file"`
	// SignerKeyFile holds the note signer key that signs checkpoints (0600).
	SignerKeyFile string `json:"signer_key_file"`
	// VerifierKeyFile holds the matching verifier key, for auditors.
	VerifierKeyFile string `json:"verifier_key_file"`
	// HashKeyFile holds the key the log hashes branch key ids under (0600).
	HashKeyFile string `json:"hash_key_file"`
}

// loadConfig reads and checks the configuration at path.
func loadConfig(path string) (*config, error) {
	b, err := readSmallFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no configuration at %s: run keyctl init first, or give --config", path)
		}
		return nil, fmt.Errorf("reading the configuration: %w", err)
	}
	var c config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("the configuration %s is not valid: %v", path, err)
	}
	if c.Version != configVersion {
		return nil, fmt.Errorf("the configuration %s has version %d; this keyctl reads version %d", path, c.Version, configVersion)
	}
	return &c, nil
}

// save writes c to path with mode 0600, atomically.
func (c *config) save(path string) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), 0o600)
}

// readSmallFile reads a file of at most maxConfigBytes.
func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxConfigBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxConfigBytes)
	}
	return b, nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, fsynced and renamed, so a crash leaves the old or the new file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".keyctl-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// writeNewFile creates path with perm and data, refusing to replace a file.
func writeNewFile(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists; keyctl does not overwrite keys (move it away first)", path)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// storeKind splits a store URL into its kind and location.
func storeKind(u string) (kind, loc string, err error) {
	switch {
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		return "postgres", u, nil
	}
	kind, loc, ok := strings.Cut(u, ":")
	if !ok || loc == "" {
		return "", "", usagef("store %q: want file:DIR, sqlite:PATH, postgres:URL or dynamodb:TABLE", redactURL(u))
	}
	switch kind {
	case "file", "sqlite", "postgres", "dynamodb":
		return kind, loc, nil
	}
	return "", "", usagef("store kind %q: want file, sqlite, postgres or dynamodb", kind)
}

// redactURL hides a password in a URL before it is printed.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	userinfo, host, ok := strings.Cut(rest, "@")
	if !ok {
		return u
	}
	if user, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
		return scheme + "://" + user + ":xxxxx@" + host
	}
	return u
}
