package fieldenc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/stretchr/testify/require"
)

// chart is a row with a randomized field, a blind index and a
// deterministic field.
type chart struct {
	ID        string                  `phi:"rowid"`
	Diagnosis fieldenc.Sealed[string] `phi:"encrypt"`
	SSN       fieldenc.Sealed[string] `phi:"encrypt,blindindex=ssn_bidx:24,normalize=digits"`
	SSNIndex  []byte                  `phi:"index=ssn_bidx"`
	MRN       fieldenc.Sealed[string] `phi:"encrypt,deterministic"`
}

func newChart(id, mrn string) chart {
	return chart{ID: id, Diagnosis: fieldenc.Of("J45.909"), SSN: fieldenc.Of("123-45-6789"), MRN: fieldenc.Of(mrn)}
}

// stored is the row as the database holds it: ciphertexts only.
func stored(t *testing.T, c chart) chart {
	return chart{ID: c.ID, Diagnosis: sealedOnly(t, c.Diagnosis), SSN: sealedOnly(t, c.SSN), SSNIndex: c.SSNIndex, MRN: sealedOnly(t, c.MRN)}
}

func requireFieldDestroyed(t *testing.T, err error) {
	t.Helper()
	require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
	require.False(t, errors.Is(err, fieldenc.ErrWrongField) || errors.Is(err, fieldenc.ErrUnknownKey), "not an authentication failure: %v", err)
	require.NotContains(t, err.Error(), "patient-")
	require.NotContains(t, err.Error(), branchKeyID)
}

// TestDestroyedVersionFields: fields under a destroyed version fail with
// ErrKeyDestroyed, fields under the other version still open, and the
// search terms leave the destroyed version out (its rows stop matching);
// once the whole key is destroyed, sealing, opening and searching fail.
func TestDestroyedVersionFields(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	tbl := e.table(t, fieldenc.Config{})
	codec, err := fieldenc.NewCodec[chart](tbl)
	require.NoError(t, err)
	v1, err := e.store.Active(ctx, e.id)
	require.NoError(t, err)
	old := newChart("row-1", "MRN-1")
	require.NoError(t, codec.Seal(ctx, &old))
	e.rotate(t, tbl)
	cur := newChart("row-2", "MRN-1")
	require.NoError(t, codec.Seal(ctx, &cur))
	idx, err := codec.IndexValues(ctx, "ssn_bidx", "123456789")
	require.NoError(t, err)
	require.Equal(t, []any{cur.SSNIndex, old.SSNIndex}, idx)

	custodian := testkeys.Custodian(t, e.bk)
	require.NoError(t, custodian.DestroyVersion(ctx, e.id, v1.Version))
	e.kr.Forget(e.id)
	tbl.Forget()

	row := stored(t, old)
	requireFieldDestroyed(t, codec.Open(ctx, &row))
	row = stored(t, cur)
	require.NoError(t, codec.Open(ctx, &row))
	require.Equal(t, "J45.909", plain(row.Diagnosis))
	idx, err = codec.IndexValues(ctx, "ssn_bidx", "123456789")
	require.NoError(t, err)
	require.Equal(t, []any{cur.SSNIndex}, idx, "the destroyed version's rows no longer match")
	eq, err := codec.EqualValues(ctx, "MRN", "MRN-1")
	require.NoError(t, err)
	require.Equal(t, []any{text(t, cur.MRN)}, eq)

	require.NoError(t, custodian.DestroyKey(ctx, e.id))
	e.kr.Forget(e.id)
	tbl.Forget()
	row = stored(t, cur)
	requireFieldDestroyed(t, codec.Open(ctx, &row))
	_, err = codec.IndexValues(ctx, "ssn_bidx", "123456789")
	requireFieldDestroyed(t, err)
	_, err = codec.EqualValues(ctx, "MRN", "MRN-1")
	requireFieldDestroyed(t, err)
	fresh := newChart("row-3", "MRN-3")
	requireFieldDestroyed(t, codec.Seal(ctx, &fresh))
}

// TestForgetPatientFields: one branch key per patient (one table each,
// over one keyring whose supplier picks the patient's key for messages);
// destroying patient A's key makes A's fields and index terms fail within
// the keyring's CacheTTL, without any Forget, while patient B's are
// untouched.
func TestForgetPatientFields(t *testing.T) {
	ctx := context.Background()
	te := testkeys.New(t, testkeys.Options{LogicalStoreName: "fieldenc-test"})
	te.Create(t, "patient-A")
	te.Create(t, "patient-B")
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: te.Keys, CacheTTL: testTTL, MaxUsesPerVersion: 1 << 30,
		BranchKeyIDSupplier: func(ec map[string]string) (string, error) { return "patient-" + ec["patient"], nil }})
	require.NoError(t, err)
	defer kr.Close()
	codecs := map[string]*fieldenc.Codec[chart]{}
	rows := map[string]chart{}
	for _, p := range []string{"A", "B"} {
		tbl, err := fieldenc.New(fieldenc.Config{Keys: kr, BranchKeyID: "patient-" + p, Table: "charts"})
		require.NoError(t, err)
		codecs[p], err = fieldenc.NewCodec[chart](tbl)
		require.NoError(t, err)
		c := newChart("row-"+p, "MRN-"+p)
		require.NoError(t, codecs[p].Seal(ctx, &c))
		rows[p] = stored(t, c)
		_, err = codecs[p].IndexValues(ctx, "ssn_bidx", "123456789")
		require.NoError(t, err)
	}

	require.NoError(t, testkeys.Custodian(t, te.Keys).DestroyKey(ctx, "patient-A"))
	time.Sleep(testTTL + 20*time.Millisecond) // every cache lifetime has passed
	a := rows["A"]
	requireFieldDestroyed(t, codecs["A"].Open(ctx, &a))
	_, err = codecs["A"].IndexValues(ctx, "ssn_bidx", "123456789")
	requireFieldDestroyed(t, err)
	b := rows["B"]
	require.NoError(t, codecs["B"].Open(ctx, &b))
	require.Equal(t, "MRN-B", plain(b.MRN))
	idx, err := codecs["B"].IndexValues(ctx, "ssn_bidx", "123456789")
	require.NoError(t, err)
	require.Equal(t, []any{rows["B"].SSNIndex}, idx)
}

// plain is the opened value of s ("" if it holds none).
func plain[T fieldenc.Plain](s fieldenc.Sealed[T]) T {
	v, _ := s.Get()
	return v
}
