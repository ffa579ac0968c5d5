package kmsmock_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/stretchr/testify/require"
)

func oneAttempt(o *kms.Options) { o.RetryMaxAttempts = 1 }

func newKeyID(t *testing.T, c *kms.Client) string {
	t.Helper()
	out, err := c.CreateKey(context.Background(), &kms.CreateKeyInput{})
	require.NoError(t, err)
	return aws.ToString(out.KeyMetadata.KeyId)
}

func TestFaultThrottleAndInternalErrors(t *testing.T) {
	l := kmsmock.StartTest(t, kmsmock.Config{})
	ctx := context.Background()
	c := l.Client("admin", oneAttempt)
	id := newKeyID(t, c)

	l.SetFault("GenerateDataKey", kmsmock.Fault{ThrottleRate: 1})
	_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &id, KeySpec: types.DataKeySpecAes256})
	require.NoError(t, expectCode(err, "ThrottlingException"))
	_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("x")})
	require.NoError(t, err, "a fault on one operation leaves the others alone")

	l.SetFault("GenerateDataKey", kmsmock.Fault{InternalErrorRate: 1})
	_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &id, KeySpec: types.DataKeySpecAes256})
	require.NoError(t, expect[*types.KMSInternalException](err))

	l.SetFault("GenerateDataKey", kmsmock.Fault{})
	_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &id, KeySpec: types.DataKeySpecAes256})
	require.NoError(t, err, "a zero Fault removes the injection")
}

// With 20 % of requests failing, the SDK's retries carry every call through,
// and the counters show the extra attempts.
func TestFaultRatesAreRetriedBySDK(t *testing.T) {
	l := kmsmock.StartTest(t, kmsmock.Config{})
	ctx := context.Background()
	id := newKeyID(t, l.Client("admin"))
	l.SetFault("", kmsmock.Fault{ThrottleRate: 0.1, InternalErrorRate: 0.1})
	c := l.Client("svc", func(o *kms.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 12
			so.MaxBackoff = time.Millisecond
			so.RateLimiter = ratelimit.None
		})
	})
	const n = 200
	for range n {
		_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &id, KeySpec: types.DataKeySpecAes256})
		require.NoError(t, err)
	}
	attempts := l.Calls("GenerateDataKey")
	require.Greater(t, attempts, int64(n), "some attempts must have failed and been retried")
	require.Less(t, attempts, int64(2*n), "about 20 %% of attempts fail, not half")
}

func TestFaultDropAndOutage(t *testing.T) {
	l := kmsmock.StartTest(t, kmsmock.Config{})
	ctx := context.Background()
	c := l.Client("admin", oneAttempt)
	id := newKeyID(t, c)

	l.SetFault("Encrypt", kmsmock.Fault{DropRate: 1})
	_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("x")})
	require.Error(t, err)
	var api smithy.APIError
	require.False(t, errors.As(err, &api), "a dropped connection has no API error, got %v", err)

	l.ClearFaults()
	l.SetOutage(true)
	_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
	require.Error(t, err)
	l.SetOutage(false)
	_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
	require.NoError(t, err)

	results := map[string]int{}
	for _, ev := range l.Trail() {
		results[ev.Result]++
	}
	require.Equal(t, 2, results["ConnectionDropped"], "the drop and the outage are both in the trail")
}

// Latency is a lower bound on how long a call takes; the test asserts only
// that bound, which a slow machine cannot break.
func TestFaultLatency(t *testing.T) {
	l := kmsmock.StartTest(t, kmsmock.Config{})
	ctx := context.Background()
	c := l.Client("admin", oneAttempt)
	id := newKeyID(t, c)
	l.SetFault("DescribeKey", kmsmock.Fault{Latency: 80 * time.Millisecond, Jitter: 10 * time.Millisecond})
	start := time.Now()
	_, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 80*time.Millisecond)

	// A caller that gives up does not hold the server.
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	_, err = c.DescribeKey(short, &kms.DescribeKeyInput{KeyId: &id})
	require.Error(t, err)
}

func TestSetFaultPanicsOnMisuse(t *testing.T) {
	s, err := kmsmock.New(kmsmock.Config{})
	require.NoError(t, err)
	require.Panics(t, func() { s.SetFault("NoSuchOperation", kmsmock.Fault{}) })
	require.Panics(t, func() { s.SetFault("", kmsmock.Fault{ThrottleRate: 1.5}) })
	require.Panics(t, func() { s.Advance(-time.Second) })
}

func TestCallCountsAreExactUnderConcurrency(t *testing.T) {
	l := kmsmock.StartTest(t, kmsmock.Config{})
	ctx := context.Background()
	c := l.Client("admin")
	id := newKeyID(t, c)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 10 {
				_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &id, NumberOfBytes: aws.Int32(32)})
				require.NoError(t, err)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int64(160), l.Calls("GenerateDataKey"))
	require.Equal(t, map[string]int64{"CreateKey": 1, "GenerateDataKey": 160}, l.CallCounts())
}

func TestTrailRecordsWithoutContextValues(t *testing.T) {
	l := kmsmock.StartTest(t, kmsmock.Config{TrailCapacity: 4})
	ctx := context.Background()
	c := l.Client("svc")
	id := newKeyID(t, c)
	const canary = "CANARY-PATIENT-0042"
	ec := map[string]string{"patient": canary}
	out, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &id, KeySpec: types.DataKeySpecAes256, EncryptionContext: ec})
	require.NoError(t, err)
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: out.CiphertextBlob, EncryptionContext: map[string]string{"patient": "other"}})
	require.Error(t, err)

	trail := l.Trail()
	require.Len(t, trail, 3)
	gdk, dec := trail[1], trail[2]
	require.Equal(t, "GenerateDataKey", gdk.Operation)
	require.Equal(t, "arn:aws:iam::111122223333:user/svc", gdk.Principal)
	require.Equal(t, "arn:aws:kms:us-east-1:111122223333:key/"+id, gdk.KeyARN)
	require.Equal(t, "Success", gdk.Result)
	require.Equal(t, "InvalidCiphertextException", dec.Result)
	require.Contains(t, gdk.EncryptionContext, "patient")
	require.True(t, strings.HasPrefix(gdk.EncryptionContext["patient"], "hmac-sha256:"))
	require.NotEqual(t, gdk.EncryptionContext["patient"], dec.EncryptionContext["patient"], "different values hash differently")
	for _, ev := range trail {
		require.NotContains(t, ev.EncryptionContext["patient"], canary)
	}

	// The trail is bounded: the oldest events go first.
	for range 5 {
		_, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		require.NoError(t, err)
	}
	trail = l.Trail()
	require.Len(t, trail, 4)
	for _, ev := range trail {
		require.Equal(t, "DescribeKey", ev.Operation)
	}
}

func TestSignatureVerification(t *testing.T) {
	l := kmsmock.StartTest(t, kmsmock.Config{Credentials: map[string]string{"svc": "right-secret"}})
	ctx := context.Background()
	_, err := l.Client("svc", oneAttempt).ListKeys(ctx, &kms.ListKeysInput{})
	require.NoError(t, err)

	wrong := kmsmock.NewClient(l.URL, l.Region(), "svc", "wrong-secret", oneAttempt)
	_, err = wrong.ListKeys(ctx, &kms.ListKeysInput{})
	require.NoError(t, expectCode(err, "InvalidSignatureException"))

	unknown := kmsmock.NewClient(l.URL, l.Region(), "nobody", "x", oneAttempt)
	_, err = unknown.ListKeys(ctx, &kms.ListKeysInput{})
	require.NoError(t, expectCode(err, "UnrecognizedClientException"))

	otherRegion := kmsmock.NewClient(l.URL, "eu-west-1", "svc", "right-secret", oneAttempt)
	_, err = otherRegion.ListKeys(ctx, &kms.ListKeysInput{})
	require.NoError(t, expectCode(err, "InvalidSignatureException"))
}

func TestStateFileSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kms.json")
	ctx := context.Background()
	ec := map[string]string{"tenant": "a"}

	l := kmsmock.StartTest(t, kmsmock.Config{StateFile: path})
	c := l.Client("admin")
	id := newKeyID(t, c)
	_, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/phi"), TargetKeyId: &id})
	require.NoError(t, err)
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/phi"), Plaintext: []byte("phi"), EncryptionContext: ec})
	require.NoError(t, err)
	_, err = c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: &id})
	require.NoError(t, err)
	_, err = c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &id})
	require.NoError(t, err)
	require.NoError(t, l.Close())

	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the state file holds key material")

	l2 := kmsmock.StartTest(t, kmsmock.Config{StateFile: path})
	c2 := l2.Client("admin")
	md, err := c2.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/phi")})
	require.NoError(t, err)
	require.Equal(t, types.KeyStateDisabled, md.KeyMetadata.KeyState)
	_, err = c2.EnableKey(ctx, &kms.EnableKeyInput{KeyId: &id})
	require.NoError(t, err)
	dec, err := c2.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec})
	require.NoError(t, err)
	require.Equal(t, "phi", string(dec.Plaintext))

	_, err = kmsmock.New(kmsmock.Config{StateFile: path, Account: "999999999999"})
	require.ErrorContains(t, err, "belongs to")
	require.NoError(t, os.WriteFile(path, []byte("{not json"), 0o600))
	_, err = kmsmock.New(kmsmock.Config{StateFile: path})
	require.ErrorContains(t, err, "not valid JSON")
}

func TestSeedIsIdempotent(t *testing.T) {
	s, err := kmsmock.New(kmsmock.Config{})
	require.NoError(t, err)
	seed := kmsmock.Seed{Keys: []kmsmock.SeedKey{{ID: "1234abcd-12ab-34cd-56ef-1234567890ab", Aliases: []string{"alias/phi"}, RotationPeriodDays: 365}}}
	require.NoError(t, s.ApplySeed(seed))
	require.NoError(t, s.ApplySeed(seed))
	require.Error(t, s.ApplySeed(kmsmock.Seed{Keys: []kmsmock.SeedKey{{ID: "not-a-uuid"}}}))
	require.Error(t, s.ApplySeed(kmsmock.Seed{Keys: []kmsmock.SeedKey{{Aliases: []string{"bad name"}}}}))
	require.Error(t, s.ApplySeed(kmsmock.Seed{Keys: []kmsmock.SeedKey{{RotationPeriodDays: 10}}}))
}

func TestStartRefusesRemoteAddresses(t *testing.T) {
	_, err := kmsmock.Start(kmsmock.Config{}, "0.0.0.0:0")
	require.ErrorContains(t, err, "loopback")
	require.NoError(t, kmsmock.CheckLoopback("[::1]:0"))
	require.NoError(t, kmsmock.CheckLoopback("127.0.0.1:4599"))
}

func TestNewRefusesBadConfig(t *testing.T) {
	_, err := kmsmock.New(kmsmock.Config{Region: "mars"})
	require.Error(t, err)
	_, err = kmsmock.New(kmsmock.Config{Account: "12"})
	require.Error(t, err)
}
