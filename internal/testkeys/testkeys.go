// Package testkeys sets up, for tests, what a service using branch keys
// has: kmsmock over real HTTP, a KMS key, a key store and BranchKeys over
// them. Tests of several packages use it instead of repeating the set-up.
package testkeys

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/kmsmock"
)

// Env is kmsmock, one KMS key, a file store and BranchKeys over them.
type Env struct {
	KMS    *kmsmock.Local
	Client *kms.Client // signs as the principal "svc"
	ARN    string      // the KMS key that wraps branch keys
	Store  keystore.Store
	Keys   *keyring.BranchKeys
}

// Options adjust New.
type Options struct {
	// Now is the branch keys' clock (default time.Now).
	Now func() time.Time
	// ClientOptions adjust the KMS client (fewer retries, say).
	ClientOptions []func(*kms.Options)
	// LogicalStoreName defaults to "phicrypt-test".
	LogicalStoreName string
}

// New starts kmsmock, makes a KMS key and opens a file store in a
// temporary directory; everything is stopped and closed when t ends.
func New(t testing.TB, o Options) *Env {
	t.Helper()
	ctx := context.Background()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	client := l.Client("svc", o.ClientOptions...)
	key, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := keystore.OpenFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	name := o.LogicalStoreName
	if name == "" {
		name = "phicrypt-test"
	}
	arn := aws.ToString(key.KeyMetadata.Arn)
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: client, KMSKeyARN: arn, LogicalStoreName: name, Now: o.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &Env{KMS: l, Client: client, ARN: arn, Store: store, Keys: bk}
}

// Create makes branch key id, failing t if it cannot.
func (e *Env) Create(t testing.TB, id string) keystore.BranchKeyVersion {
	t.Helper()
	v, err := Custodian(t, e.Keys).CreateBranchKey(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Custodian returns the custodian's handle (custody) over the same
// configuration as bk, for tests that create and rotate branch keys.
func Custodian(t testing.TB, bk *keyring.BranchKeys) *custody.BranchKeys {
	t.Helper()
	c, err := custody.NewBranchKeys(bk.Config())
	if err != nil {
		t.Fatal(err)
	}
	return c
}
