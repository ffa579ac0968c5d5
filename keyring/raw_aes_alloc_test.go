package keyring_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"testing"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/stretchr/testify/require"
)

// RawAES wraps into one allocation (provider info, generated data key,
// wrapped key) and keeps no buffer of the context's serialization: wrapping
// into materials with room for the EDK allocates once, unwrapping once (the
// data key).
func TestRawAESAllocatesOneBuffer(t *testing.T) {
	if rawAESRaceBuild {
		t.Skip("the race detector allocates; scripts/test.sh runs this without -race")
	}
	ctx := context.Background()
	kr := newRawAES(t, "ns", "key-1", bytes.Repeat([]byte{7}, 32))
	edks := make([]keyring.EncryptedDataKey, 0, 1)
	var m keyring.EncryptionMaterials
	wrap := testing.AllocsPerRun(200, func() {
		m = keyring.EncryptionMaterials{SuiteID: testSuite, DataKeyLength: dataKeyLength, EncryptionContext: phiContext, EncryptedDataKeys: edks[:0]}
		if err := kr.OnEncrypt(ctx, &m); err != nil {
			t.Fatal(err)
		}
	})
	require.LessOrEqual(t, wrap, 1.0, "OnEncrypt")
	edk := m.EncryptedDataKeys[0]
	var d keyring.DecryptionMaterials
	unwrap := testing.AllocsPerRun(200, func() {
		d = keyring.DecryptionMaterials{SuiteID: testSuite, DataKeyLength: dataKeyLength, EncryptionContext: phiContext}
		if err := kr.OnDecrypt(ctx, &d, m.EncryptedDataKeys); err != nil {
			t.Fatal(err)
		}
	})
	require.LessOrEqual(t, unwrap, 1.0, "OnDecrypt")
	require.Equal(t, []byte(m.DataKey), []byte(d.DataKey))

	// The shared buffer's parts do not overlap, and appending to one of
	// them cannot overwrite another.
	info, ct := edk.ProviderInfo, edk.Ciphertext
	require.Equal(t, len(info), cap(info))
	require.Equal(t, len(ct), cap(ct))
	require.Equal(t, dataKeyLength, cap(m.DataKey))
	iv := info[len(info)-12:]
	block, err := aes.NewCipher(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	gcm, err := cipher.NewGCM(block)
	require.NoError(t, err)
	dk, err := gcm.Open(nil, iv, ct, serializeContext(phiContext))
	require.NoError(t, err, "an independent AES-GCM opens the wrapped key")
	require.Equal(t, []byte(m.DataKey), dk)
	require.False(t, bytes.Equal(iv, dk[:12]), "the IV and the data key are different bytes of the one read")
}

// A data key the materials already hold (a multi keyring's second wrap) is
// wrapped as it is and stays the materials' own slice.
func TestRawAESWrapsAGivenDataKey(t *testing.T) {
	ctx := context.Background()
	kr := newRawAES(t, "ns", "key-1", bytes.Repeat([]byte{7}, 32))
	given := keyring.Secret(bytes.Repeat([]byte{0x42}, dataKeyLength))
	m := encMaterials(phiContext)
	m.DataKey = given
	require.NoError(t, kr.OnEncrypt(ctx, m))
	require.Same(t, &given[0], &m.DataKey[0])
	d := decMaterials(phiContext)
	require.NoError(t, kr.OnDecrypt(ctx, d, m.EncryptedDataKeys))
	require.Equal(t, []byte(given), []byte(d.DataKey))
}
