// Package otelmetrics publishes phicrypt's counters as OpenTelemetry
// metrics: the data-key cache's hits, misses, keyring calls, waits,
// evictions, refreshes and stale serves, and KMS calls by operation.
//
//	kmsCounts := keyring.NewCountingKMS(kmsClient)
//	kr, _ := keyring.NewKMS(keyring.KMSConfig{Client: kmsCounts, Generator: arn})
//	reg, _ := otelmetrics.Register(meterProvider.Meter("phicrypt"), cache, kmsCounts)
//	defer reg.Unregister()
//
// The counters are read when the SDK collects; nothing is recorded on the
// hot path beyond the atomic counters phicrypt keeps anyway.
package otelmetrics

import (
	"context"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Register creates observable counters on meter for cache and kms; either
// may be nil.
func Register(meter metric.Meter, cache *phicrypt.Cache, kms *keyring.CountingKMS) (metric.Registration, error) {
	var instruments []metric.Observable
	counter := func(name, desc string) (metric.Int64ObservableCounter, error) {
		c, err := meter.Int64ObservableCounter(name, metric.WithDescription(desc), metric.WithUnit("{call}"))
		if err == nil {
			instruments = append(instruments, c)
		}
		return c, err
	}
	type cacheMetric struct {
		inst metric.Int64ObservableCounter
		read func(phicrypt.CacheStats) uint64
	}
	var cacheMetrics []cacheMetric
	if cache != nil {
		for _, m := range []struct {
			name, desc string
			read       func(phicrypt.CacheStats) uint64
		}{
			{"phicrypt.cache.hits", "messages served by a cached data key", func(s phicrypt.CacheStats) uint64 { return s.Hits }},
			{"phicrypt.cache.misses", "messages that found no usable cached data key", func(s phicrypt.CacheStats) uint64 { return s.Misses }},
			{"phicrypt.cache.keyring_calls", "keyring (KMS) calls made by the cache", func(s phicrypt.CacheStats) uint64 { return s.KeyringCalls }},
			{"phicrypt.cache.waits", "callers that waited on another caller's keyring call", func(s phicrypt.CacheStats) uint64 { return s.Waits }},
			{"phicrypt.cache.evictions", "cache entries evicted", func(s phicrypt.CacheStats) uint64 { return s.Evictions }},
			{"phicrypt.cache.refreshes", "entries refreshed ahead of expiry", func(s phicrypt.CacheStats) uint64 { return s.Refreshes }},
			{"phicrypt.cache.stale_serves", "uses of expired entries while the keyring failed", func(s phicrypt.CacheStats) uint64 { return s.StaleServes }},
		} {
			inst, err := counter(m.name, m.desc)
			if err != nil {
				return nil, err
			}
			cacheMetrics = append(cacheMetrics, cacheMetric{inst, m.read})
		}
	}
	var kmsCalls, kmsFailures metric.Int64ObservableCounter
	if kms != nil {
		var err error
		if kmsCalls, err = counter("phicrypt.kms.calls", "KMS calls made by the keyrings, by operation"); err != nil {
			return nil, err
		}
		if kmsFailures, err = counter("phicrypt.kms.failures", "KMS calls that failed"); err != nil {
			return nil, err
		}
	}
	return meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		if cache != nil {
			st := cache.Stats()
			for _, m := range cacheMetrics {
				o.ObserveInt64(m.inst, int64(m.read(st)))
			}
		}
		if kms != nil {
			c := kms.Calls()
			op := func(name string) metric.ObserveOption {
				return metric.WithAttributes(attribute.String("operation", name))
			}
			o.ObserveInt64(kmsCalls, int64(c.GenerateDataKey), op("GenerateDataKey"))
			o.ObserveInt64(kmsCalls, int64(c.Encrypt), op("Encrypt"))
			o.ObserveInt64(kmsCalls, int64(c.Decrypt), op("Decrypt"))
			o.ObserveInt64(kmsFailures, int64(c.Failures))
		}
		return nil
	}, instruments...)
}
