package fieldenc

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/stretchr/testify/require"
	daead "github.com/tink-crypto/tink-go/v2/daead/subtle"
)

// A deterministic field is Tink's AES-SIV, byte for byte, under the
// column's derived key with the column's associated data: Tink is the
// oracle, run here on the same key and inputs.
func TestDeterministicMatchesTink(t *testing.T) {
	ctx := context.Background()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	client := l.Client("svc")
	key, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	store, err := keystore.OpenFileStore(t.TempDir())
	require.NoError(t, err)
	defer store.Close()
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: client,
		KMSKeyARN: aws.ToString(key.KeyMetadata.Arn), LogicalStoreName: "tink-test"})
	require.NoError(t, err)
	v, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "app")
	require.NoError(t, err)
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "app",
		CacheTTL: time.Minute, MaxUsesPerVersion: 1 << 20})
	require.NoError(t, err)
	tbl, err := New(Config{Keys: kr, BranchKeyID: "app", Table: "patients"})
	require.NoError(t, err)
	col, err := tbl.Column("mrn", Deterministic)
	require.NoError(t, err)

	var sivKey [64]byte
	require.NoError(t, tbl.deriveKey(ctx, v.Version, sivKey[:], purposeDeterministic, "mrn"))
	oracle, err := daead.NewAESSIV(sivKey[:])
	require.NoError(t, err)
	ref, err := refOf(v.Version)
	require.NoError(t, err)
	ad := append([]byte{versionDeterministic}, ref[:]...)
	ad = appendLenPrefixed(ad, []byte("patients"))
	ad = appendLenPrefixed(ad, []byte("mrn"))
	// Past 128 bytes, the CTR keystream takes a second batch.
	for n := range 300 {
		pt := make([]byte, n)
		rand.Read(pt)
		got, err := col.Seal(ctx, nil, pt, nil)
		require.NoError(t, err)
		want, err := oracle.EncryptDeterministically(pt, ad)
		require.NoError(t, err)
		require.Equal(t, ad[:headerLen], got[:headerLen])
		require.True(t, bytes.Equal(want, got[headerLen:]), "length %d", n)
		opened, err := oracle.DecryptDeterministically(got[headerLen:], ad)
		require.NoError(t, err)
		require.Equal(t, pt, opened)
		// And the column opens what Tink sealed.
		back, err := col.Open(ctx, nil, append(bytes.Clone(ad[:headerLen]), want...), nil)
		require.NoError(t, err)
		require.True(t, bytes.Equal(pt, back), "length %d", n)
	}
}
