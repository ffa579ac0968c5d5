package keyring_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/stretchr/testify/require"
)

// TestBranchKeyEscrowRecordLayout reads a record a service wrote field by
// field at the offsets docs/FORMAT.md ("Branch-key escrow records") gives,
// then opens its copy with crypto/hpke alone, under the HPKE info built
// from that section and section 7: the record's layout and the escrow
// context are checked without the keyring's code. HPKE is randomized, so
// the record is made at test time rather than stored as a vector.
func TestBranchKeyEscrowRecordLayout(t *testing.T) {
	fs, err := keystore.OpenFileStore(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { fs.Close() })
	w := newEscrowWorld(t, fs)
	const name = "escrow-layout"
	priv, svc := escrowPair(t, name)
	v := w.create(escrowCanaryID)
	require.NoError(t, encryptWith(t, w.service(escrowCanaryID, svc)))

	require.Equal(t, "version-escrow", keyring.BranchKeyEscrowRecordKind)
	require.Equal(t, v.Version+"/"+escrowCanaryID, keyring.BranchKeyEscrowRecordName(escrowCanaryID, v.Version))
	require.Len(t, v.Version, 36)
	rec, err := w.recs.GetRecord(t.Context(), "version-escrow", v.Version+"/"+escrowCanaryID)
	require.NoError(t, err)
	b := rec.Value

	digest := sha256.Sum256(priv.PublicKey().Bytes())
	require.Equal(t, digest, priv.PublicKey().Digest())
	require.Equal(t, digest, svc.KeyDigest())
	require.Equal(t, digest, custody.EscrowKeyDigest(priv.PublicKey()))

	providerInfo := append([]byte{0x01, 0x64, 0x7a, 0x00, 0x01, 0x00, 0x02}, name...)
	const ctLen = 1120 + 32 + 16
	off := 0
	next := func(n int) []byte { f := b[off : off+n]; off += n; return f }
	u16 := func() int { return int(binary.BigEndian.Uint16(next(2))) }
	require.Equal(t, 2+32+32+2+13+2+len(providerInfo)+2+ctLen, len(b), "one copy")
	require.Equal(t, []byte{0x01}, next(1), "version")
	require.Equal(t, []byte{0x01}, next(1), "count")
	require.Equal(t, digest[:], next(32), "escrow key digest")
	check := next(32)
	require.Equal(t, 13, u16())
	require.Equal(t, "phicrypt-hpke", string(next(13)))
	require.Equal(t, len(providerInfo), u16())
	require.Equal(t, providerInfo, next(len(providerInfo)))
	require.Equal(t, ctLen, u16())
	ct := next(ctLen)
	require.Equal(t, len(b), off)

	// The escrow context: the version's KMS encryption context without
	// kms-arn, plus phicrypt-escrow-of.
	ec := map[string]string{
		"branch-key-id":      escrowCanaryID,
		"type":               "branch:version:" + v.Version,
		"create-time":        v.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000Z"),
		"tablename":          hierStoreName,
		"hierarchy-version":  "1",
		"phicrypt-escrow-of": "branch-key-version",
	}
	kmsContext := w.bk.EncryptionContext(v)
	require.Equal(t, v.KMSKeyARN, kmsContext["kms-arn"])
	delete(kmsContext, "kms-arn")
	kmsContext["phicrypt-escrow-of"] = "branch-key-version"
	require.Equal(t, ec, kmsContext)

	seed := priv.RevealSeed()
	defer seed.Wipe()
	k, err := hpke.MLKEM768X25519().NewPrivateKey(seed)
	require.NoError(t, err)
	material, err := hpke.Open(k, hpke.HKDFSHA256(), hpke.AES256GCM(), escrowInfo("phicrypt-hpke", providerInfo, ec), ct)
	require.NoError(t, err)
	want, err := w.bk.Unwrap(t.Context(), v)
	require.NoError(t, err)
	defer want.Wipe()
	require.True(t, bytes.Equal(want, material), "the copy is the version's material")

	// The key check: HMAC-SHA-256 keyed by the material over the label,
	// the escrow key digest, the encrypted data key's three fields (each
	// with its 2-byte length) and the serialized escrow context.
	mac := hmac.New(sha256.New, material)
	mac.Write([]byte("phicrypt branch-key escrow check v1\x00"))
	mac.Write(digest[:])
	for _, f := range [][]byte{[]byte("phicrypt-hpke"), providerInfo, ct} {
		mac.Write(binary.BigEndian.AppendUint16(nil, uint16(len(f))))
		mac.Write(f)
	}
	mac.Write(serializeContext(ec))
	require.Equal(t, mac.Sum(nil), check, "key check")

	delete(ec, "phicrypt-escrow-of")
	_, err = hpke.Open(k, hpke.HKDFSHA256(), hpke.AES256GCM(), escrowInfo("phicrypt-hpke", providerInfo, ec), ct)
	require.Error(t, err, "phicrypt-escrow-of is bound")
}
