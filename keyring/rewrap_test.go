package keyring_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/storetest"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/stretchr/testify/require"
)

// rewrapCanaryID is a branch key id that must never show in an error: it stands
// for a patient number.
const rewrapCanaryID = "patient-CANARY-7731"

// wrappedStoreEnv is a kmsmock server with two KMS keys and a store of branch
// key versions wrapped under the first, made as BranchKeys makes them:
// GenerateDataKeyWithoutPlaintext under BranchKeys.EncryptionContext.
type wrappedStoreEnv struct {
	*kmsEnv
	oldARN, newARN string
	store          keystore.Store
	bk             *keyring.BranchKeys // EncryptionContext of the store's versions
	// plaintext of each version (by version id), read with KMS Decrypt
	// before any rewrap.
	plaintext map[string][]byte
}

func newWrappedStoreEnv(t *testing.T, b storetest.Backend, newKeyPolicy string) *wrappedStoreEnv {
	t.Helper()
	e := &wrappedStoreEnv{kmsEnv: newKMSEnv(t, kmsmock.Config{}), plaintext: map[string][]byte{}}
	e.oldARN = e.key("")
	e.newARN = e.key(newKeyPolicy)
	e.store = mustOpen(t, b, b.Fresh(t))
	e.bk = e.branchKeys(e.store, e.oldARN)
	return e
}

func (e *wrappedStoreEnv) branchKeys(s keystore.Store, arn string) *keyring.BranchKeys {
	e.t.Helper()
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: s, Client: e.admin(), KMSKeyARN: arn, LogicalStoreName: "phicrypt-test"})
	require.NoError(e.t, err)
	return bk
}

// version makes a new version of id wrapped under the old key.
func (e *wrappedStoreEnv) version(id string) keystore.BranchKeyVersion {
	e.t.Helper()
	v := keystore.BranchKeyVersion{
		BranchKeyID: id, Version: keystore.NewBranchKeyVersion(), KMSKeyARN: e.oldARN,
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond), State: keystore.StateActive,
	}
	out, err := e.admin().GenerateDataKeyWithoutPlaintext(e.t.Context(), &kms.GenerateDataKeyWithoutPlaintextInput{
		KeyId: aws.String(e.oldARN), NumberOfBytes: aws.Int32(32), EncryptionContext: e.bk.EncryptionContext(v),
	})
	require.NoError(e.t, err)
	v.Ciphertext = out.CiphertextBlob
	return v
}

// populate stores keys ids with n versions each (the oldest of each
// retired) and records every version's plaintext; it returns the total.
func (e *wrappedStoreEnv) populate(n int, ids ...string) int {
	e.t.Helper()
	ctx := e.t.Context()
	for _, id := range ids {
		prev := e.version(id)
		require.NoError(e.t, e.store.Create(ctx, prev))
		for range n - 1 {
			next := e.version(id)
			require.NoError(e.t, e.store.Rotate(ctx, id, prev.Version, next))
			prev = next
		}
		if n > 1 {
			vs, err := e.store.List(ctx, id)
			require.NoError(e.t, err)
			require.NoError(e.t, e.store.SetState(ctx, id, vs[0].Version, keystore.StateDecryptOnly, keystore.StateRetired))
		}
	}
	for _, v := range e.all(e.store) {
		e.plaintext[v.Version] = e.decrypt(v)
	}
	return len(ids) * n
}

// all lists every version in s, in Rewrap's order.
func (e *wrappedStoreEnv) all(s keystore.Store) []keystore.BranchKeyVersion {
	e.t.Helper()
	ids, err := s.IDs(e.t.Context())
	require.NoError(e.t, err)
	var all []keystore.BranchKeyVersion
	for _, id := range ids {
		vs, err := s.List(e.t.Context(), id)
		require.NoError(e.t, err)
		all = append(all, vs...)
	}
	return all
}

// decrypt unwraps v with plain KMS Decrypt, naming its key and context.
func (e *wrappedStoreEnv) decrypt(v keystore.BranchKeyVersion) []byte {
	e.t.Helper()
	out, err := e.admin().Decrypt(e.t.Context(), &kms.DecryptInput{
		KeyId: aws.String(v.KMSKeyARN), CiphertextBlob: v.Ciphertext, EncryptionContext: e.bk.EncryptionContext(v),
	})
	require.NoError(e.t, err)
	require.Len(e.t, out.Plaintext, 32)
	return out.Plaintext
}

// requireReadable checks every version of s unwraps, through plain KMS
// Decrypt and through BranchKeys.Unwrap, to its original plaintext.
func (e *wrappedStoreEnv) requireReadable(s keystore.Store) {
	e.t.Helper()
	bk := e.branchKeys(s, e.newARN)
	for _, v := range e.all(s) {
		want := e.plaintext[v.Version]
		require.NotNil(e.t, want, "version %s was not made by this test", v.Version)
		require.Equal(e.t, want, e.decrypt(v))
		got, err := bk.Unwrap(e.t.Context(), v)
		require.NoError(e.t, err)
		require.Equal(e.t, want, []byte(got))
	}
}

func (e *wrappedStoreEnv) disableOldKey() {
	e.t.Helper()
	_, err := e.admin().DisableKey(e.t.Context(), &kms.DisableKeyInput{KeyId: aws.String(e.oldARN)})
	require.NoError(e.t, err)
}

func (e *wrappedStoreEnv) rewrap(opts custody.RewrapOptions) (custody.RewrapReport, error) {
	return e.rewrapAs(e.admin(), opts)
}

func (e *wrappedStoreEnv) rewrapAs(c *kms.Client, opts custody.RewrapOptions) (custody.RewrapReport, error) {
	opts.EncryptionContext = e.bk.EncryptionContext
	return custody.Rewrap(e.t.Context(), e.store, c, e.newARN, opts)
}

// requireNoKeyBytes checks err's message names neither the canary id nor
// any ciphertext of s, in any common encoding.
func requireNoKeyBytes(t *testing.T, err error, versions []keystore.BranchKeyVersion) {
	t.Helper()
	require.Error(t, err)
	msg := err.Error()
	require.NotContains(t, msg, rewrapCanaryID)
	for _, v := range versions {
		for _, enc := range []string{base64.StdEncoding.EncodeToString(v.Ciphertext), hex.EncodeToString(v.Ciphertext), string(v.Ciphertext)} {
			require.NotContains(t, msg, enc[:24])
		}
	}
}

func rewrapBackends() []storetest.Backend { return []storetest.Backend{fileBackend(), sqliteBackend()} }

func TestRewrap(t *testing.T) {
	for _, b := range rewrapBackends() {
		t.Run(b.Name, func(t *testing.T) {
			e := newWrappedStoreEnv(t, b, "")
			total := e.populate(3, "tenant-a", rewrapCanaryID, "tenant-c")
			before := e.all(e.store)
			var progress []int
			rep, err := e.rewrap(custody.RewrapOptions{Progress: func(done, n int) {
				require.Equal(t, total, n)
				progress = append(progress, done)
			}})
			require.NoError(t, err)
			require.Equal(t, custody.RewrapReport{Total: total, Rewrapped: total}, rep)
			require.Len(t, progress, total)
			require.Equal(t, total, progress[total-1])
			require.EqualValues(t, total, e.calls("ReEncrypt"))

			after := e.all(e.store)
			require.Len(t, after, total)
			for i, v := range after {
				require.Equal(t, e.newARN, v.KMSKeyARN)
				require.NotEqual(t, before[i].Ciphertext, v.Ciphertext)
				// Only the wrapping changed: same version, order, time, state.
				v.KMSKeyARN, v.Ciphertext = before[i].KMSKeyARN, before[i].Ciphertext
				require.Equal(t, before[i], v)
			}
			e.requireReadable(e.store)

			// Once rewrapped, the old key can go.
			e.disableOldKey()
			e.requireReadable(e.store)

			// Idempotent: a second run finds nothing to do.
			rep, err = e.rewrap(custody.RewrapOptions{})
			require.NoError(t, err)
			require.Equal(t, custody.RewrapReport{Total: total, AlreadyMoved: total}, rep)
			require.EqualValues(t, total, e.calls("ReEncrypt"))
		})
	}
}

func TestRewrapResumesAfterCrash(t *testing.T) {
	errCrash := errors.New("simulated crash")
	for _, b := range rewrapBackends() {
		t.Run(b.Name, func(t *testing.T) {
			e := newWrappedStoreEnv(t, b, "")
			total := e.populate(3, "tenant-a", "tenant-b", "tenant-c")
			const crashAfter = 4
			var saved *custody.RewrapPosition
			n := 0
			rep, err := e.rewrap(custody.RewrapOptions{Checkpoint: func(id, version string) error {
				saved = &custody.RewrapPosition{BranchKeyID: id, Version: version}
				if n++; n == crashAfter {
					return errCrash
				}
				return nil
			}})
			require.ErrorIs(t, err, errCrash)
			require.Equal(t, custody.RewrapReport{Total: total, Rewrapped: crashAfter}, rep)

			moved := 0
			for _, v := range e.all(e.store) {
				if v.KMSKeyARN == e.newARN {
					moved++
				}
			}
			require.Equal(t, crashAfter, moved)

			var progress []int
			rep, err = e.rewrap(custody.RewrapOptions{Resume: saved, Progress: func(done, _ int) { progress = append(progress, done) }})
			require.NoError(t, err)
			require.Equal(t, custody.RewrapReport{Total: total, Rewrapped: total - crashAfter, Resumed: crashAfter}, rep)
			require.Equal(t, crashAfter+1, progress[0], "progress counts the versions resumed past")
			require.EqualValues(t, total, e.calls("ReEncrypt"), "no version was re-encrypted twice")

			// Without Resume a re-run also redoes nothing.
			rep, err = e.rewrap(custody.RewrapOptions{})
			require.NoError(t, err)
			require.Equal(t, custody.RewrapReport{Total: total, AlreadyMoved: total}, rep)
			e.disableOldKey()
			e.requireReadable(e.store)
		})
	}
}

func TestRewrapResumeElsewhere(t *testing.T) {
	e := newWrappedStoreEnv(t, fileBackend(), "")
	e.populate(2, rewrapCanaryID)
	_, err := e.rewrap(custody.RewrapOptions{Resume: &custody.RewrapPosition{BranchKeyID: rewrapCanaryID, Version: keystore.NewBranchKeyVersion()}})
	require.ErrorIs(t, err, keystore.ErrNotFound)
	requireNoKeyBytes(t, err, e.all(e.store))
	require.Zero(t, e.calls("ReEncrypt"))
}

// rewrapRaceStore lets another "process" rewrap a version just before this
// one's compare-and-swap.
type rewrapRaceStore struct {
	keystore.Store
	race func(id, version string)
}

func (s *rewrapRaceStore) Rewrap(ctx context.Context, id, version string, old []byte, arn string, ct []byte) error {
	if s.race != nil {
		race := s.race
		s.race = nil
		race(id, version)
	}
	return s.Store.Rewrap(ctx, id, version, old, arn, ct)
}

func TestRewrapLosesCompareAndSwap(t *testing.T) {
	e := newWrappedStoreEnv(t, sqliteBackend(), "")
	total := e.populate(2, "tenant-a", "tenant-b")
	inner := e.store
	racing := &rewrapRaceStore{Store: inner}
	racing.race = func(id, version string) {
		// The other process runs a whole rewrap of its own.
		rep, err := custody.Rewrap(t.Context(), inner, e.admin(), e.newARN, custody.RewrapOptions{EncryptionContext: e.bk.EncryptionContext})
		require.NoError(t, err)
		require.Equal(t, total, rep.Rewrapped)
	}
	e.store = racing
	rep, err := e.rewrap(custody.RewrapOptions{})
	require.NoError(t, err)
	// This run's first compare-and-swap lost; it re-read that version and
	// every later one, found them moved and re-encrypted nothing more.
	require.Equal(t, custody.RewrapReport{Total: total, MovedByOther: total}, rep)
	require.EqualValues(t, total+1, e.calls("ReEncrypt"))
	e.disableOldKey()
	e.requireReadable(inner)
}

func TestRewrapDeniedReEncryptTo(t *testing.T) {
	// The new key lets only admin in: the rewrapper may ReEncryptFrom the
	// old key (whose default policy admits the account) but not ReEncryptTo
	// the new one.
	e := newWrappedStoreEnv(t, fileBackend(), "")
	policy := `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/admin"},"Action":"kms:*","Resource":"*"},
 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/rewrapper"},"Action":"kms:ReEncryptFrom","Resource":"*"}]}`
	e.newARN = e.key(policy)
	total := e.populate(2, rewrapCanaryID, "tenant-b")
	before := e.all(e.store)
	rep, err := e.rewrapAs(e.client("rewrapper"), custody.RewrapOptions{})
	require.Error(t, err)
	require.Equal(t, "AccessDeniedException", apiErrorCode(err))
	require.Contains(t, err.Error(), "needs kms:ReEncryptFrom on the old key and kms:ReEncryptTo on the new one")
	require.Contains(t, err.Error(), e.newARN, "the error names the key the caller lacks rights on")
	requireNoKeyBytes(t, err, before)
	require.Equal(t, custody.RewrapReport{Total: total}, rep)
	require.Equal(t, before, e.all(e.store), "nothing was written")
}

func TestRewrapRefusesBadArguments(t *testing.T) {
	e := newWrappedStoreEnv(t, fileBackend(), "")
	e.populate(1, rewrapCanaryID)
	alias := strings.Replace(e.newARN, ":key/", ":alias/", 1)
	for _, arn := range []string{"", "alias/rotated", alias, "1234abcd-12ab-34cd-56ef-1234567890ab"} {
		_, err := custody.Rewrap(t.Context(), e.store, e.admin(), arn, custody.RewrapOptions{EncryptionContext: e.bk.EncryptionContext})
		require.ErrorIs(t, err, keyring.ErrInvalid, arn)
	}
	_, err := custody.Rewrap(t.Context(), e.store, e.admin(), e.newARN, custody.RewrapOptions{})
	require.ErrorIs(t, err, keyring.ErrInvalid)
	require.Zero(t, e.calls("ReEncrypt"))
}

// A wrong encryption context (another logical store name) fails in KMS,
// and the error carries no context value.
func TestRewrapWrongContext(t *testing.T) {
	e := newWrappedStoreEnv(t, fileBackend(), "")
	e.populate(1, rewrapCanaryID)
	other, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: e.store, Client: e.admin(), KMSKeyARN: e.oldARN, LogicalStoreName: "elsewhere"})
	require.NoError(t, err)
	var calls atomic.Int32
	_, err = custody.Rewrap(t.Context(), e.store, e.admin(), e.newARN, custody.RewrapOptions{
		EncryptionContext: func(v keystore.BranchKeyVersion) map[string]string { calls.Add(1); return other.EncryptionContext(v) },
	})
	require.Equal(t, "InvalidCiphertextException", apiErrorCode(err))
	requireNoKeyBytes(t, err, e.all(e.store))
	require.NotContains(t, err.Error(), "elsewhere")
	require.Positive(t, calls.Load())
	require.Equal(t, e.oldARN, e.all(e.store)[0].KMSKeyARN, "nothing was written")
}
