package suite

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/kmsmock"
)

// Env holds what the cases share and is costly to make: a kmsmock server
// with one KMS key, a branch key store and a hierarchical keyring for the
// field cases, one raw AES key, and plaintext buffers. Each piece is made
// on first use; Close releases them all.
type Env struct {
	// Dir holds ciphertext files of the streaming cases.
	Dir string

	mu      sync.Mutex
	key     []byte
	kms     *kmsmock.Local
	client  *kms.Client
	arn     string
	store   keystore.Store
	hier    *keyring.Hierarchical
	buffers map[int64][]byte
	closers []func()
}

// NewEnv makes an Env whose streaming files live under a new temporary
// directory.
func NewEnv() (*Env, error) {
	dir, err := os.MkdirTemp("", "phibench-")
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	rand.Read(key)
	return &Env{Dir: dir, key: key, buffers: map[int64][]byte{}}, nil
}

// Close stops kmsmock, closes the stores and removes Dir.
func (e *Env) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	e.closers = nil
	return os.RemoveAll(e.Dir)
}

// RawKey is the 32-byte key every raw AES keyring and peer uses.
func (e *Env) RawKey() []byte { return e.key }

// Plaintext returns n random bytes, the same slice for every caller asking
// for n: cases must not write to it.
func (e *Env) Plaintext(n int64) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	if b, ok := e.buffers[n]; ok {
		return b
	}
	b := make([]byte, n)
	rand.Read(b)
	e.buffers[n] = b
	return b
}

// KMS returns a KMS client signing as "svc" to the in-process kmsmock, and
// the ARN of its one key.
func (e *Env) KMS() (*kms.Client, string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.kmsLocked()
}

func (e *Env) kmsLocked() (*kms.Client, string, error) {
	if e.client != nil {
		return e.client, e.arn, nil
	}
	l, err := kmsmock.Start(kmsmock.Config{}, "")
	if err != nil {
		return nil, "", fmt.Errorf("starting kmsmock: %w", err)
	}
	e.closers = append(e.closers, func() { l.Close() })
	client := l.Client("svc")
	out, err := client.CreateKey(context.Background(), &kms.CreateKeyInput{})
	if err != nil {
		return nil, "", fmt.Errorf("creating a KMS key: %w", err)
	}
	e.kms, e.client, e.arn = l, client, aws.ToString(out.KeyMetadata.Arn)
	return e.client, e.arn, nil
}

// branchKeyID names the one branch key of the field cases.
const branchKeyID = "phibench"

// Hierarchical returns a hierarchical keyring over a file store and
// kmsmock, with one branch key and an hour's cache lifetime, so the field
// cases measure the steady state (cache hits).
func (e *Env) Hierarchical() (*keyring.Hierarchical, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.hier != nil {
		return e.hier, nil
	}
	client, arn, err := e.kmsLocked()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(e.Dir, "store-")
	if err != nil {
		return nil, err
	}
	store, err := keystore.OpenFileStore(dir)
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { store.Close() })
	cfg := keyring.BranchKeysConfig{Store: store, Client: client, KMSKeyARN: arn, LogicalStoreName: "phibench"}
	custodian, err := custody.NewBranchKeys(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := custodian.CreateBranchKey(context.Background(), branchKeyID); err != nil {
		return nil, fmt.Errorf("creating the branch key: %w", err)
	}
	bk, err := keyring.NewBranchKeys(cfg)
	if err != nil {
		return nil, err
	}
	hier, err := keyring.NewHierarchical(keyring.HierarchicalConfig{
		BranchKeys: bk, BranchKeyID: branchKeyID, CacheTTL: time.Hour, MaxUsesPerVersion: 1 << 31,
	})
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { hier.Close() })
	e.store, e.hier = store, hier
	return hier, nil
}

// Table returns a new fieldenc table named "patients" over Hierarchical.
func (e *Env) Table() (*fieldenc.Table, error) {
	hier, err := e.Hierarchical()
	if err != nil {
		return nil, err
	}
	return fieldenc.New(fieldenc.Config{Keys: hier, BranchKeyID: branchKeyID, Table: "patients"})
}

var errNoCase = errors.New("suite: no such case")
