package custody_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/stretchr/testify/require"
)

// vectorRequest is docs/FORMAT.md's worked example of a request.
func vectorRequest() *custody.Request {
	r := &custody.Request{
		Change:   custody.Change{Action: custody.ActionDestroyVersion, BranchKeyID: "tenant-1", Version: "0b6a3c3e-5f7e-4b61-9d2a-6f1f4a0e8c11"},
		Proposer: "alice",
		Expiry:   time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC),
	}
	for i := range r.PolicyDigest {
		r.PolicyDigest[i] = 0xd0 + byte(i%16)
	}
	for i := range r.Nonce {
		r.Nonce[i] = byte(i)
	}
	return r
}

const requestVector = "01" + // version
	"06" + // action: destroy-version
	"05" + "616c696365" + // proposer "alice"
	"0008" + "74656e616e742d31" + // branch key id "tenant-1"
	"24" + "30623661336333652d356637652d346236312d396432612d366631663461306538633131" + // version
	"0000" + // no KMS key ARN
	"d0d1d2d3d4d5d6d7d8d9dadbdcdddedfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf" + // policy digest
	"0000000069a55190" + // expiry 2026-03-02T09:00:00Z
	"000102030405060708090a0b0c0d0e0f" + // nonce
	"000000" // no new policy

func TestRequestWorkedExample(t *testing.T) {
	r := vectorRequest()
	enc, err := r.MarshalBinary()
	require.NoError(t, err)
	require.Equal(t, requestVector, hex.EncodeToString(enc))
	id, err := r.ID()
	require.NoError(t, err)
	require.Equal(t, sha256.Sum256(enc), [32]byte(id))
	back, err := custody.ParseRequest(enc)
	require.NoError(t, err)
	require.Equal(t, r, back)

	alice, err := custody.NewSigner("alice", ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)))
	require.NoError(t, err)
	a, err := alice.Approve(r)
	require.NoError(t, err)
	require.True(t, ed25519.Verify(alice.Principal().PublicKey, append([]byte("phicrypt change request v1\x00"), enc...), a.Signature))
	require.Equal(t, id, a.Request)
	aenc, err := a.MarshalBinary()
	require.NoError(t, err)
	require.Equal(t, "01"+"05"+"616c696365"+id.String()+hex.EncodeToString(a.Signature), hex.EncodeToString(aenc))
	require.Equal(t, approvalSignatureVector, hex.EncodeToString(a.Signature), "Ed25519 signatures are deterministic")
	back2, err := custody.ParseApproval(aenc)
	require.NoError(t, err)
	require.Equal(t, a, back2)
}

const approvalSignatureVector = "443f286e966cbbf5d17b9063757929f35ee4e0cb5d7fff20ee864aaa90292b878b182d7b1bdad74a74af831123b6e2606aa72a4982dc68f304fb43bb4ba93101"

func TestParseRequestRefusesNonCanonical(t *testing.T) {
	enc, err := hex.DecodeString(requestVector)
	require.NoError(t, err)
	for n := range len(enc) {
		_, err := custody.ParseRequest(enc[:n])
		require.ErrorIs(t, err, custody.ErrInvalid, "truncated to %d bytes", n)
	}
	for name, bad := range map[string][]byte{
		"trailing byte":                 append(bytes.Clone(enc), 0),
		"version 2":                     setByte(enc, 0, 2),
		"action 0":                      setByte(enc, 1, 0),
		"action decrypt (not a change)": setByte(enc, 1, byte(custody.ActionDecrypt)),
		"over the cap":                  make([]byte, 1<<21),
	} {
		_, err := custody.ParseRequest(bad)
		require.ErrorIs(t, err, custody.ErrInvalid, name)
	}
	for name, bad := range map[string][]byte{
		"empty":         nil,
		"version 2":     append([]byte{2}, make([]byte, 101)...),
		"short":         append([]byte{1, 1, 'a'}, make([]byte, 95)...),
		"trailing byte": append(append([]byte{1, 1, 'a'}, make([]byte, 96)...), 0),
		"bad name":      append([]byte{1, 1, '\n'}, make([]byte, 96)...),
	} {
		_, err := custody.ParseApproval(bad)
		require.ErrorIs(t, err, custody.ErrInvalid, name)
	}
}

// Each change carries the fields its action uses, and no other.
func TestChangeFields(t *testing.T) {
	const v = "0b6a3c3e-5f7e-4b61-9d2a-6f1f4a0e8c11"
	const arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	p := validPolicy()
	for _, tc := range []struct {
		c  custody.Change
		ok bool
	}{
		{custody.Change{Action: custody.ActionCreate, BranchKeyID: "k"}, true},
		{custody.Change{Action: custody.ActionCreate}, false},
		{custody.Change{Action: custody.ActionRotate, BranchKeyID: "k", Version: v}, false},
		{custody.Change{Action: custody.ActionRetire, BranchKeyID: "k", Version: v}, true},
		{custody.Change{Action: custody.ActionRetire, BranchKeyID: "k"}, false},
		{custody.Change{Action: custody.ActionDestroyVersion, BranchKeyID: "k", Version: "V1"}, false},
		{custody.Change{Action: custody.ActionDisable, BranchKeyID: "k"}, true},
		{custody.Change{Action: custody.ActionEnable, BranchKeyID: "k", Version: v}, true},
		{custody.Change{Action: custody.ActionDestroyKey, BranchKeyID: "k", KMSKeyARN: arn}, false},
		{custody.Change{Action: custody.ActionRewrap, BranchKeyID: "k", KMSKeyARN: arn}, true},
		{custody.Change{Action: custody.ActionRewrap, KMSKeyARN: arn}, true},
		{custody.Change{Action: custody.ActionRewrap, KMSKeyARN: "alias/x"}, false},
		{custody.Change{Action: custody.ActionRewrap, BranchKeyID: "k"}, false},
		{custody.Change{Action: custody.ActionSetPolicy, NewPolicy: p}, true},
		{custody.Change{Action: custody.ActionSetPolicy, NewPolicy: p, BranchKeyID: "k"}, false},
		{custody.Change{Action: custody.ActionSetPolicy}, false},
		{custody.Change{Action: custody.ActionRotate, BranchKeyID: "k", NewPolicy: p}, false},
		{custody.Change{Action: custody.ActionDecrypt, BranchKeyID: "k"}, false},
		{custody.Change{Action: custody.ActionRotate, BranchKeyID: strings.Repeat("k", 257)}, false},
	} {
		r := &custody.Request{Change: tc.c, Proposer: "alice", Expiry: time.Unix(1e9, 0)}
		_, err := r.MarshalBinary()
		if tc.ok {
			require.NoError(t, err, "%s", tc.c.Action)
		} else {
			require.ErrorIs(t, err, custody.ErrInvalid, "%s", tc.c.Action)
		}
	}
	r := vectorRequest()
	r.Expiry = time.Time{}
	_, err := r.MarshalBinary()
	require.ErrorIs(t, err, custody.ErrInvalid, "no expiry")
}

// A set-policy request carries the policy's encoding and round-trips.
func TestSetPolicyRequestRoundTrips(t *testing.T) {
	r := vectorRequest()
	r.Change = custody.Change{Action: custody.ActionSetPolicy, NewPolicy: validPolicy()}
	enc, err := r.MarshalBinary()
	require.NoError(t, err)
	back, err := custody.ParseRequest(enc)
	require.NoError(t, err)
	again, err := back.MarshalBinary()
	require.NoError(t, err)
	require.Equal(t, enc, again)
	require.Equal(t, "tenant-*", back.NewPolicy.Scope)
}

// Nothing prints a signer's private key, a request's branch key id or a
// key's bytes.
func TestRequestAndSignerPrintRedacted(t *testing.T) {
	seed := bytes.Repeat([]byte{0x5a}, 32)
	key := ed25519.NewKeyFromSeed(seed)
	s, err := custody.NewSigner("alice", key)
	require.NoError(t, err)
	r := vectorRequest()
	for _, v := range []any{s, *s, r, *r, r.Change} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
			out := fmt.Sprintf(verb, v)
			require.NotContains(t, out, hex.EncodeToString(seed))
			require.NotContains(t, out, hex.EncodeToString(key))
			require.NotContains(t, out, "tenant-1")
		}
		js, err := json.Marshal(v)
		require.NoError(t, err)
		require.NotContains(t, string(js), "tenant-1")
	}
	_, err = custody.NewSigner("alice", key[:10])
	require.ErrorIs(t, err, custody.ErrInvalid)
	_, err = custody.NewSigner("", key)
	require.ErrorIs(t, err, custody.ErrInvalid)
}

func FuzzParseRequest(f *testing.F) {
	enc, _ := hex.DecodeString(requestVector)
	f.Add(enc)
	r := vectorRequest()
	r.Change = custody.Change{Action: custody.ActionSetPolicy, NewPolicy: validPolicy()}
	if b, err := r.MarshalBinary(); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := custody.ParseRequest(b)
		if err != nil {
			return
		}
		again, err := r.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("ParseRequest accepted a non-canonical encoding (%v)", err)
		}
	})
}

// A nil request is refused, never a panic.
func TestNilRequestIsRefused(t *testing.T) {
	_, key, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	s, err := custody.NewSigner("alice", key)
	require.NoError(t, err)
	_, err = s.Approve(nil)
	require.ErrorIs(t, err, custody.ErrInvalid)
	var r *custody.Request
	_, err = r.MarshalBinary()
	require.ErrorIs(t, err, custody.ErrInvalid)
	_, err = r.ID()
	require.ErrorIs(t, err, custody.ErrInvalid)
}
