package dynamodb_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"

	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/dynamodb"
	"github.com/phicrypt/phicrypt/keystore/storetest"
)

// losingTransport forwards every request to DynamoDB. Once armed, it
// throws away DynamoDB's answer to the next UpdateItem or PutItem after DynamoDB
// applied it, runs between (another process writing meanwhile), and
// fails the request as a reset connection does, so that the SDK retries
// an update that was already applied.
type losingTransport struct {
	next    http.RoundTripper
	mu      sync.Mutex
	between func()
	updates int
}

func (l *losingTransport) arm(between func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.between, l.updates = between, 0
}

func (l *losingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(req)
	if target := req.Header.Get("X-Amz-Target"); target != "DynamoDB_20120810.UpdateItem" && target != "DynamoDB_20120810.PutItem" {
		return resp, err
	}
	l.mu.Lock()
	l.updates++
	between := l.between
	l.between = nil
	l.mu.Unlock()
	if between == nil || err != nil {
		return resp, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	between()
	return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
}

// losingStore is a store on a fresh table whose write answers the
// returned transport can lose, and a plain store on the same table (the
// other process).
func losingStore(t *testing.T) (*dynamodb.Store, *dynamodb.Store, *losingTransport) {
	c, table, plain := freshTable(t)
	lt := &losingTransport{next: http.DefaultTransport}
	lossy := awsdynamodb.New(c.Options(), func(o *awsdynamodb.Options) { o.HTTPClient = &http.Client{Transport: lt} })
	s, err := dynamodb.New(lossy, table)
	require.NoError(t, err)
	return s, plain, lt
}

// TestPutRecordLostAnswerThenOtherWriter: a put whose first attempt was
// applied, whose answer was lost, and after which another process put the
// record again before the SDK's retry, reports its own revision, not a
// conflict (the two-process conformance test once failed on moto this
// way: one applied put was counted lost). The put's token survives up to
// 7 later puts; after 8 it is gone and the put reports a conflict.
func TestPutRecordLostAnswerThenOtherWriter(t *testing.T) {
	ctx := context.Background()
	for _, later := range []uint64{1, 7, 8} {
		t.Run(fmt.Sprintf("%d later puts", later), func(t *testing.T) {
			s, other, lt := losingStore(t)
			var otherErr error
			put := func(expected uint64) func() {
				return func() {
					for rev := expected; rev < expected+later && otherErr == nil; rev++ {
						_, otherErr = other.PutRecord(ctx, "policy", "tenant", []byte("other"), rev)
					}
				}
			}

			// A create.
			lt.arm(put(1))
			rev, err := s.PutRecord(ctx, "policy", "tenant", []byte("mine"), 0)
			require.NoError(t, otherErr)
			require.Equal(t, 2, lt.updates, "the SDK retried the update whose answer was lost")
			if later == 8 {
				require.ErrorIs(t, err, keystore.ErrExists)
			} else {
				require.NoError(t, err, "the create was this put's")
				require.EqualValues(t, 1, rev)
			}
			got, err := other.GetRecord(ctx, "policy", "tenant")
			require.NoError(t, err)
			require.Equal(t, 1+later, got.Revision)

			// An update.
			lt.arm(put(got.Revision + 1))
			rev, err = s.PutRecord(ctx, "policy", "tenant", []byte("mine"), got.Revision)
			require.NoError(t, otherErr)
			require.Equal(t, 2, lt.updates, "the SDK retried the update whose answer was lost")
			if later == 8 {
				require.ErrorIs(t, err, keystore.ErrConflict)
			} else {
				require.NoError(t, err, "the update was this put's")
				require.Equal(t, got.Revision+1, rev)
			}
			now, err := other.GetRecord(ctx, "policy", "tenant")
			require.NoError(t, err)
			require.Equal(t, got.Revision+1+later, now.Revision)
			require.Equal(t, "other", string(now.Value))

			// Without a lost answer, a stale put is still a conflict.
			_, err = s.PutRecord(ctx, "policy", "tenant", []byte("mine"), got.Revision)
			require.ErrorIs(t, err, keystore.ErrConflict)
		})
	}
}

// TestAddUsageLostAnswerThenOtherWriter: a usage count whose first
// attempt was applied, whose answer was lost, and after which another
// process counted before the SDK's retry, may be counted twice (the other
// count replaced its token, so the retry's condition holds), but never
// less than once: the counter stays an upper bound, as keystore.Store's
// AddUsage allows, and the call reports the counter's total.
func TestAddUsageLostAnswerThenOtherWriter(t *testing.T) {
	ctx := context.Background()
	s, other, lt := losingStore(t)
	v := storetest.NewVersion("tenant", keystore.StateActive)
	require.NoError(t, other.CreateWithCopies(ctx, v, randomBytes(184), randomBytes(184)))
	_, err := s.AddUsage(ctx, "tenant", v.Version, 1)
	require.NoError(t, err)

	var otherErr error
	lt.arm(func() { _, otherErr = other.AddUsage(ctx, "tenant", v.Version, 3) })
	total, err := s.AddUsage(ctx, "tenant", v.Version, 5)
	require.NoError(t, err)
	require.NoError(t, otherErr)
	require.GreaterOrEqual(t, lt.updates, 2, "the SDK retried the count whose answer was lost")
	got, err := other.Get(ctx, "tenant", v.Version)
	require.NoError(t, err)
	t.Logf("usage after 1, 5 (answer lost), 3: %d", total)
	require.Equal(t, got.Usage, total)
	require.GreaterOrEqual(t, total, uint64(1+3+5), "every count applied at least once")
	require.LessOrEqual(t, total, uint64(1+3+5+5), "the lost answer's count applied at most twice")
}
