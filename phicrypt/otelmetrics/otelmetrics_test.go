package otelmetrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/otelmetrics"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// The exported counters agree with the cache's stats and with kmsmock's own
// count of the calls it received.
func TestRegisterReportsCacheAndKMS(t *testing.T) {
	ctx := context.Background()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	client := l.Client("svc")
	key, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	counts := keyring.NewCountingKMS(client)
	kr, err := keyring.NewKMS(keyring.KMSConfig{Client: counts, Generator: aws.ToString(key.KeyMetadata.Arn)})
	require.NoError(t, err)
	cache, err := phicrypt.NewCache(phicrypt.CacheConfig{MaxAge: time.Hour, MaxMessages: 10})
	require.NoError(t, err)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, Cache: cache})
	require.NoError(t, err)

	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	reg, err := otelmetrics.Register(provider.Meter("phicrypt"), cache, counts)
	require.NoError(t, err)
	defer reg.Unregister()

	for range 25 {
		msg, err := enc.Encrypt(ctx, []byte("phi"), map[string]string{"tenant": "a"})
		require.NoError(t, err)
		_, _, err = enc.Decrypt(ctx, msg, nil)
		require.NoError(t, err)
	}
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			require.True(t, ok, m.Name)
			for _, dp := range sum.DataPoints {
				name := m.Name
				if op, ok := dp.Attributes.Value(attribute.Key("operation")); ok {
					name += "/" + op.AsString()
				}
				got[name] = dp.Value
			}
		}
	}
	st := cache.Stats()
	require.Equal(t, int64(st.Hits), got["phicrypt.cache.hits"])
	require.Equal(t, int64(st.Misses), got["phicrypt.cache.misses"])
	require.Equal(t, int64(st.KeyringCalls), got["phicrypt.cache.keyring_calls"])
	require.Equal(t, l.Calls("GenerateDataKey"), got["phicrypt.kms.calls/GenerateDataKey"])
	require.Equal(t, l.Calls("Decrypt"), got["phicrypt.kms.calls/Decrypt"])
	require.Equal(t, int64(3), got["phicrypt.kms.calls/GenerateDataKey"], "25 messages, 10 per data key")
	require.Equal(t, int64(0), got["phicrypt.kms.failures"])
}
