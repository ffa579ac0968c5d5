package custody_test

// An outside review of escrow shares and recovery, through exported names.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
)

// reshare rewrites a share encoding with edit applied to its body and a
// valid SHA-256 check, as anyone can.
func reshare(t *testing.T, enc []byte, edit func(body []byte)) []byte {
	t.Helper()
	out := bytes.Clone(enc)
	body := out[:len(out)-32]
	edit(body)
	sum := sha256.Sum256(body)
	copy(out[len(out)-32:], sum[:])
	return out
}

// Offsets in a share's body for the name "escrow-2026" (11 bytes).
const (
	offDigest = 1 + 1 + 11
	offSplit  = offDigest + 32
	offM      = offSplit + 16
	offN      = offM + 1
	offX      = offN + 1
	offY      = offX + 2
)

func shareHexes(encs [][]byte) []string {
	var out []string
	for _, e := range encs {
		out = append(out, hex.EncodeToString(e[offY:offY+32]), hex.EncodeToString(e[offY:offY+8]))
	}
	return out
}

func requireNoShareBytes(t *testing.T, err error, encs [][]byte) {
	t.Helper()
	require.Error(t, err)
	for _, h := range shareHexes(encs) {
		require.NotContains(t, err.Error(), h)
		require.NotContains(t, fmt.Sprintf("%+v", err), h)
	}
}

// One custodian alone, with their own share and any number of forged ones
// (valid checks, edited M, N and indexes), never gets the key.
func TestOutsideOneCustodianCannotRecover(t *testing.T) {
	key, encs := splitEscrow(t, 5, 3)
	want := custody.EscrowKeyDigest(key.PublicKey())
	mine := encs[0]
	forge := func(x, m, n byte, base []byte) []byte {
		return reshare(t, base, func(b []byte) {
			b[offM], b[offN], b[offX] = m, n, x
			rand.Read(b[offY : offY+32])
		})
	}
	cases := map[string][][]byte{
		"own share and two forged":   {mine, forge(2, 3, 5, mine), forge(3, 3, 5, mine)},
		"M lowered to 2 in both":     {reshare(t, mine, func(b []byte) { b[offM] = 2 }), forge(2, 2, 5, mine)},
		"N raised, forged at 16":     {reshare(t, mine, func(b []byte) { b[offN] = 16 }), forge(15, 3, 16, mine), forge(16, 3, 16, mine)},
		"own share's y copied twice": {mine, reshare(t, mine, func(b []byte) { b[offX] = 2 }), reshare(t, mine, func(b []byte) { b[offX] = 3 })},
	}
	for name, shares := range cases {
		parsed := parseShares(t, shares...)
		k, err := custody.CombineEscrowShares(parsed, want)
		require.Nil(t, k, name)
		require.ErrorIs(t, err, custody.ErrEscrowKeyMismatch, name)
		requireNoShareBytes(t, err, encs)
	}

	// A share of another escrow key, relabelled with this key's digest and
	// split: it passes the checks but cannot combine into this key.
	_, otherEncs := splitEscrow(t, 5, 3)
	relabelled := reshare(t, otherEncs[1], func(b []byte) { copy(b[offDigest:offY], mine[offDigest:offY]); b[offX] = 2 })
	k, err := custody.CombineEscrowShares(parseShares(t, mine, relabelled, encs[2]), want)
	require.Nil(t, k)
	require.ErrorIs(t, err, custody.ErrEscrowKeyMismatch)

	// Disagreeing M is another split; too few of the right ones is refused.
	_, err = custody.CombineEscrowShares(parseShares(t, mine, reshare(t, encs[1], func(b []byte) { b[offM] = 2 })), want)
	require.ErrorIs(t, err, custody.ErrEscrowShare)
	requireNoShareBytes(t, err, encs)
	_, err = custody.CombineEscrowShares(parseShares(t, encs[0], encs[1]), want)
	require.ErrorIs(t, err, custody.ErrTooFewShares)
	requireNoShareBytes(t, err, encs)

	// M of them, or all five, in any order, give the key.
	for _, set := range [][][]byte{{encs[4], encs[0], encs[2]}, encs} {
		k, err := custody.CombineEscrowShares(parseShares(t, set...), want)
		require.NoError(t, err)
		require.Equal(t, key.PublicKey().Bytes(), k.PublicKey().Bytes())
	}
	// Parsing a share with M or x out of range is refused, whatever its check.
	for _, bad := range [][]byte{
		reshare(t, mine, func(b []byte) { b[offM] = 1 }),
		reshare(t, mine, func(b []byte) { b[offX] = 0 }),
		reshare(t, mine, func(b []byte) { b[offX] = 6 }),
		reshare(t, mine, func(b []byte) { b[offN], b[offM] = 17, 3 }),
	} {
		_, err := custody.ParseEscrowShare(bad)
		require.ErrorIs(t, err, custody.ErrEscrowShare)
		requireNoShareBytes(t, err, encs)
	}
	// nil shares are refused, not a panic.
	_, err = custody.CombineEscrowShares([]*custody.EscrowShare{nil, nil}, want)
	require.ErrorIs(t, err, custody.ErrEscrowShare)
}

// A recover request authorized by two runs at once (two custodians
// starting keyctl recover together) reassembles the key once.
func TestOutsideAuthorizeRecoveryOnce(t *testing.T) {
	for _, kind := range []string{"file", "sqlite"} {
		t.Run(kind, func(t *testing.T) {
			w := newWorld(t, recordStore(t, kind))
			p := w.basePolicy("*")
			p.Quorum[custody.ActionRecover] = 2
			w.install(p, w.alice, w.bob)
			key, encs := splitEscrow(t, 3, 2)
			digest := custody.EscrowKeyDigest(key.PublicKey())
			r, err := w.auth.Propose(w.ctx, "alice", custody.Change{Action: custody.ActionRecover, EscrowKey: digest, KMSKeyARN: recoverTo}, 3600e9)
			require.NoError(t, err)
			aps := approve(t, r, w.alice, w.bob)
			var wg sync.WaitGroup
			var mu sync.Mutex
			var keys []*keyring.HPKEEscrowPrivateKey
			var errs []error
			for range 8 {
				wg.Go(func() {
					_, k, err := w.auth.AuthorizeRecovery(w.ctx, r, aps, parseShares(t, encs[0], encs[1]))
					mu.Lock()
					defer mu.Unlock()
					if err == nil {
						keys = append(keys, k)
					} else {
						errs = append(errs, err)
					}
				})
			}
			wg.Wait()
			require.Len(t, keys, 1, "one run reassembles the key: %v", errors.Join(errs...))
			for _, err := range errs {
				require.ErrorIs(t, err, custody.ErrReplayed)
			}

			// A forged share spends a request (documented) and is audited.
			r2, err := w.auth.Propose(w.ctx, "alice", custody.Change{Action: custody.ActionRecover, EscrowKey: digest, KMSKeyARN: recoverTo}, 3600e9)
			require.NoError(t, err)
			forged := reshare(t, encs[1], func(b []byte) { b[offY] ^= 1 })
			_, k, err := w.auth.AuthorizeRecovery(w.ctx, r2, approve(t, r2, w.alice, w.bob), parseShares(t, encs[0], forged))
			require.Nil(t, k)
			require.ErrorIs(t, err, custody.ErrEscrowKeyMismatch)
			requireNoShareBytes(t, err, encs)
			require.Equal(t, "escrow-key-mismatch", w.lastRecord().Reason)
		})
	}
}
