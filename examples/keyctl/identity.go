package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/phicrypt/phicrypt/custody"
)

// maxNameLen caps a custodian's name (the audit log's actor field is 128
// bytes).
const maxNameLen = 64

// identity is a custodian's signing key: an Ed25519 key pair and the name
// the trust policy knows it by. The file (init identity) is JSON, mode 0600:
//
//	{"name": "alice", "private_key": "<base64 of the 32-byte seed>"}
type identity struct {
	Name string
	key  ed25519.PrivateKey
}

type identityFile struct {
	Name       string `json:"name"`
	PrivateKey string `json:"private_key"`
}

// newIdentity makes a key pair for name and writes it to path (0600),
// refusing to replace a file.
func newIdentity(name, path string) (*identity, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(identityFile{Name: name, PrivateKey: base64.StdEncoding.EncodeToString(priv.Seed())}, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeNewFile(path, append(b, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("writing the identity: %w", err)
	}
	return &identity{Name: name, key: priv}, nil
}

// loadIdentity reads an identity file, refusing one that others may read.
func loadIdentity(path string) (*identity, error) {
	if err := checkPrivate(path); err != nil {
		return nil, err
	}
	b, err := readSmallFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the identity: %w", err)
	}
	var f identityFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("the identity file %s is not valid", path)
	}
	seed, err := base64.StdEncoding.DecodeString(f.PrivateKey)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("the identity file %s does not hold a 32-byte Ed25519 seed", path)
	}
	if err := checkName(f.Name); err != nil {
		return nil, err
	}
	return &identity{Name: f.Name, key: ed25519.NewKeyFromSeed(seed)}, nil
}

// PublicKey is the identity's public key in standard base64.
func (id *identity) PublicKey() string {
	return base64.StdEncoding.EncodeToString(id.key.Public().(ed25519.PublicKey))
}

// public is the identity's public key.
func (id *identity) public() ed25519.PublicKey { return id.key.Public().(ed25519.PublicKey) }

// signer approves change requests with the identity's key.
func (id *identity) signer() (*custody.Signer, error) { return custody.NewSigner(id.Name, id.key) }

// checkName accepts a custodian name: 1 to maxNameLen bytes of letters,
// digits and "-._@".
func checkName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return usagef("a custodian name must be 1 to %d characters", maxNameLen)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._@", r)) {
			return usagef("custodian name %q: use letters, digits and - . _ @ only", name)
		}
	}
	return nil
}

// parsePublicKey decodes a standard base64 Ed25519 public key.
func parsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("not a base64 Ed25519 public key (32 bytes)")
	}
	return ed25519.PublicKey(b), nil
}

// checkPrivate refuses a key file that users other than its owner may read
// or write.
func checkPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s is readable or writable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	return nil
}
