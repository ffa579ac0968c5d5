package custody_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/audit"
	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
)

const recoverTo = "arn:aws:kms:us-east-1:111122223333:key/2b0c3c9e-0000-4000-8000-000000000002"

// splitEscrow makes an escrow key and splits it m of n, returning the
// shares as their custodians' files hold them.
func splitEscrow(t *testing.T, n, m int) (*keyring.HPKEEscrowPrivateKey, [][]byte) {
	key, err := keyring.GenerateHPKEEscrowKey()
	require.NoError(t, err)
	shares, err := custody.SplitEscrowKey("escrow-2026", key, n, m)
	require.NoError(t, err)
	require.Len(t, shares, n)
	out := make([][]byte, n)
	for i, s := range shares {
		require.Equal(t, i+1, s.Index())
		require.Equal(t, m, s.Threshold())
		require.Equal(t, n, s.Shares())
		out[i] = s.RevealEncoding()
	}
	return key, out
}

func parseShares(t *testing.T, encs ...[]byte) []*custody.EscrowShare {
	out := make([]*custody.EscrowShare, len(encs))
	for i, b := range encs {
		s, err := custody.ParseEscrowShare(b)
		require.NoError(t, err)
		out[i] = s
	}
	return out
}

func TestEscrowSharesReassembleTheKey(t *testing.T) {
	key, encs := splitEscrow(t, 5, 3)
	want := custody.EscrowKeyDigest(key.PublicKey())
	for _, pick := range [][]int{{0, 1, 2}, {4, 2, 0}, {1, 3, 4}, {0, 1, 2, 3, 4}} {
		var chosen [][]byte
		for _, i := range pick {
			chosen = append(chosen, encs[i])
		}
		got, err := custody.CombineEscrowShares(parseShares(t, chosen...), want)
		require.NoError(t, err, "shares %v", pick)
		require.Equal(t, key.PublicKey().Bytes(), got.PublicKey().Bytes())
		seed, again := got.RevealSeed(), key.RevealSeed()
		require.Equal(t, []byte(again), []byte(seed))
	}
}

func TestEscrowSharesRefused(t *testing.T) {
	key, encs := splitEscrow(t, 3, 2)
	want := custody.EscrowKeyDigest(key.PublicKey())
	other, otherEncs := splitEscrow(t, 3, 2)
	_, sameKeyAgain := func() (*keyring.HPKEEscrowPrivateKey, [][]byte) {
		shares, err := custody.SplitEscrowKey("escrow-2026", key, 3, 2)
		require.NoError(t, err)
		return key, [][]byte{shares[1].RevealEncoding()}
	}()

	// A flipped bit anywhere fails the integrity check (or, in the version
	// byte, the version check).
	for i := range encs[0] {
		bad := bytes.Clone(encs[0])
		bad[i] ^= 0x10
		_, err := custody.ParseEscrowShare(bad)
		require.ErrorIs(t, err, custody.ErrEscrowShare, "byte %d flipped", i)
	}
	_, err := custody.ParseEscrowShare(encs[0][:len(encs[0])-1])
	require.ErrorIs(t, err, custody.ErrEscrowShare)
	_, err = custody.ParseEscrowShare(append(bytes.Clone(encs[0]), 0))
	require.ErrorIs(t, err, custody.ErrEscrowShare)

	_, err = custody.CombineEscrowShares(parseShares(t, encs[0], otherEncs[1]), want)
	require.ErrorIs(t, err, custody.ErrEscrowShare, "a share of another escrow key")
	require.Contains(t, err.Error(), "is of escrow key "+custody.EscrowKeyFingerprint(custody.EscrowKeyDigest(other.PublicKey())))
	_, err = custody.CombineEscrowShares(parseShares(t, encs[0], sameKeyAgain[0]), want)
	require.ErrorIs(t, err, custody.ErrEscrowShare, "a share of another split of the same key")
	require.Contains(t, err.Error(), "another split")
	_, err = custody.CombineEscrowShares(parseShares(t, encs[0], encs[0]), want)
	require.ErrorIs(t, err, custody.ErrEscrowShare, "one share twice")
	_, err = custody.CombineEscrowShares(parseShares(t, encs[1]), want)
	require.ErrorIs(t, err, custody.ErrTooFewShares)
	_, err = custody.CombineEscrowShares(nil, want)
	require.ErrorIs(t, err, custody.ErrTooFewShares)

	_, err = custody.SplitEscrowKey("escrow-2026", key, 3, 1)
	require.ErrorIs(t, err, custody.ErrInvalid, "a threshold of one would make each share the key")
	_, err = custody.SplitEscrowKey("escrow-2026", key, custody.MaxEscrowShares+1, 2)
	require.ErrorIs(t, err, custody.ErrInvalid)
	_, err = custody.SplitEscrowKey("escrow 2026/../x", key, 3, 2)
	require.ErrorIs(t, err, custody.ErrInvalid)
}

// A share forged with a valid integrity check (anyone can compute SHA-256)
// combines into another key, which the public key check refuses.
func TestForgedEscrowShareIsCaughtByThePublicKey(t *testing.T) {
	key, encs := splitEscrow(t, 3, 2)
	forged := bytes.Clone(encs[1])
	body := forged[:len(forged)-32]
	body[len(body)-1] ^= 1 // the last share byte
	sum := sha256.Sum256(body)
	copy(forged[len(forged)-32:], sum[:])
	_, err := custody.CombineEscrowShares(parseShares(t, encs[0], forged), custody.EscrowKeyDigest(key.PublicKey()))
	require.ErrorIs(t, err, custody.ErrEscrowKeyMismatch)
}

// Formatting a share never shows its bytes; nor do the errors.
func TestEscrowShareRedacts(t *testing.T) {
	_, encs := splitEscrow(t, 3, 2)
	s := parseShares(t, encs[0])[0]
	y := encs[0][len(encs[0])-64 : len(encs[0])-32]
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %x %s %q", s, s, s, s, s, *s), s.String()} {
		require.NotContains(t, out, fmt.Sprintf("%x", y))
		require.NotContains(t, out, fmt.Sprint(y))
		require.Contains(t, out, "share 1 of 3")
	}
	_, err := custody.ParseEscrowShare(encs[0][:len(encs[0])-3])
	require.NotContains(t, err.Error(), fmt.Sprintf("%x", y[:4]))
}

// A recover request: its encoding carries the escrow key's digest (every
// other request keeps the encoding it had), its quorum is every installed
// policy's, and AuthorizeRecovery refuses bad shares before spending it,
// one approval short, and otherwise returns the key.
func TestAuthorizeRecovery(t *testing.T) {
	w := newWorld(t, recordStore(t, "file"))
	p := w.basePolicy("*")
	p.Quorum[custody.ActionRecover] = 2
	w.install(p, w.alice, w.bob)
	key, encs := splitEscrow(t, 3, 2)
	digest := custody.EscrowKeyDigest(key.PublicKey())

	_, err := w.auth.Propose(w.ctx, "alice", custody.Change{Action: custody.ActionRecover, KMSKeyARN: recoverTo}, 3600e9)
	require.ErrorIs(t, err, custody.ErrInvalid, "recover without the escrow key")
	_, err = w.auth.Propose(w.ctx, "alice", custody.Change{Action: custody.ActionRecover, EscrowKey: digest, KMSKeyARN: recoverTo, BranchKeyID: "k"}, 3600e9)
	require.ErrorIs(t, err, custody.ErrInvalid, "recover names no branch key")
	_, err = w.auth.Propose(w.ctx, "alice", custody.Change{Action: custody.ActionRotate, BranchKeyID: testKey, EscrowKey: digest}, 3600e9)
	require.ErrorIs(t, err, custody.ErrInvalid, "only recover carries an escrow key")

	r, err := w.auth.Propose(w.ctx, "alice", custody.Change{Action: custody.ActionRecover, EscrowKey: digest, KMSKeyARN: recoverTo}, 3600e9)
	require.NoError(t, err)
	enc, err := r.MarshalBinary()
	require.NoError(t, err)
	back, err := custody.ParseRequest(enc)
	require.NoError(t, err)
	require.Equal(t, digest, back.EscrowKey)
	_, err = custody.ParseRequest(enc[:len(enc)-1])
	require.ErrorIs(t, err, custody.ErrInvalid)
	require.Contains(t, r.String(), "recover escrow key "+custody.EscrowKeyFingerprint(digest))

	// Another change's encoding has no trailing digest: appending one is refused.
	rot := w.propose(rotateKey())
	renc, err := rot.MarshalBinary()
	require.NoError(t, err)
	_, err = custody.ParseRequest(append(renc, digest[:]...))
	require.ErrorIs(t, err, custody.ErrInvalid)

	from := w.log.Size()
	_, _, err = w.auth.AuthorizeRecovery(w.ctx, r, approve(t, r, w.alice, w.bob), parseShares(t, encs[0]))
	require.ErrorIs(t, err, custody.ErrTooFewShares)
	require.Equal(t, "too-few-escrow-shares", w.lastRecord().Reason)
	bad := bytes.Clone(encs[1])
	bad[5] ^= 1
	_, err = custody.ParseEscrowShare(bad)
	require.ErrorIs(t, err, custody.ErrEscrowShare)

	_, _, err = w.auth.AuthorizeRecovery(w.ctx, r, approve(t, r, w.alice), parseShares(t, encs[0], encs[2]))
	require.ErrorIs(t, err, custody.ErrTooFewApprovals)
	require.Equal(t, audit.KindDenial, w.lastRecord().Kind)
	require.Equal(t, "too-few-approvals", w.lastRecord().Reason)
	require.Equal(t, 2, w.denialsSince(from))

	auth, got, err := w.auth.AuthorizeRecovery(w.ctx, r, approve(t, r, w.alice, w.carol), parseShares(t, encs[0], encs[2]))
	require.NoError(t, err)
	require.Equal(t, []string{"alice", "carol"}, auth.Approvers)
	require.Equal(t, key.PublicKey().Bytes(), got.PublicKey().Bytes())
	last := w.lastRecord()
	require.Equal(t, audit.KindAdminChange, last.Kind)
	require.Equal(t, []string{"alice", "carol"}, last.Approvers)
	require.True(t, strings.HasPrefix(last.Operation, "recover"))

	_, _, err = w.auth.AuthorizeRecovery(w.ctx, r, approve(t, r, w.alice, w.carol), parseShares(t, encs[0], encs[2]))
	require.ErrorIs(t, err, custody.ErrReplayed)

	// The Executor does not spend a recover request it cannot carry out.
	x, err := custody.NewExecutor(custody.ExecutorConfig{Authority: w.auth, Keys: testkeys.Custodian(t, testkeys.New(t, testkeys.Options{}).Keys)})
	require.NoError(t, err)
	r2, err := w.auth.Propose(w.ctx, "alice", custody.Change{Action: custody.ActionRecover, EscrowKey: digest, KMSKeyARN: recoverTo}, 3600e9)
	require.NoError(t, err)
	_, err = x.Apply(w.ctx, r2, approve(t, r2, w.alice, w.bob))
	require.ErrorIs(t, err, custody.ErrInvalid)
	id, _ := r2.ID()
	_, err = w.store.GetRecord(w.ctx, custody.RecordAppliedRequest, id.String())
	require.ErrorIs(t, err, keystore.ErrNotFound)

	// A quorum for recover: its name, and it counts as a change.
	require.Equal(t, "recover", custody.ActionRecover.String())
	require.True(t, custody.ActionRecover.IsChange())
	require.False(t, custody.ActionReadAudit.IsChange())
}

// The share encoding of docs/FORMAT.md section 10, built byte by byte.
func TestEscrowShareWorkedExample(t *testing.T) {
	var b []byte
	b = append(b, 0x01)                              // version
	b = append(b, 11)                                // len(name)
	b = append(b, "escrow-2026"...)                  // name
	b = append(b, bytes.Repeat([]byte{0xaa}, 32)...) // escrow key digest
	b = append(b, bytes.Repeat([]byte{0xbb}, 16)...) // split id
	b = append(b, 2, 3, 1)                           // M, N, x
	b = append(b, 0x20)                              // len(y)
	b = append(b, bytes.Repeat([]byte{0xcc}, 32)...) // y
	sum := sha256.Sum256(b)
	b = append(b, sum[:]...) // check
	s, err := custody.ParseEscrowShare(b)
	require.NoError(t, err)
	require.Equal(t, "escrow-2026", s.Name())
	require.Equal(t, [32]byte(bytes.Repeat([]byte{0xaa}, 32)), s.KeyDigest())
	require.Equal(t, 2, s.Threshold())
	require.Equal(t, 3, s.Shares())
	require.Equal(t, 1, s.Index())
	require.Equal(t, b, s.RevealEncoding())
	require.Equal(t, "custody.EscrowShare{escrow-2026, escrow key sha256:aaaaaaaaaaaaaaaa, share 1 of 3, threshold 2}", s.String())
	for _, bad := range []func([]byte){
		func(b []byte) { b[61] = 1 },  // M below 2
		func(b []byte) { b[63] = 4 },  // x above N
		func(b []byte) { b[2] = ' ' }, // a space in the name
		func(b []byte) { b[62] = 17 }, // N above 16
	} {
		c := bytes.Clone(b[:len(b)-32])
		bad(c)
		sum := sha256.Sum256(c)
		_, err := custody.ParseEscrowShare(append(c, sum[:]...))
		require.ErrorIs(t, err, custody.ErrEscrowShare)
	}
}

// ParseEscrowShare never panics, and what it accepts re-encodes to the
// same bytes.
func FuzzParseEscrowShare(f *testing.F) {
	key, err := keyring.GenerateHPKEEscrowKey()
	if err != nil {
		f.Fatal(err)
	}
	shares, err := custody.SplitEscrowKey("escrow-fuzz", key, 3, 2)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range shares {
		f.Add(s.RevealEncoding())
	}
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := custody.ParseEscrowShare(b)
		if err != nil {
			require.ErrorIs(t, err, custody.ErrEscrowShare)
			return
		}
		require.Equal(t, b, s.RevealEncoding())
	})
}
