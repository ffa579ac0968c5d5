package custody_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/keyring"
)

// A table that reserved a block of encryptions under the active version
// before the version was marked recovered does not carry the block over
// (Table renew, Hierarchical.AcquireReserved) once its handle expires:
// sealing fails with ErrVersionRecovered, and the version's usage counter
// in the store does not move; a row sealed before still opens.
func TestReview3FieldencRenewRefusesRecoveredVersion(t *testing.T) {
	ctx := t.Context()
	e := newReviewEnv(t, "sqlite", "phicrypt-test")
	_, err := e.admin.CreateBranchKey(ctx, "key-a")
	require.NoError(t, err)
	const ttl = 300 * time.Millisecond
	h, codec := e.reservingCodec(t, "key-a", ttl)
	p := bkPatient{ID: "row-1", Name: fieldenc.Of("Jane Roe")}
	require.NoError(t, codec.Seal(ctx, &p))
	sealed, err := p.Name.Value()
	require.NoError(t, err)

	v := e.versions(t, "key-a")[0]
	_, err = e.recs.PutRecord(ctx, custody.RecordRecoveredBranchKey, keyring.BranchKeyEscrowRecordName(v.BranchKeyID, v.Version), []byte{1}, 0)
	require.NoError(t, err)
	time.Sleep(ttl + 100*time.Millisecond)
	q := bkPatient{ID: "row-2", Name: fieldenc.Of("John Doe")}
	require.ErrorIs(t, codec.Seal(ctx, &q), keyring.ErrVersionRecovered)
	_, err = h.AcquireReserved(ctx, "key-a", v.Version)
	require.ErrorIs(t, err, keyring.ErrVersionRecovered)
	after, err := e.store.Get(ctx, "key-a", v.Version)
	require.NoError(t, err)
	require.Equal(t, v.Usage, after.Usage)

	back := bkPatient{ID: "row-1"}
	require.NoError(t, back.Name.Scan(sealed))
	require.NoError(t, codec.Open(ctx, &back))
	name, _ := back.Name.Get()
	require.Equal(t, "Jane Roe", name)
}
