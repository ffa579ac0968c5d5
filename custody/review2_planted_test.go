package custody_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// review2SerializeContext is the message header's serialization of an
// encryption context (FORMAT.md section 1): pair count, then the pairs
// sorted by key bytes, each key and value with a 2-byte big-endian length.
func review2SerializeContext(ec map[string]string) []byte {
	keys := make([]string, 0, len(ec))
	for k := range ec {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := binary.BigEndian.AppendUint16(nil, uint16(len(keys)))
	for _, k := range keys {
		out = binary.BigEndian.AppendUint16(out, uint16(len(k)))
		out = append(out, k...)
		out = binary.BigEndian.AppendUint16(out, uint16(len(ec[k])))
		out = append(out, ec[k]...)
	}
	return out
}

// review2PlantCopy is what any writer of the per-version records can
// build from public values only (the escrow public key, the version's
// row, the logical store name), following FORMAT.md section 11: an escrow
// record holding one copy of material of the writer's choosing, with a
// key check that matches it.
func review2PlantCopy(t *testing.T, bk *keyring.BranchKeys, pub *keyring.HPKEEscrowPublicKey, keyName string, v keystore.BranchKeyVersion, material []byte) []byte {
	ec := bk.EncryptionContext(v)
	delete(ec, "kms-arn")
	ec["phicrypt-escrow-of"] = "branch-key-version"
	digest := pub.Digest()
	esc, err := keyring.NewHPKEEscrow(keyName, pub)
	require.NoError(t, err)
	m := keyring.EncryptionMaterials{DataKeyLength: 32, EncryptionContext: ec, DataKey: keyring.Secret(bytes.Clone(material))}
	require.NoError(t, esc.OnEncrypt(t.Context(), &m))
	edk := m.EncryptedDataKeys[len(m.EncryptedDataKeys)-1]
	mac := hmac.New(sha256.New, material)
	mac.Write([]byte("phicrypt branch-key escrow check v1\x00"))
	mac.Write(digest[:])
	for _, f := range [][]byte{[]byte(edk.ProviderID), edk.ProviderInfo, edk.Ciphertext} {
		mac.Write(binary.BigEndian.AppendUint16(nil, uint16(len(f))))
		mac.Write(f)
	}
	mac.Write(review2SerializeContext(ec))
	out := []byte{0x01, 0x01}
	out = append(out, digest[:]...)
	out = mac.Sum(out)
	for _, f := range [][]byte{[]byte(edk.ProviderID), edk.ProviderInfo, edk.Ciphertext} {
		out = binary.BigEndian.AppendUint16(out, uint16(len(f)))
		out = append(out, f...)
	}
	return out
}

// TestReview2Defect_PlantedActiveMaterialUsedForWrites: the worst case of
// TestReview2Defect_RecoveredActiveVersionWrittenUnder. Once the KMS key
// is lost no service can unwrap the version any more, so nothing can
// notice a copy planted after that: a writer of the per-version records
// (a PostgreSQL service role) replaces the active version's copy with one
// of material it chose and a key check it computed from that material
// (the check proves only that the copy is self-consistent). The recovery
// reports it Recovered (not Damaged), and with `--no-rotate`
// (Rotate false) services then write new PHI under material the attacker
// knows, although RecoveredVersionRecordKind's godoc says a hierarchical
// keyring never writes under a version so marked (keyring/branchkey_cache.go,
// active, checks the mark only for an older version chosen in a
// propagation window). The old data under the version is lost too, and
// reported as recovered. FORMAT.md/OPERATIONS.md acknowledge that planted
// material can pass recovery; the keyring's missing check is what turns
// it into disclosure of new data.
//
// Fixed: a keyring refuses to write under an active version marked
// recovered (keyring.ErrVersionRecovered) until the key is rotated. That
// the planted material passes recovery is a documented limit.
func TestReview2PlantedActiveMaterialNotWrittenUnder(t *testing.T) {
	ctx := t.Context()
	e := newReviewEnv(t, "sqlite", "phicrypt-test")
	_, err := e.admin.CreateBranchKey(ctx, "key-a")
	require.NoError(t, err)
	_, err = e.svcKeys.Escrow(ctx, e.esc, "")
	require.NoError(t, err)
	review2LoseOldKey(t, e)

	v := e.versions(t, "key-a")[0]
	chosen := make([]byte, 32)
	rand.Read(chosen)
	e.replaceRecord(t, v, review2PlantCopy(t, e.svcKeys, e.escrowKey.PublicKey(), "escrow-2026", v, chosen))

	rep, err := custody.RecoverBranchKeys(ctx, e.custodianKeys(t), e.recovery, e.custodian, e.newARN, custody.RecoverBranchKeysOptions{})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Recovered, "the planted copy passes the key check")
	got, err := e.store.Get(ctx, "key-a", v.Version)
	require.NoError(t, err)
	k, err := e.svcKeys.OpenEscrow(ctx, e.recovery, got)
	require.NoError(t, err)
	require.Equal(t, chosen, []byte(k), "the version now holds the attacker's material")
	k.Wipe()

	bk := e.branchKeysOnNewKey(t)
	h := serviceKeyringOver(t, bk)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: h})
	require.NoError(t, err)
	_, encErr := enc.Encrypt(ctx, []byte("new PHI"), map[string]string{"tenant": "key-a"})
	after, err := e.store.Get(ctx, "key-a", v.Version)
	require.NoError(t, err)
	require.ErrorIs(t, encErr, keyring.ErrVersionRecovered)
	require.Equal(t, got.Usage, after.Usage, "new PHI was written under material the attacker chose")
}

// serviceKeyringOver is a service's keyring over bk counting every use in
// the store, choosing the branch key by the "tenant" context key.
func serviceKeyringOver(t *testing.T, bk *keyring.BranchKeys) *keyring.Hierarchical {
	h, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, CacheTTL: 1 << 40, PropagationWindow: 1,
		MaxUsesPerVersion: 1 << 20, UsageBlock: 1,
		BranchKeyIDSupplier: func(ec map[string]string) (string, error) { return ec["tenant"], nil }})
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h
}
