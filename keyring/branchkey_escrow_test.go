package keyring_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/dynamodb"
	"github.com/phicrypt/phicrypt/keystore/postgres"
	"github.com/phicrypt/phicrypt/keystore/sqlite"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"
)

// escrowCanaryID is the branch key id of the escrow tests: no error may
// show it (errors name branch keys by keystore.Fingerprint).
const escrowCanaryID = "patient-123-canary"

// escrowStoreKinds are the stores the escrow tests run on: the file store
// and SQLite always, PostgreSQL at PHICRYPT_POSTGRES_URL and DynamoDB in
// moto_server at PHICRYPT_MOTO_URL when set (the full suite,
// PHICRYPT_FULL_SUITE, fails without them).
func escrowStoreKinds(t *testing.T) []string {
	kinds := []string{"file", "sqlite"}
	for _, s := range []struct{ kind, env string }{{"postgres", "PHICRYPT_POSTGRES_URL"}, {"dynamodb", "PHICRYPT_MOTO_URL"}} {
		switch {
		case os.Getenv(s.env) != "":
			kinds = append(kinds, s.kind)
		case os.Getenv("PHICRYPT_FULL_SUITE") != "":
			t.Fatalf("the full suite must set %s (scripts/test.sh starts the server)", s.env)
		}
	}
	return kinds
}

// openEscrowStore opens a fresh store of the given kind, closed (and its
// schema or table dropped) after t.
func openEscrowStore(t *testing.T, kind string) keystore.Store {
	t.Helper()
	var s keystore.Store
	var err error
	switch kind {
	case "file":
		s, err = keystore.OpenFileStore(t.TempDir())
	case "sqlite":
		s, err = sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "keys.db"))
	case "postgres":
		s, err = escrowPostgresStore(t, os.Getenv("PHICRYPT_POSTGRES_URL"))
	case "dynamodb":
		s, err = escrowDynamoStore(t, os.Getenv("PHICRYPT_MOTO_URL"))
	default:
		t.Fatalf("no store %q", kind)
	}
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func randomSuffix() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func escrowPostgresStore(t *testing.T, base string) (keystore.Store, error) {
	schema := "phicrypt_bkescrow_" + randomSuffix()
	admin, err := sql.Open("pgx", base)
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	_, err = admin.Exec("CREATE SCHEMA " + schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		require.NoError(t, err)
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := sql.Open("pgx", u.String())
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return postgres.New(t.Context(), db)
}

func escrowDynamoStore(t *testing.T, endpoint string) (keystore.Store, error) {
	client := awsdynamodb.New(awsdynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("keyring", "x", "")})
	table := "phicrypt-bkescrow-" + randomSuffix()
	_, err := dynamodb.CreateTable(t.Context(), client, table)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := client.DeleteTable(context.Background(), &awsdynamodb.DeleteTableInput{TableName: &table})
		var gone *ddbtypes.ResourceNotFoundException
		if !errors.As(err, &gone) {
			require.NoError(t, err)
		}
	})
	return dynamodb.New(client, table)
}

// escrowWorld is a service's and a custodian's view of one store: kmsmock
// over HTTP, one KMS key, BranchKeys and the custodian's handle.
type escrowWorld struct {
	t         *testing.T
	kms       *kmsmock.Local
	store     keystore.Store
	recs      keystore.Records
	bk        *keyring.BranchKeys
	custodian *custody.BranchKeys
}

func newEscrowWorld(t *testing.T, store keystore.Store) *escrowWorld {
	t.Helper()
	l := kmsmock.StartTest(t, kmsmock.Config{})
	client := l.Client("svc", func(o *kms.Options) { o.RetryMaxAttempts = 1 })
	key, err := client.CreateKey(t.Context(), &kms.CreateKeyInput{})
	require.NoError(t, err)
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: store, Client: client, KMSKeyARN: aws.ToString(key.KeyMetadata.Arn), LogicalStoreName: hierStoreName})
	require.NoError(t, err)
	recs, ok := store.(keystore.Records)
	require.True(t, ok, "every store of this module keeps records")
	return &escrowWorld{t: t, kms: l, store: store, recs: recs, bk: bk, custodian: testkeys.Custodian(t, bk)}
}

// forEachEscrowStore runs f on a fresh world per store kind.
func forEachEscrowStore(t *testing.T, f func(t *testing.T, w *escrowWorld)) {
	for _, kind := range escrowStoreKinds(t) {
		t.Run(kind, func(t *testing.T) { f(t, newEscrowWorld(t, openEscrowStore(t, kind))) })
	}
}

func (w *escrowWorld) create(id string) keystore.BranchKeyVersion {
	w.t.Helper()
	v, err := w.custodian.CreateBranchKey(w.t.Context(), id)
	require.NoError(w.t, err)
	return v
}

func (w *escrowWorld) rotate(id string) keystore.BranchKeyVersion {
	w.t.Helper()
	v, err := w.custodian.Rotate(w.t.Context(), id)
	require.NoError(w.t, err)
	return v
}

// get reads version v again from the store.
func (w *escrowWorld) get(v keystore.BranchKeyVersion) keystore.BranchKeyVersion {
	w.t.Helper()
	got, err := w.store.Get(w.t.Context(), v.BranchKeyID, v.Version)
	require.NoError(w.t, err)
	return got
}

// service is a hierarchical keyring for id that escrows to e.
func (w *escrowWorld) service(id string, e *keyring.HPKEEscrow) *keyring.Hierarchical {
	w.t.Helper()
	return newHierarchical(w.t, keyring.HierarchicalConfig{BranchKeys: w.bk, BranchKeyID: id, Escrow: e})
}

func (w *escrowWorld) record(v keystore.BranchKeyVersion) (keystore.Record, error) {
	return w.recs.GetRecord(w.t.Context(), keyring.BranchKeyEscrowRecordKind, keyring.BranchKeyEscrowRecordName(v.BranchKeyID, v.Version))
}

// putRecord overwrites v's escrow record with value.
func (w *escrowWorld) putRecord(v keystore.BranchKeyVersion, value []byte) {
	w.t.Helper()
	var rev uint64
	rec, err := w.record(v)
	if err == nil {
		rev = rec.Revision
	} else {
		require.ErrorIs(w.t, err, keystore.ErrNotFound)
	}
	_, err = w.recs.PutRecord(w.t.Context(), keyring.BranchKeyEscrowRecordKind, keyring.BranchKeyEscrowRecordName(v.BranchKeyID, v.Version), value, rev)
	require.NoError(w.t, err)
}

// requireOpens asserts that recovery opens v's copy to exactly the
// material KMS unwraps.
func (w *escrowWorld) requireOpens(recovery *keyring.HPKEEscrow, v keystore.BranchKeyVersion) {
	w.t.Helper()
	want, err := w.bk.Unwrap(w.t.Context(), w.get(v))
	require.NoError(w.t, err)
	defer want.Wipe()
	got, err := w.bk.OpenEscrow(w.t.Context(), recovery, v)
	require.NoError(w.t, err)
	defer got.Wipe()
	require.Len(w.t, got, 32)
	require.True(w.t, bytes.Equal(want, got), "the escrow copy opens to the material KMS unwraps")
}

// escrowKeys makes an escrow key pair named name: the service's public
// keyring and the custodians' recovery keyring.
func escrowKeys(t *testing.T, name string) (svc, recovery *keyring.HPKEEscrow) {
	t.Helper()
	priv, svc := escrowPair(t, name)
	return svc, newEscrowRecovery(t, name, priv)
}

// requireNoEscrowCanary fails if err shows the canary branch key id.
func requireNoEscrowCanary(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	require.NotContains(t, err.Error(), escrowCanaryID)
	require.NotContains(t, err.Error(), strings.ToUpper(escrowCanaryID))
}

func encryptWith(t *testing.T, kr keyring.Keyring) error {
	t.Helper()
	return kr.OnEncrypt(t.Context(), encMaterials(phiContext))
}

// TestBranchKeyEscrowBeforeFirstUse: a hierarchical keyring with Escrow
// stores the copy when it first unwraps a version, before the version is
// used (one OnEncrypt, or one AcquireActive as fieldenc does); the copy
// opens with the escrow private key to the material KMS unwraps; later
// uses write nothing.
func TestBranchKeyEscrowBeforeFirstUse(t *testing.T) {
	forEachEscrowStore(t, func(t *testing.T, w *escrowWorld) {
		ctx := t.Context()
		svc, recovery := escrowKeys(t, "escrow-a")
		v1 := w.create(escrowCanaryID)
		_, err := w.record(v1)
		require.ErrorIs(t, err, keystore.ErrNotFound)
		has, err := w.bk.EscrowStatus(ctx, v1, svc.KeyDigest())
		require.NoError(t, err)
		require.False(t, has)

		kr := w.service(escrowCanaryID, svc)
		require.NoError(t, encryptWith(t, kr))
		rec, err := w.record(v1)
		require.NoError(t, err, "the copy is stored by the first encrypt")
		require.Equal(t, uint64(1), rec.Revision)
		has, err = w.bk.EscrowStatus(ctx, v1, svc.KeyDigest())
		require.NoError(t, err)
		require.True(t, has)
		w.requireOpens(recovery, v1)

		require.NoError(t, encryptWith(t, kr))
		kr.Forget(escrowCanaryID)
		require.NoError(t, encryptWith(t, kr), "unwrapped again: the copy is read, not rewritten")
		rec, err = w.record(v1)
		require.NoError(t, err)
		require.Equal(t, uint64(1), rec.Revision)

		// fieldenc's way in: AcquireActive on a new version.
		v2 := w.rotate(escrowCanaryID)
		_, err = w.record(v2)
		require.ErrorIs(t, err, keystore.ErrNotFound)
		fk := w.service(escrowCanaryID, svc)
		h, err := fk.AcquireVersion(ctx, escrowCanaryID, v2.Version)
		require.NoError(t, err)
		h.Release()
		w.requireOpens(recovery, v2)
		has, err = w.bk.EscrowStatus(ctx, v2, svc.KeyDigest())
		require.NoError(t, err)
		require.True(t, has)

		v3 := w.create("second-key")
		h, err = w.service("second-key", svc).AcquireActive(ctx, "second-key", 1)
		require.NoError(t, err)
		h.Release()
		w.requireOpens(recovery, v3)

		// A reader escrows too: a message written without Escrow, decrypted
		// with it.
		v4 := w.create("third-key")
		plain := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: w.bk, BranchKeyID: "third-key"})
		em := encMaterials(phiContext)
		require.NoError(t, plain.OnEncrypt(ctx, em))
		_, err = w.record(v4)
		require.ErrorIs(t, err, keystore.ErrNotFound, "a keyring without Escrow writes no copy")
		dm := decMaterials(phiContext)
		require.NoError(t, w.service("third-key", svc).OnDecrypt(ctx, dm, em.EncryptedDataKeys))
		require.True(t, bytes.Equal(em.DataKey, dm.DataKey))
		w.requireOpens(recovery, v4)
	})
}

// TestBranchKeyEscrowSecondKey: a service with a second escrow key adds a
// second copy beside the first, both open, and a fifth escrow key is
// refused (MaxBranchKeyEscrowCopies) by services and backfill alike.
func TestBranchKeyEscrowSecondKey(t *testing.T) {
	forEachEscrowStore(t, func(t *testing.T, w *escrowWorld) {
		ctx := t.Context()
		v := w.create(escrowCanaryID)
		var recoveries []*keyring.HPKEEscrow
		for i, name := range []string{"escrow-a", "escrow-b", "escrow-c", "escrow-d"} {
			svc, recovery := escrowKeys(t, name)
			recoveries = append(recoveries, recovery)
			require.NoError(t, encryptWith(t, w.service(escrowCanaryID, svc)))
			rec, err := w.record(v)
			require.NoError(t, err)
			require.Equal(t, uint64(i+1), rec.Revision, "one copy added per escrow key")
			require.Equal(t, byte(i+1), rec.Value[1], "the record counts its copies")
		}
		require.Equal(t, keyring.MaxBranchKeyEscrowCopies, len(recoveries))
		for _, r := range recoveries {
			w.requireOpens(r, v)
		}

		svc, recovery := escrowKeys(t, "escrow-e")
		err := encryptWith(t, w.service(escrowCanaryID, svc))
		require.ErrorIs(t, err, keyring.ErrEscrowRecord, "no use of the version without its copy")
		requireNoEscrowCanary(t, err)
		rep, err := w.bk.Escrow(ctx, svc, escrowCanaryID)
		require.ErrorIs(t, err, keyring.ErrEscrowRecord)
		requireNoEscrowCanary(t, err)
		require.Equal(t, 0, rep.Escrowed)
		_, err = w.bk.OpenEscrow(ctx, recovery, v)
		require.ErrorIs(t, err, keyring.ErrNoEscrowCopy)
		requireNoEscrowCanary(t, err)
		rec, err := w.record(v)
		require.NoError(t, err)
		require.Equal(t, uint64(4), rec.Revision, "the full record is left as it was")
	})
}

// TestBranchKeyEscrowCopyMoved: a copy opens only as the copy of its own
// version of its own key under its own escrow key name: moved to another
// version's record, or opened under another name, it is ErrEscrowRecord;
// a version with no record, or none for this escrow key, is
// ErrNoEscrowCopy; a public-only keyring cannot open.
func TestBranchKeyEscrowCopyMoved(t *testing.T) {
	forEachEscrowStore(t, func(t *testing.T, w *escrowWorld) {
		ctx := t.Context()
		priv, svc := escrowPair(t, "escrow-a")
		recovery := newEscrowRecovery(t, "escrow-a", priv)
		a := w.create(escrowCanaryID)
		b := w.rotate(escrowCanaryID)
		other := w.create("other-key")

		_, err := w.bk.OpenEscrow(ctx, recovery, a)
		require.ErrorIs(t, err, keyring.ErrNoEscrowCopy)
		requireNoEscrowCanary(t, err)

		rep, err := w.bk.Escrow(ctx, svc, escrowCanaryID)
		require.NoError(t, err)
		require.Equal(t, keyring.EscrowReport{Versions: 2, Escrowed: 2}, rep)
		w.requireOpens(recovery, a)
		w.requireOpens(recovery, b)

		recA, err := w.record(a)
		require.NoError(t, err)
		w.putRecord(b, recA.Value)
		_, err = w.bk.OpenEscrow(ctx, recovery, b)
		require.ErrorIs(t, err, keyring.ErrEscrowRecord, "a's copy does not open as b's")
		requireNoEscrowCanary(t, err)
		w.putRecord(other, recA.Value)
		_, err = w.bk.OpenEscrow(ctx, recovery, w.get(other))
		require.ErrorIs(t, err, keyring.ErrEscrowRecord, "nor as another key's")
		requireNoEscrowCanary(t, err)

		renamed := newEscrowRecovery(t, "escrow-renamed", priv)
		_, err = w.bk.OpenEscrow(ctx, renamed, a)
		require.ErrorIs(t, err, keyring.ErrEscrowRecord, "same key, another name")
		requireNoEscrowCanary(t, err)

		_, stranger := escrowKeys(t, "escrow-a")
		_, err = w.bk.OpenEscrow(ctx, stranger, a)
		require.ErrorIs(t, err, keyring.ErrNoEscrowCopy, "another escrow key has no copy")
		requireNoEscrowCanary(t, err)

		got, err := w.bk.OpenEscrow(ctx, svc, a)
		require.Error(t, err, "the service's public-only keyring cannot open")
		require.Nil(t, got)
		requireNoEscrowCanary(t, err)
		_, err = w.bk.OpenEscrow(ctx, nil, a)
		require.Error(t, err)
		_, err = w.bk.Escrow(ctx, nil, escrowCanaryID)
		require.Error(t, err)
	})
}

// TestBranchKeyEscrowWriteFails: when the copy cannot be stored, the
// version is not used: the encrypt fails, and succeeds once the store
// takes writes again. A store without records is refused up front.
func TestBranchKeyEscrowWriteFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	store, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	w := newEscrowWorld(t, store)
	v := w.create(escrowCanaryID)
	svc, recovery := escrowKeys(t, "escrow-a")

	raw, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	t.Cleanup(func() { raw.Close() })
	_, err = raw.Exec(`CREATE TRIGGER escrow_read_only BEFORE INSERT ON phicrypt_version_records BEGIN SELECT RAISE(ABORT, 'records are read-only'); END`)
	require.NoError(t, err)

	kr := w.service(escrowCanaryID, svc)
	err = encryptWith(t, kr)
	require.Error(t, err, "no use before the copy is stored")
	require.ErrorContains(t, err, "storing the escrow copy")
	requireNoEscrowCanary(t, err)
	h, err := kr.AcquireActive(t.Context(), escrowCanaryID, 1)
	require.Error(t, err)
	require.Nil(t, h)
	_, err = w.record(v)
	require.ErrorIs(t, err, keystore.ErrNotFound)

	_, err = raw.Exec(`DROP TRIGGER escrow_read_only`)
	require.NoError(t, err)
	require.NoError(t, encryptWith(t, kr), "a failed load is not cached")
	w.requireOpens(recovery, v)

	// A store that keeps no records cannot hold copies.
	_, err = keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: newBranchKeysOver(t, w, struct{ keystore.Store }{store}), BranchKeyID: escrowCanaryID, Escrow: svc, CacheTTL: hierTTL})
	require.ErrorContains(t, err, "keystore.Records")
	_, err = keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: newBranchKeysOver(t, w, struct{ keystore.Store }{store}), BranchKeyID: escrowCanaryID, CacheTTL: hierTTL})
	require.NoError(t, err, "without Escrow, records are not needed")
}

// newBranchKeysOver is w's BranchKeys over another store.
func newBranchKeysOver(t *testing.T, w *escrowWorld, s keystore.Store) *keyring.BranchKeys {
	t.Helper()
	cfg := w.bk.Config()
	cfg.Store = s
	bk, err := keyring.NewBranchKeys(cfg)
	require.NoError(t, err)
	return bk
}

// TestBranchKeyEscrowBackfill: BranchKeys.Escrow copies every version that
// lacks a copy, over several keys with rotations, counts the ones a
// service already escrowed and the destroyed one, checks every copy
// against the material KMS unwraps (one Decrypt per live version),
// replaces a copy of other material, and is idempotent.
func TestBranchKeyEscrowBackfill(t *testing.T) {
	forEachEscrowStore(t, func(t *testing.T, w *escrowWorld) {
		ctx := t.Context()
		svc, recovery := escrowKeys(t, "escrow-a")
		k1 := []keystore.BranchKeyVersion{w.create(escrowCanaryID)}
		k1 = append(k1, w.rotate(escrowCanaryID), w.rotate(escrowCanaryID))
		k2 := []keystore.BranchKeyVersion{w.create("key-2")}
		k2 = append(k2, w.rotate("key-2"))
		k3 := w.create("key-3")
		require.NoError(t, w.custodian.DestroyVersion(ctx, escrowCanaryID, k1[1].Version))
		require.NoError(t, encryptWith(t, w.service("key-2", svc)), "a service escrows key-2's active version")

		decrypts := w.kms.Calls("Decrypt")
		rep, err := w.bk.Escrow(ctx, svc, "")
		require.NoError(t, err)
		require.Equal(t, keyring.EscrowReport{Versions: 6, Escrowed: 4, Already: 1, Destroyed: 1}, rep)
		require.Equal(t, decrypts+5, w.kms.Calls("Decrypt"), "every live version is unwrapped, none destroyed")
		for _, v := range []keystore.BranchKeyVersion{k1[0], k1[2], k2[0], k2[1], k3} {
			w.requireOpens(recovery, v)
		}
		rec, err := w.record(k1[1])
		require.NoError(t, err)
		require.Equal(t, []byte{0x00}, rec.Value, "DestroyVersion left a tombstone; no copy was written over it")

		decrypts = w.kms.Calls("Decrypt")
		rep, err = w.bk.Escrow(ctx, svc, "")
		require.NoError(t, err)
		require.Equal(t, keyring.EscrowReport{Versions: 6, Already: 5, Destroyed: 1}, rep)
		require.Equal(t, decrypts+5, w.kms.Calls("Decrypt"), "a second run checks every live version again")

		// A copy of other material (key-2's, planted in key-3's record)
		// fails its key check and is replaced.
		planted, err := w.record(k2[0])
		require.NoError(t, err)
		w.putRecord(k3, planted.Value)
		_, err = w.bk.OpenEscrow(ctx, recovery, k3)
		require.ErrorIs(t, err, keyring.ErrEscrowRecord)
		rep, err = w.bk.Escrow(ctx, svc, "key-3")
		require.NoError(t, err)
		require.Equal(t, keyring.EscrowReport{Versions: 1, Replaced: 1}, rep)
		w.requireOpens(recovery, k3)

		svcB, recoveryB := escrowKeys(t, "escrow-b")
		rep, err = w.bk.Escrow(ctx, svcB, escrowCanaryID)
		require.NoError(t, err)
		require.Equal(t, keyring.EscrowReport{Versions: 3, Escrowed: 2, Destroyed: 1}, rep)
		w.requireOpens(recoveryB, k1[2])
		w.requireOpens(recovery, k1[2])
		has, err := w.bk.EscrowStatus(ctx, k2[0], svcB.KeyDigest())
		require.NoError(t, err)
		require.False(t, has, "key-2 was not backfilled for escrow-b")

		_, err = w.bk.Escrow(ctx, svc, "no-such-key")
		require.ErrorIs(t, err, keystore.ErrNotFound)
		require.NotContains(t, err.Error(), "no-such-key")
	})
}

// TestBranchKeyEscrowDestroy: destroying a version through custody shreds
// its record: the copy no longer opens, EscrowStatus reports none, and no
// service or backfill writes a new one. DestroyKey shreds every version's.
func TestBranchKeyEscrowDestroy(t *testing.T) {
	forEachEscrowStore(t, func(t *testing.T, w *escrowWorld) {
		ctx := t.Context()
		svc, recovery := escrowKeys(t, "escrow-a")
		v1 := w.create(escrowCanaryID)
		v2 := w.rotate(escrowCanaryID)
		_, err := w.bk.Escrow(ctx, svc, escrowCanaryID)
		require.NoError(t, err)

		require.NoError(t, w.custodian.DestroyVersion(ctx, escrowCanaryID, v1.Version))
		rec, err := w.record(v1)
		require.NoError(t, err)
		require.Equal(t, []byte{0x00}, rec.Value, "the record is a tombstone")
		for _, v := range []keystore.BranchKeyVersion{v1, w.get(v1)} {
			got, err := w.bk.OpenEscrow(ctx, recovery, v)
			require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
			require.Nil(t, got)
			requireNoEscrowCanary(t, err)
		}
		has, err := w.bk.EscrowStatus(ctx, v1, svc.KeyDigest())
		require.NoError(t, err)
		require.False(t, has)
		require.NoError(t, w.custodian.DestroyVersion(ctx, escrowCanaryID, v1.Version), "a retry succeeds")
		again, err := w.record(v1)
		require.NoError(t, err)
		require.Equal(t, []byte{0x00}, again.Value)
		require.Greater(t, again.Revision, rec.Revision, "shredding writes the tombstone again, so a copy prepared before fails its compare-and-swap")

		// Services and backfill write nothing for it again.
		h, err := w.service(escrowCanaryID, svc).AcquireVersion(ctx, escrowCanaryID, v1.Version)
		require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
		require.Nil(t, h)
		rep, err := w.bk.Escrow(ctx, svc, escrowCanaryID)
		require.NoError(t, err)
		require.Equal(t, keyring.EscrowReport{Versions: 2, Already: 1, Destroyed: 1}, rep)
		rec, err = w.record(v1)
		require.NoError(t, err)
		require.Equal(t, []byte{0x00}, rec.Value)

		w.requireOpens(recovery, v2)
		require.NoError(t, w.custodian.DestroyKey(ctx, escrowCanaryID))
		rec, err = w.record(v2)
		require.NoError(t, err)
		require.Equal(t, []byte{0x00}, rec.Value, "DestroyKey shreds every version's record")
		_, err = w.bk.OpenEscrow(ctx, recovery, v2)
		require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
		requireNoEscrowCanary(t, err)
	})
}

// TestBranchKeyEscrowTombstoneOverLiveVersion: a tombstone stands only
// over a destroyed version (destroying writes the version's state first).
// One over a live version (ShredBranchKeyEscrow called before a destroy,
// or written by a writer of the store) opens as a damaged record
// (ErrEscrowRecord, not ErrKeyDestroyed), and a service or the backfill
// writes a copy over it; once the version is destroyed, the tombstone
// stands and nothing is written over it.
func TestBranchKeyEscrowTombstoneOverLiveVersion(t *testing.T) {
	forEachEscrowStore(t, func(t *testing.T, w *escrowWorld) {
		ctx := t.Context()
		svc, recovery := escrowKeys(t, "escrow-a")
		v := w.create(escrowCanaryID)
		require.NoError(t, keyring.ShredBranchKeyEscrow(ctx, w.store, escrowCanaryID, v.Version))
		rec, err := w.record(v)
		require.NoError(t, err)
		require.Equal(t, []byte{0x00}, rec.Value)
		_, err = w.bk.OpenEscrow(ctx, recovery, v)
		require.ErrorIs(t, err, keyring.ErrEscrowRecord)
		require.NotErrorIs(t, err, keyring.ErrKeyDestroyed)
		requireNoEscrowCanary(t, err)

		require.NoError(t, encryptWith(t, w.service(escrowCanaryID, svc)), "the service writes a copy over it")
		w.requireOpens(recovery, v)

		w.putRecord(v, []byte{0x00})
		rep, err := w.bk.Escrow(ctx, svc, escrowCanaryID)
		require.NoError(t, err)
		require.Equal(t, keyring.EscrowReport{Versions: 1, Escrowed: 1}, rep, "the backfill writes a copy over it")
		w.requireOpens(recovery, v)

		// Destroyed (rotated first: an active version is not destroyed
		// alone): the tombstone stands.
		w.rotate(escrowCanaryID)
		require.NoError(t, w.custodian.DestroyVersion(ctx, escrowCanaryID, v.Version))
		rec, err = w.record(v)
		require.NoError(t, err)
		require.Equal(t, []byte{0x00}, rec.Value)
		decrypts := w.kms.Calls("Decrypt")
		rep, err = w.bk.Escrow(ctx, svc, escrowCanaryID)
		require.NoError(t, err)
		require.Equal(t, 1, rep.Destroyed)
		require.Equal(t, decrypts+1, w.kms.Calls("Decrypt"), "only the new active version is unwrapped")
		after, err := w.record(v)
		require.NoError(t, err)
		require.Equal(t, rec, after, "nothing was written over the tombstone")
		_, err = w.bk.OpenEscrow(ctx, recovery, w.get(v))
		require.ErrorIs(t, err, keyring.ErrKeyDestroyed)

		err = keyring.ShredBranchKeyEscrow(ctx, w.store, escrowCanaryID, "not-a-uuid")
		require.Error(t, err)
		requireNoEscrowCanary(t, err)
	})
}

// destroyOnEscrowPut is a file store on which a custodian destroys version
// (without shredding yet) right after a service stores its escrow copy:
// the interleaving the service's re-read after writing is there for.
type destroyOnEscrowPut struct {
	*keystore.FileStore
	id, version string
	done        bool
}

func (s *destroyOnEscrowPut) PutRecord(ctx context.Context, kind, name string, value []byte, expected uint64) (uint64, error) {
	rev, err := s.FileStore.PutRecord(ctx, kind, name, value, expected)
	if err == nil && kind == keyring.BranchKeyEscrowRecordKind && !s.done {
		s.done = true
		if err := s.FileStore.Destroy(ctx, s.id, s.version); err != nil {
			return 0, err
		}
	}
	return rev, err
}

// TestBranchKeyEscrowDestroyedWhileWriting: a version destroyed between
// the service's read and its escrow write is found by the re-read: the
// service shreds the copy it just wrote and refuses the version.
func TestBranchKeyEscrowDestroyedWhileWriting(t *testing.T) {
	fs, err := keystore.OpenFileStore(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { fs.Close() })
	w := newEscrowWorld(t, fs)
	v1 := w.create(escrowCanaryID)
	w.rotate(escrowCanaryID)
	racing := &destroyOnEscrowPut{FileStore: fs, id: escrowCanaryID, version: v1.Version}
	svc, recovery := escrowKeys(t, "escrow-a")

	kr := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: newBranchKeysOver(t, w, racing), BranchKeyID: escrowCanaryID, Escrow: svc})
	h, err := kr.AcquireVersion(t.Context(), escrowCanaryID, v1.Version)
	require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
	require.Nil(t, h)
	requireNoEscrowCanary(t, err)
	require.True(t, racing.done)
	rec, err := w.record(v1)
	require.NoError(t, err)
	require.Equal(t, []byte{0x00}, rec.Value, "the copy written is shredded at once")
	require.Equal(t, uint64(2), rec.Revision)
	_, err = w.bk.OpenEscrow(t.Context(), recovery, v1)
	require.ErrorIs(t, err, keyring.ErrKeyDestroyed)
}

// TestBranchKeyEscrowMalformedRecords: a record whose value is cut short,
// runs on, counts no copy or too many, has an unknown version, repeats an
// escrow key or holds an altered copy is ErrEscrowRecord everywhere it is
// read, never a panic, and no error shows the branch key id.
func TestBranchKeyEscrowMalformedRecords(t *testing.T) {
	fs, err := keystore.OpenFileStore(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { fs.Close() })
	w := newEscrowWorld(t, fs)
	ctx := t.Context()
	svc, recovery := escrowKeys(t, "escrow-a")
	v := w.create(escrowCanaryID)
	_, err = w.bk.Escrow(ctx, svc, escrowCanaryID)
	require.NoError(t, err)
	rec, err := w.record(v)
	require.NoError(t, err)
	good := rec.Value
	one := good[2:] // the one copy: digest, key check, provider id, provider info, ciphertext

	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 0x01; return b }
	unparsable := map[string][]byte{
		"cut short":          good[:len(good)-1],
		"trailing byte":      cat(good, []byte{0x00}),
		"version alone":      {0x01},
		"count 0":            {0x01, 0x00},
		"count 0 with copy":  cat([]byte{0x01, 0x00}, one),
		"count 5":            cat([]byte{0x01, 0x05}, one, one, one, one, one),
		"count 255":          cat([]byte{0x01, 0xff}, one),
		"count 2, one copy":  cat([]byte{0x01, 0x02}, one),
		"version 2":          cat([]byte{0x02}, good[1:]),
		"version 0":          cat([]byte{0x00}, good[1:]),
		"two zero bytes":     {0x00, 0x00},
		"empty provider id":  cat([]byte{0x01, 0x01}, one[:64], []byte{0x00, 0x00}, one[64+2+13:]),
		"provider id length": cat(good[:66], []byte{0xff, 0xff}, good[68:]),
		"same key twice":     cat([]byte{0x01, 0x02}, one, one),
	}
	kr := w.service(escrowCanaryID, svc)
	for name, value := range unparsable {
		t.Run(name, func(t *testing.T) {
			w.putRecord(v, value)
			_, err := w.bk.OpenEscrow(ctx, recovery, v)
			require.ErrorIs(t, err, keyring.ErrEscrowRecord)
			requireNoEscrowCanary(t, err)
			_, err = w.bk.EscrowStatus(ctx, v, svc.KeyDigest())
			require.ErrorIs(t, err, keyring.ErrEscrowRecord)
			requireNoEscrowCanary(t, err)
			// The backfill, and a service, write a copy over it.
			rep, err := w.bk.Escrow(ctx, svc, escrowCanaryID)
			require.NoError(t, err)
			require.Equal(t, keyring.EscrowReport{Versions: 1, Escrowed: 1}, rep)
			w.requireOpens(recovery, v)
			w.putRecord(v, value)
			kr.Forget(escrowCanaryID)
			require.NoError(t, encryptWith(t, kr))
			w.requireOpens(recovery, v)
		})
	}

	// Altered copies parse but do not open.
	last := len(good) - 1
	for name, value := range map[string][]byte{
		"ciphertext":    flip(last),
		"enc":           flip(last - 32 - 16 - 100),
		"provider info": flip(2 + 64 + 2 + 13 + 2 + 7),
		"suite id":      flip(2 + 64 + 2 + 13 + 2 + 2),
		"info version":  flip(2 + 64 + 2 + 13 + 2),
		"provider id":   flip(2 + 64 + 2),
		"key check":     flip(2 + 32),
		"ct length":     cat(good[:2+64+2+13+2+7+8], []byte{0x04, 0x8f}, good[2+64+2+13+2+7+8+2:last]),
	} {
		t.Run(name, func(t *testing.T) {
			w.putRecord(v, value)
			got, err := w.bk.OpenEscrow(ctx, recovery, v)
			require.ErrorIs(t, err, keyring.ErrEscrowRecord)
			require.Nil(t, got)
			requireNoEscrowCanary(t, err)
		})
	}
	// Another digest: the record holds no copy for this escrow key.
	w.putRecord(v, flip(2))
	_, err = w.bk.OpenEscrow(ctx, recovery, v)
	require.ErrorIs(t, err, keyring.ErrNoEscrowCopy)
	requireNoEscrowCanary(t, err)

	w.putRecord(v, good)
	w.requireOpens(recovery, v)
}

// TestBranchKeyEscrowConcurrentWriters: services with four escrow keys
// (and two with the same key) unwrapping one version at once all succeed
// by compare-and-swap: the record ends with one copy per escrow key, each
// of which opens.
func TestBranchKeyEscrowConcurrentWriters(t *testing.T) {
	forEachEscrowStore(t, func(t *testing.T, w *escrowWorld) {
		v := w.create(escrowCanaryID)
		var svcs, recoveries []*keyring.HPKEEscrow
		for _, name := range []string{"escrow-a", "escrow-b", "escrow-c", "escrow-d"} {
			svc, recovery := escrowKeys(t, name)
			svcs, recoveries = append(svcs, svc), append(recoveries, recovery)
		}
		svcs = append(svcs, svcs[0])
		errs := make(chan error, len(svcs))
		var start sync.WaitGroup
		start.Add(1)
		for _, svc := range svcs {
			kr := w.service(escrowCanaryID, svc)
			go func() {
				start.Wait()
				errs <- kr.OnEncrypt(context.Background(), encMaterials(phiContext))
			}()
		}
		start.Done()
		for range svcs {
			require.NoError(t, <-errs)
		}
		rec, err := w.record(v)
		require.NoError(t, err)
		require.Equal(t, byte(4), rec.Value[1], "one copy per escrow key")
		require.Equal(t, uint64(4), rec.Revision)
		for _, r := range recoveries {
			w.requireOpens(r, v)
		}
	})
}

// TestDestroyDoesNotReachMessageEscrowEDKs: what docs/OPERATIONS.md says
// under "Crypto-shredding": destroying a branch key shreds its escrow
// record, but a message whose data key was also wrapped to the escrow key
// (an HPKEEscrow child of a Multi beside the hierarchical keyring) carries
// that escrow EDK in itself, and the escrow private key still opens it.
func TestDestroyDoesNotReachMessageEscrowEDKs(t *testing.T) {
	w := newEscrowWorld(t, openEscrowStore(t, "file"))
	ctx := t.Context()
	svc, recovery := escrowKeys(t, "escrow-a")
	w.create(escrowCanaryID)
	multi, err := keyring.NewMulti(w.service(escrowCanaryID, svc), svc)
	require.NoError(t, err)
	enc := encMaterials(phiContext)
	require.NoError(t, multi.OnEncrypt(ctx, enc))
	require.Len(t, enc.EncryptedDataKeys, 2)

	require.NoError(t, w.custodian.DestroyKey(ctx, escrowCanaryID))
	fresh := newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: w.bk, BranchKeyID: escrowCanaryID})
	require.ErrorIs(t, fresh.OnDecrypt(ctx, decMaterials(phiContext), enc.EncryptedDataKeys), keyring.ErrKeyDestroyed)

	dec := decMaterials(phiContext)
	require.NoError(t, recovery.OnDecrypt(ctx, dec, enc.EncryptedDataKeys))
	require.Equal(t, enc.DataKey, dec.DataKey, "the message's own escrow EDK still opens")
}

// TestDropEscrowCopies: the copies of a retired escrow key are dropped
// from every record that has another copy, freeing a slot for a fifth
// key; a record whose only copy it is keeps it; the successor's copies
// still open; a second run drops nothing.
func TestDropEscrowCopies(t *testing.T) {
	forEachEscrowStore(t, func(t *testing.T, w *escrowWorld) {
		ctx := t.Context()
		v1 := w.create(escrowCanaryID)
		v2 := w.rotate(escrowCanaryID)
		// writer writes under v2 at once (no propagation window).
		writer := func(e *keyring.HPKEEscrow) *keyring.Hierarchical {
			return newHierarchical(t, keyring.HierarchicalConfig{BranchKeys: w.bk, BranchKeyID: escrowCanaryID, Escrow: e, PropagationWindow: time.Nanosecond})
		}
		old, _ := escrowKeys(t, "escrow-old")
		_, err := w.bk.Escrow(ctx, old, "")
		require.NoError(t, err)
		var successors []*keyring.HPKEEscrow
		var recovery *keyring.HPKEEscrow
		for i := range keyring.MaxBranchKeyEscrowCopies - 1 {
			svc, rec := escrowKeys(t, "escrow-"+strconv.Itoa(i))
			successors, recovery = append(successors, svc), rec
			// The last successor escrows v2 only: v1's record stays full
			// of other keys' copies but for it.
			id := escrowCanaryID
			if i == keyring.MaxBranchKeyEscrowCopies-2 {
				require.NoError(t, encryptWith(t, writer(svc)))
				continue
			}
			_, err := w.bk.Escrow(ctx, svc, id)
			require.NoError(t, err)
		}
		fifth, fifthRecovery := escrowKeys(t, "escrow-fifth")
		require.ErrorIs(t, encryptWith(t, writer(fifth)), keyring.ErrEscrowRecord, "v2's record is full")

		rep, err := keyring.DropEscrowCopies(ctx, w.store, old.KeyDigest(), "")
		require.NoError(t, err)
		require.Equal(t, keyring.DropReport{Dropped: 2}, rep)
		has, err := w.bk.EscrowStatus(ctx, v2, old.KeyDigest())
		require.NoError(t, err)
		require.False(t, has)
		w.requireOpens(recovery, v2)
		require.NoError(t, encryptWith(t, writer(fifth)), "the slot is free")
		w.requireOpens(fifthRecovery, v2)

		rep, err = keyring.DropEscrowCopies(ctx, w.store, old.KeyDigest(), escrowCanaryID)
		require.NoError(t, err)
		require.Zero(t, rep, "nothing left to drop")

		// v1's record holds copies of the first two successors; dropping
		// them leaves its last one in place.
		rep, err = keyring.DropEscrowCopies(ctx, w.store, successors[0].KeyDigest(), "")
		require.NoError(t, err)
		require.Equal(t, keyring.DropReport{Dropped: 2}, rep)
		rep, err = keyring.DropEscrowCopies(ctx, w.store, successors[1].KeyDigest(), "")
		require.NoError(t, err)
		require.Equal(t, keyring.DropReport{Dropped: 1, Kept: 1}, rep, "v1's last copy stays")
		has, err = w.bk.EscrowStatus(ctx, v1, successors[1].KeyDigest())
		require.NoError(t, err)
		require.True(t, has)
	})
}
