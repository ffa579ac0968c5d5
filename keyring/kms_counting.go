package keyring

import (
	"context"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// CountingKMS wraps a KMS client and counts the calls the keyrings make,
// per operation, for metrics: wrap the client once and give the wrapper to
// NewKMS or NewKMSDiscovery. It is safe for concurrent use.
type CountingKMS struct {
	client                   KMSClient
	generate, encrypt, unwrp atomic.Uint64
	failures                 atomic.Uint64
}

// NewCountingKMS wraps client.
func NewCountingKMS(client KMSClient) *CountingKMS { return &CountingKMS{client: client} }

// KMSCalls counts calls by operation, and how many of them failed.
type KMSCalls struct {
	GenerateDataKey, Encrypt, Decrypt uint64
	Failures                          uint64
}

// Calls returns the counts so far.
func (c *CountingKMS) Calls() KMSCalls {
	return KMSCalls{GenerateDataKey: c.generate.Load(), Encrypt: c.encrypt.Load(), Decrypt: c.unwrp.Load(), Failures: c.failures.Load()}
}

func (c *CountingKMS) count(n *atomic.Uint64, err error) {
	n.Add(1)
	if err != nil {
		c.failures.Add(1)
	}
}

// GenerateDataKey implements KMSClient.
func (c *CountingKMS) GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	out, err := c.client.GenerateDataKey(ctx, in, optFns...)
	c.count(&c.generate, err)
	return out, err
}

// Encrypt implements KMSClient.
func (c *CountingKMS) Encrypt(ctx context.Context, in *kms.EncryptInput, optFns ...func(*kms.Options)) (*kms.EncryptOutput, error) {
	out, err := c.client.Encrypt(ctx, in, optFns...)
	c.count(&c.encrypt, err)
	return out, err
}

// Decrypt implements KMSClient.
func (c *CountingKMS) Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	out, err := c.client.Decrypt(ctx, in, optFns...)
	c.count(&c.unwrp, err)
	return out, err
}
