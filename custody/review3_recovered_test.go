package custody_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// After a recovery that did not rotate (keyctl recover --no-rotate),
// keyring.ErrVersionRecovered stops writes only: through a keyring on the
// new KMS key, the message and the row written before the KMS key was lost
// decrypt and open, the row's blind index is among IndexValues,
// AcquireVersion and PseudonymsAt under the recovered version work; a
// message, a sealed row and Table.Pseudonyms (tokens made under the
// active version: new derived data) are refused with ErrVersionRecovered.
// Once a custodian rotates, the same keyring and table write again, under
// the fresh version, and its escrow copy is stored.
func TestReview3RecoveredBlocksWritesOnly(t *testing.T) {
	ctx := t.Context()
	e := newReviewEnv(t, "sqlite", "phicrypt-test")
	_, err := e.admin.CreateBranchKey(ctx, "key-a")
	require.NoError(t, err)
	before := serviceKeyring(t, e.store, e.svc, e.oldARN, e.esc)
	msgs := encryptFor(t, before, "key-a", 1)
	row := reviewPatient{ID: "row-1", SSN: fieldenc.Of("123-45-6789")}
	require.NoError(t, reviewCodec(t, before).Seal(ctx, &row))
	stored, err := row.SSN.Value()
	require.NoError(t, err)
	index := append([]byte{}, row.SSNIndex...)
	// (fieldenc's default reservation may use the first version up and
	// rotate: the active version is the last one.)
	all := e.versions(t, "key-a")
	recovered := all[len(all)-1]

	review2LoseOldKey(t, e)
	rep, err := custody.RecoverBranchKeys(ctx, e.custodianKeys(t), e.recovery, e.custodian, e.newARN, custody.RecoverBranchKeysOptions{})
	require.NoError(t, err)
	require.Equal(t, len(all), rep.Recovered)

	h := serviceKeyring(t, e.store, e.svc, e.newARN, e.esc)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: h})
	require.NoError(t, err)
	pt, _, err := enc.Decrypt(ctx, msgs[0].ct, nil)
	require.NoError(t, err)
	require.Equal(t, msgs[0].plain, string(pt))
	c := reviewCodec(t, h)
	back := reviewPatient{ID: "row-1"}
	require.NoError(t, back.SSN.Scan(stored))
	require.NoError(t, c.Open(ctx, &back))
	vals, err := c.IndexValues(ctx, "ssn_bidx", "123456789")
	require.NoError(t, err)
	found := false
	for _, v := range vals {
		if b, ok := v.([]byte); ok && bytes.Equal(b, index) {
			found = true
		}
	}
	require.True(t, found, "the row is found by its blind index")
	bk, err := h.AcquireVersion(ctx, "key-a", recovered.Version)
	require.NoError(t, err)
	bk.Release()
	table, err := fieldenc.New(fieldenc.Config{Keys: h, BranchKeyID: "key-a", Table: "patients"})
	require.NoError(t, err)
	_, err = table.PseudonymsAt(ctx, "extract-1", recovered.Version)
	require.NoError(t, err)

	_, err = enc.Encrypt(ctx, []byte("new"), map[string]string{"tenant": "key-a"})
	require.ErrorIs(t, err, keyring.ErrVersionRecovered)
	fresh := reviewPatient{ID: "row-2", SSN: fieldenc.Of("987-65-4321")}
	require.ErrorIs(t, c.Seal(ctx, &fresh), keyring.ErrVersionRecovered)
	_, err = table.Pseudonyms(ctx, "extract-2")
	require.ErrorIs(t, err, keyring.ErrVersionRecovered)

	next, err := e.custodianKeys(t).Rotate(ctx, "key-a")
	require.NoError(t, err)
	_, err = enc.Encrypt(ctx, []byte("new"), map[string]string{"tenant": "key-a"})
	require.NoError(t, err)
	require.NoError(t, c.Seal(ctx, &fresh))
	has, err := e.svcKeys.EscrowStatus(ctx, next, e.esc.KeyDigest())
	require.NoError(t, err)
	require.True(t, has, "the fresh version is escrowed before it is written under")
}

// After the default recovery (with the rotation), a service whose keyring
// has an hour-long propagation window seals rows at once, under the fresh
// version (the recovered one is skipped), and stores its escrow copy.
func TestReview3RecoveryWithRotationLeavesFieldencWriting(t *testing.T) {
	ctx := t.Context()
	e := newReviewEnv(t, "file", "phicrypt-test")
	_, err := e.admin.CreateBranchKey(ctx, "key-a")
	require.NoError(t, err)
	_, err = e.svcKeys.Escrow(ctx, e.esc, "")
	require.NoError(t, err)
	review2LoseOldKey(t, e)
	rep, err := custody.RecoverBranchKeys(ctx, e.custodianKeys(t), e.recovery, e.custodian, e.newARN, custody.RecoverBranchKeysOptions{Rotate: true})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Rotated)
	vs := e.versions(t, "key-a")
	require.Len(t, vs, 2)

	bk := e.branchKeysOnNewKey(t)
	h, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "key-a", CacheTTL: time.Hour,
		PropagationWindow: time.Hour, Escrow: e.esc, MaxUsesPerVersion: 1 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	table, err := fieldenc.New(fieldenc.Config{Keys: h, BranchKeyID: "key-a", Table: "patients", ReservedUses: 16})
	require.NoError(t, err)
	active, err := table.ActiveVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, vs[1].Version, active, "the fresh version is written under at once")
	c, err := fieldenc.NewCodec[reviewPatient](table)
	require.NoError(t, err)
	p := reviewPatient{ID: "row-1", SSN: fieldenc.Of("123-45-6789")}
	require.NoError(t, c.Seal(ctx, &p))
	has, err := e.svcKeys.EscrowStatus(ctx, vs[1], e.esc.KeyDigest())
	require.NoError(t, err)
	require.True(t, has)
}
