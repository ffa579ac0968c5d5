package keyring_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/phicrypt/phicrypt/keyring"
)

// Three custodians each hold one wrapping key (here raw AES keys; in
// production, KMS keys in different accounts: keyring.NewKMS with
// Generator set to each key). Any two of them recover a message's data key;
// one alone cannot.
func ExampleNewThreshold() {
	ctx := context.Background()
	var custodians []keyring.Keyring
	for _, name := range []string{"alice", "bob", "carol"} {
		key := make([]byte, 32)
		rand.Read(key)
		kr, err := keyring.NewRawAES("custodians", name, key)
		if err != nil {
			panic(err)
		}
		custodians = append(custodians, kr)
	}
	threshold, err := keyring.NewThreshold(keyring.ThresholdConfig{Threshold: 2, Children: custodians})
	if err != nil {
		panic(err)
	}
	ec := map[string]string{"tenant": "general-hospital"}
	em := &keyring.EncryptionMaterials{SuiteID: 0x0478, DataKeyLength: 32, EncryptionContext: ec}
	if err := threshold.OnEncrypt(ctx, em); err != nil {
		panic(err)
	}
	fmt.Println(threshold, "wrote", len(em.EncryptedDataKeys), "encrypted data keys of provider", em.EncryptedDataKeys[0].ProviderID)

	// Alice's and Carol's shares: enough.
	dm := &keyring.DecryptionMaterials{SuiteID: 0x0478, DataKeyLength: 32, EncryptionContext: ec}
	err = threshold.OnDecrypt(ctx, dm, []keyring.EncryptedDataKey{em.EncryptedDataKeys[0], em.EncryptedDataKeys[2]})
	fmt.Println("two shares:", err == nil && string(dm.DataKey) == string(em.DataKey))

	// Bob's share alone: not enough.
	dm = &keyring.DecryptionMaterials{SuiteID: 0x0478, DataKeyLength: 32, EncryptionContext: ec}
	err = threshold.OnDecrypt(ctx, dm, em.EncryptedDataKeys[1:2])
	fmt.Println("one share:", errors.Is(err, keyring.ErrThresholdShares))
	// Output:
	// Threshold(2 of 3) wrote 3 encrypted data keys of provider phicrypt-threshold
	// two shares: true
	// one share: true
}
