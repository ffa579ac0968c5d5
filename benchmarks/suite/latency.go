package suite

import (
	"context"
	"errors"
	"time"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// LatencyConfig sets up EncryptLatencies.
type LatencyConfig struct {
	// KMSLatency is added to every call kmsmock answers.
	KMSLatency time.Duration
	// MaxAge and RefreshAhead configure the Cache (RefreshAhead 0 is off).
	MaxAge, RefreshAhead time.Duration
	// Duration is how long 1 KiB messages are encrypted, one after
	// another.
	Duration time.Duration
}

// MaxLatencySamples caps the latencies one EncryptLatencies run keeps.
const MaxLatencySamples = 1 << 22

// EncryptLatencies encrypts 1 KiB messages one after another for
// cfg.Duration through a Cache over a KMS keyring on its own kmsmock, which
// adds cfg.KMSLatency to every call, and returns each Encrypt's latency
// and the KMS calls made. Without refresh-ahead, the message that finds
// its entry expired waits for KMS; with it, no message should.
func EncryptLatencies(env *Env, cfg LatencyConfig) ([]time.Duration, uint64, error) {
	if cfg.Duration <= 0 || cfg.MaxAge <= 0 {
		return nil, 0, errors.New("suite: EncryptLatencies needs a Duration and a MaxAge")
	}
	l, client, arn, err := startKMS(cfg.KMSLatency)
	if err != nil {
		return nil, 0, err
	}
	defer l.Close()
	ctx := context.Background()
	counting := keyring.NewCountingKMS(client)
	kr, err := keyring.NewKMS(keyring.KMSConfig{Client: counting, Generator: arn})
	if err != nil {
		return nil, 0, err
	}
	cache, err := phicrypt.NewCache(phicrypt.CacheConfig{MaxAge: cfg.MaxAge, RefreshAhead: cfg.RefreshAhead})
	if err != nil {
		return nil, 0, err
	}
	defer cache.Close()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, Cache: cache})
	if err != nil {
		return nil, 0, err
	}
	pt := env.Plaintext(KiB)
	if _, err := enc.Encrypt(ctx, pt, nil); err != nil { // the first miss is not steady state
		return nil, 0, err
	}
	before := totalCalls(counting)
	var lat []time.Duration
	end := time.Now().Add(cfg.Duration)
	for len(lat) < MaxLatencySamples {
		t0 := time.Now()
		if t0.After(end) {
			break
		}
		if _, err := enc.Encrypt(ctx, pt, nil); err != nil {
			return nil, 0, err
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, totalCalls(counting) - before, nil
}
