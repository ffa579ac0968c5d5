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

// Env holds what the cases share and is costly to make: kmsmock servers
// (one without added latency, more with) with one KMS key each, branch key
// stores with one branch key, a hierarchical keyring for the field cases,
// one raw AES key, and plaintext buffers. Each piece is made on first use;
// Close releases them all.
type Env struct {
	// Dir holds ciphertext files of the streaming cases.
	Dir string

	mu      sync.Mutex
	key     []byte
	kms     map[time.Duration]kmsEndpoint
	stores  map[string]keystore.Store
	hier    *keyring.Hierarchical
	buffers map[int64][]byte
	closers []func()
}

// kmsEndpoint is a running kmsmock's client (signing as "svc") and the ARN
// of its one key.
type kmsEndpoint struct {
	client *kms.Client
	arn    string
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
	return &Env{Dir: dir, key: key, kms: map[time.Duration]kmsEndpoint{}, stores: map[string]keystore.Store{},
		buffers: map[int64][]byte{}}, nil
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
func (e *Env) KMS() (*kms.Client, string, error) { return e.KMSWithLatency(0) }

// KMSWithLatency is KMS on a kmsmock of its own that adds latency to every
// call it answers (one server per latency).
func (e *Env) KMSWithLatency(latency time.Duration) (*kms.Client, string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.kmsLocked(latency)
}

func (e *Env) kmsLocked(latency time.Duration) (*kms.Client, string, error) {
	if k, ok := e.kms[latency]; ok {
		return k.client, k.arn, nil
	}
	l, client, arn, err := startKMS(latency)
	if err != nil {
		return nil, "", err
	}
	e.closers = append(e.closers, func() { l.Close() })
	e.kms[latency] = kmsEndpoint{client: client, arn: arn}
	return client, arn, nil
}

// startKMS starts a kmsmock that adds latency to every call, makes one KMS
// key, and returns a client signing as "svc" and the key's ARN.
func startKMS(latency time.Duration) (*kmsmock.Local, *kms.Client, string, error) {
	l, err := kmsmock.Start(kmsmock.Config{}, "")
	if err != nil {
		return nil, nil, "", fmt.Errorf("starting kmsmock: %w", err)
	}
	client := l.Client("svc")
	out, err := client.CreateKey(context.Background(), &kms.CreateKeyInput{})
	if err != nil {
		l.Close()
		return nil, nil, "", fmt.Errorf("creating a KMS key: %w", err)
	}
	if latency > 0 {
		l.SetFault("", kmsmock.Fault{Latency: latency})
	}
	return l, client, aws.ToString(out.KeyMetadata.Arn), nil
}

// branchKeyID names the one branch key of every store.
const branchKeyID = "phibench"

// branchKeysConfig is the configuration of every BranchKeys over store,
// reaching KMS through client (the fast kmsmock's key wraps them all).
func branchKeysConfig(store keystore.Store, client keyring.KMSClient, arn string) keyring.BranchKeysConfig {
	return keyring.BranchKeysConfig{Store: store, Client: client, KMSKeyARN: arn, LogicalStoreName: "phibench"}
}

// BranchKeys returns BranchKeys over the store of kind ("file", "dynamodb"
// or "postgres", see StoreKinds), which holds the branch key the cases
// use, reaching the fast kmsmock through a client that counts its calls.
// The store and its branch key are made on first use.
func (e *Env) BranchKeys(kind string) (*keyring.BranchKeys, *keyring.CountingKMS, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.branchKeysLocked(kind)
}

func (e *Env) branchKeysLocked(kind string) (*keyring.BranchKeys, *keyring.CountingKMS, error) {
	client, arn, err := e.kmsLocked(0)
	if err != nil {
		return nil, nil, err
	}
	store, ok := e.stores[kind]
	if !ok {
		if store, err = e.openStoreLocked(kind); err != nil {
			return nil, nil, fmt.Errorf("%s store: %w", kind, err)
		}
		custodian, err := custody.NewBranchKeys(branchKeysConfig(store, client, arn))
		if err != nil {
			return nil, nil, err
		}
		if _, err := custodian.CreateBranchKey(context.Background(), branchKeyID); err != nil {
			return nil, nil, fmt.Errorf("creating the branch key in the %s store: %w", kind, err)
		}
		e.stores[kind] = store
	}
	counting := keyring.NewCountingKMS(client)
	bk, err := keyring.NewBranchKeys(branchKeysConfig(store, counting, arn))
	if err != nil {
		return nil, nil, err
	}
	return bk, counting, nil
}

// newHierarchical is a hierarchical keyring over bk's one branch key that
// keeps what it unwraps for ttl (uses are counted in the store, in
// blocks, as a service's would be).
func newHierarchical(bk *keyring.BranchKeys, ttl time.Duration) (*keyring.Hierarchical, error) {
	return keyring.NewHierarchical(keyring.HierarchicalConfig{
		BranchKeys: bk, BranchKeyID: branchKeyID, CacheTTL: ttl, MaxUsesPerVersion: 1 << 31,
	})
}

// Hierarchical returns a hierarchical keyring over a file store and
// kmsmock, with one branch key and an hour's cache lifetime, so the field
// cases measure the steady state (cache hits).
func (e *Env) Hierarchical() (*keyring.Hierarchical, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.hier != nil {
		return e.hier, nil
	}
	bk, _, err := e.branchKeysLocked(StoreFile)
	if err != nil {
		return nil, err
	}
	hier, err := newHierarchical(bk, time.Hour)
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { hier.Close() })
	e.hier = hier
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
