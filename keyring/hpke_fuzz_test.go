package keyring_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/phicrypt/phicrypt/keyring"
)

// Attacker-made escrow EDKs: whatever the provider info and ciphertext,
// OnDecrypt returns an error or the data key, never panics, and unwraps
// nothing but the genuine key.
func FuzzHPKEEscrowOnDecrypt(f *testing.F) {
	priv, err := keyring.GenerateHPKEEscrowKey()
	if err != nil {
		f.Fatal(err)
	}
	rec, err := keyring.NewHPKEEscrowRecovery(escrowName, priv)
	if err != nil {
		f.Fatal(err)
	}
	em := encMaterials(phiContext)
	if err := rec.OnEncrypt(context.Background(), em); err != nil {
		f.Fatal(err)
	}
	edk := em.EncryptedDataKeys[0]
	f.Add(edk.ProviderInfo, edk.Ciphertext)
	f.Add(edk.ProviderInfo, edk.Ciphertext[:hpkeEncSize])
	f.Add(edk.ProviderInfo[:3], edk.Ciphertext)
	f.Add([]byte{}, []byte{})
	f.Add(append([]byte{0x01, 0x64, 0x7A, 0x00, 0x01, 0x00, 0x03}, escrowName...), edk.Ciphertext)
	f.Fuzz(func(t *testing.T, info, ct []byte) {
		dm := decMaterials(phiContext)
		err := rec.OnDecrypt(context.Background(), dm, []keyring.EncryptedDataKey{{ProviderID: keyring.HPKEEscrowProviderID, ProviderInfo: info, Ciphertext: ct}})
		if err != nil {
			if dm.DataKey != nil {
				t.Fatal("a failed unwrap set a data key")
			}
			return
		}
		if !bytes.Equal(info, edk.ProviderInfo) || !bytes.Equal(ct, edk.Ciphertext) || !bytes.Equal(dm.DataKey, em.DataKey) {
			t.Fatal("an EDK other than the genuine one unwrapped")
		}
	})
}
