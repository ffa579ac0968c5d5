package phicrypt_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

// End to end: messages under the hierarchical keyring, one branch key per
// tenant in a file store, rotated mid-way; old messages keep decrypting,
// KMS is called once per branch key version, not per message.
func TestHierarchicalKeyringMessages(t *testing.T) {
	ctx := context.Background()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	client := l.Client("svc")
	key, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	store, err := keystore.OpenFileStore(t.TempDir())
	require.NoError(t, err)
	defer store.Close()
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: client,
		KMSKeyARN: aws.ToString(key.KeyMetadata.Arn), LogicalStoreName: "phicrypt-test"})
	require.NoError(t, err)
	tenants := []string{"general-hospital", "childrens-clinic"}
	for _, tenant := range tenants {
		_, err := testkeys.Custodian(t, bk).CreateBranchKey(ctx, "tenant-"+tenant)
		require.NoError(t, err)
	}
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, CacheTTL: time.Hour,
		BranchKeyIDSupplier: func(ec map[string]string) (string, error) {
			if ec["tenant"] == "" {
				return "", fmt.Errorf("no tenant in the encryption context")
			}
			return "tenant-" + ec["tenant"], nil
		}})
	require.NoError(t, err)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr})
	require.NoError(t, err)

	var before [][]byte
	for i := range 20 {
		msg, err := enc.Encrypt(ctx, []byte(fmt.Sprint("record ", i)), map[string]string{"tenant": tenants[i%2]})
		require.NoError(t, err)
		before = append(before, msg)
	}
	require.Equal(t, int64(2), l.Calls("Decrypt"), "one KMS call per branch key, not per message")
	_, err = testkeys.Custodian(t, bk).Rotate(ctx, "tenant-general-hospital")
	require.NoError(t, err)
	after, err := enc.Encrypt(ctx, []byte("after rotation"), map[string]string{"tenant": "general-hospital"})
	require.NoError(t, err)
	for i, msg := range before {
		pt, _, err := enc.Decrypt(ctx, msg, map[string]string{"tenant": tenants[i%2]})
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint("record ", i), string(pt))
	}
	pt, _, err := enc.Decrypt(ctx, after, nil)
	require.NoError(t, err)
	require.Equal(t, "after rotation", string(pt))
	_, err = enc.Encrypt(ctx, []byte("x"), nil)
	require.Error(t, err, "the supplier needs a tenant")

	// A tenant's message does not open as another tenant's.
	forged := map[string]string{"tenant": "childrens-clinic"}
	_, _, err = enc.Decrypt(ctx, before[0], forged)
	require.ErrorIs(t, err, phicrypt.ErrContext)
}
