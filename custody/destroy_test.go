package custody_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/stretchr/testify/require"
)

// DestroyVersion and DestroyKey pass the store's rules through, say
// "custody:" once, name the key by fingerprint only, and leave a destroyed
// key out of RotateDue's rotations and failures.
func TestDestroy(t *testing.T) {
	ctx := context.Background()
	store, now, bk := rotationSetup(t)
	custodian := testkeys.Custodian(t, bk)
	v1, err := custodian.CreateBranchKey(ctx, "patient-MRN-0042")
	require.NoError(t, err)
	_, err = custodian.CreateBranchKey(ctx, "patient-MRN-0043")
	require.NoError(t, err)

	err = custodian.DestroyVersion(ctx, "patient-MRN-0042", v1.Version)
	require.ErrorIs(t, err, keystore.ErrConflict, "the active version: rotate first")
	require.True(t, strings.HasPrefix(err.Error(), "custody: destroying version "), err.Error())
	require.Equal(t, 1, strings.Count(err.Error(), "custody:"))
	require.NotContains(t, err.Error(), "MRN-0042")
	require.ErrorIs(t, custodian.DestroyVersion(ctx, "patient-MRN-0042", "not-a-uuid"), keystore.ErrInvalid)
	require.ErrorIs(t, custodian.DestroyKey(ctx, ""), keystore.ErrInvalid)
	err = custodian.DestroyKey(ctx, "patient-MRN-9999")
	require.ErrorIs(t, err, keystore.ErrNotFound)
	require.NotContains(t, err.Error(), "MRN-9999")

	_, err = custodian.Rotate(ctx, "patient-MRN-0042")
	require.NoError(t, err)
	require.NoError(t, custodian.DestroyVersion(ctx, "patient-MRN-0042", v1.Version))
	require.NoError(t, custodian.DestroyVersion(ctx, "patient-MRN-0042", v1.Version), "a retry")
	require.NoError(t, custodian.DestroyKey(ctx, "patient-MRN-0042"))
	require.NoError(t, custodian.DestroyKey(ctx, "patient-MRN-0042"), "a retry")
	_, err = store.Active(ctx, "patient-MRN-0042")
	require.ErrorIs(t, err, keystore.ErrDestroyed)

	now.Add(int64(400 * 24 * time.Hour))
	rep, err := custodian.RotateDue(ctx, custody.RotationPolicy{MaxAge: 365 * 24 * time.Hour})
	require.NoError(t, err, "a destroyed key is not a failure")
	require.Equal(t, custody.RotationReport{Checked: 2, Rotated: 1}, rep)
}

// Rewrap moves every live version and counts destroyed ones, which hold no
// material, without a KMS call; a destroyed version is no minimum
// decryption version.
func TestRewrapSkipsDestroyed(t *testing.T) {
	ctx := context.Background()
	e := testkeys.New(t, testkeys.Options{})
	v1 := e.Create(t, "patient-A")
	custodian := testkeys.Custodian(t, e.Keys)
	_, err := custodian.Rotate(ctx, "patient-A")
	require.NoError(t, err)
	require.NoError(t, custodian.DestroyVersion(ctx, "patient-A", v1.Version))
	_, err = custodian.SetMinDecryptionVersion(ctx, "patient-A", v1.Version)
	require.ErrorIs(t, err, keystore.ErrInvalid)

	key, err := e.Client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	newARN := aws.ToString(key.KeyMetadata.Arn)
	calls := e.KMS.Calls("ReEncrypt")
	rep, err := custody.Rewrap(ctx, e.Store, e.Client, newARN, custody.RewrapOptions{EncryptionContext: e.Keys.EncryptionContext})
	require.NoError(t, err)
	require.Equal(t, custody.RewrapReport{Total: 2, Rewrapped: 1, Destroyed: 1}, rep)
	require.Equal(t, calls+1, e.KMS.Calls("ReEncrypt"))
	got, err := e.Store.Get(ctx, "patient-A", v1.Version)
	require.NoError(t, err)
	require.Equal(t, keystore.StateDestroyed, got.State)
	require.Empty(t, got.Ciphertext)
}
