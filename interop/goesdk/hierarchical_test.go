package goesdk

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	awsks "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographykeystoresmithygenerated"
	awskstypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographykeystoresmithygeneratedtypes"
	mpltypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygeneratedtypes"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	ddbstore "github.com/phicrypt/phicrypt/keystore/dynamodb"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// The hierarchical keyring's interop with the Go ESDK (issue 10, "[6/12]
// keystore"): one branch key table in moto_server's DynamoDB, written and
// read by the MPL's KeyStore (CreateKeyStore, CreateKey, VersionKey) and by
// phicrypt's keystore/dynamodb store under the same logical key store name.
// Branch keys made and rotated on either side serve both hierarchical
// keyrings straight from the table; messages of the matrix() vectors go
// both ways under every version, before and after a rotation on the AWS
// side and one on phicrypt's side. The branch keys' KMS key lives on
// moto_server and on kmsmock in turn.
//
// The MPL's generated Go clients (KeyStore, keyrings) take a
// context.Context and drop it: their DynamoDB and KMS shims call the AWS
// SDK with context.Background(), so no deadline or cancellation reaches
// those calls. The clients here point at local endpoints and need none.

// hierarchyProviderID is the provider id of the hierarchical keyrings'
// encrypted data keys; the provider info is the branch key id.
const hierarchyProviderID = "aws-kms-hierarchy"

// hierFrames: a small frame, so the larger sizes span several frames, and
// phicrypt's common 4 KiB.
var hierFrames = []int{128, 4096}

// motoURL is moto_server's URL: the only DynamoDB these tests have. Without
// it they skip, except in the full suite, which must run them.
func motoURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("PHICRYPT_MOTO_URL")
	if url == "" {
		if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
			t.Fatal("the full suite must set PHICRYPT_MOTO_URL: hierarchical keyring interop with the Go ESDK keeps branch keys in moto_server's DynamoDB")
		}
		t.Skip("PHICRYPT_MOTO_URL is not set: hierarchical keyring interop with the Go ESDK (branch keys in moto_server's DynamoDB) not run")
	}
	return url
}

// hierTargets are the KMS back ends the branch keys' KMS key lives on:
// moto_server itself and kmsmock; the table is in moto_server either way.
func hierTargets(t *testing.T) (ddbURL string, targets []kmsTarget) {
	t.Helper()
	ddbURL = motoURL(t)
	l := kmsmock.StartTest(t, kmsmock.Config{Region: kmsRegion})
	return ddbURL, []kmsTarget{
		newKMSTarget(t, "moto", kmsmock.NewClient(ddbURL, kmsRegion, "goesdk-interop", "x")),
		newKMSTarget(t, "kmsmock", l.Client("goesdk-interop")),
	}
}

// sharedTable is one branch key table seen by both sides: the MPL's KeyStore
// and phicrypt's DynamoDB store, with one KMS key and one logical name
// (which differs from the table name, so only the logical name can be what
// both bind into the KMS encryption context).
type sharedTable struct {
	kms     kmsTarget
	ddb     *awsdynamodb.Client
	table   string
	logical string
	aws     *awsks.Client
	store   *ddbstore.Store
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newSharedTable makes the table with the MPL's CreateKeyStore and opens
// phicrypt's store on it.
func newSharedTable(t *testing.T, tg kmsTarget, ddbURL string) *sharedTable {
	t.Helper()
	suffix := randomHex(6)
	st := &sharedTable{
		kms: tg, table: "goesdk-keystore-" + suffix, logical: "goesdk-logical-" + suffix,
		ddb: awsdynamodb.New(awsdynamodb.Options{
			Region:       kmsRegion,
			BaseEndpoint: aws.String(ddbURL),
			Credentials:  credentials.NewStaticCredentialsProvider("goesdk-interop", "x", ""),
		}),
	}
	st.aws = st.awsKeyStore(t, st.logical)
	out, err := st.aws.CreateKeyStore(context.Background(), awskstypes.CreateKeyStoreInput{})
	if err != nil {
		t.Fatalf("MPL CreateKeyStore: %v", err)
	}
	if !strings.HasSuffix(out.TableArn, ":table/"+st.table) {
		t.Fatalf("MPL CreateKeyStore made %q, not the table asked for", out.TableArn)
	}
	s, err := ddbstore.New(st.ddb, st.table)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	st.store = s
	return st
}

// awsKeyStore is the MPL's KeyStore on the table under a logical name.
func (st *sharedTable) awsKeyStore(t *testing.T, logical string) *awsks.Client {
	t.Helper()
	ks, err := awsks.NewClient(awskstypes.KeyStoreConfig{
		DdbTableName:        st.table,
		LogicalKeyStoreName: logical,
		KmsConfiguration:    &awskstypes.KMSConfigurationMemberkmsKeyArn{Value: st.kms.keyARN},
		DdbClient:           st.ddb,
		KmsClient:           st.kms.client,
	})
	if err != nil {
		t.Fatalf("MPL KeyStore: %v", err)
	}
	return ks
}

// awsKeyring is a fresh AWS hierarchical keyring for branch key id (a
// fresh cache: it reads the branch:ACTIVE item again).
func (st *sharedTable) awsKeyring(t *testing.T, p *goESDK, ks *awsks.Client, id string) materials {
	t.Helper()
	kr, err := p.mpl.CreateAwsKmsHierarchicalKeyring(context.Background(), mpltypes.CreateAwsKmsHierarchicalKeyringInput{
		KeyStore: ks, BranchKeyId: aws.String(id), TtlSeconds: 60,
	})
	if err != nil {
		t.Fatalf("ESDK hierarchical keyring: %v", err)
	}
	return withKeyring(kr)
}

// phicryptSide is BranchKeys over phicrypt's store under a logical name and
// a fresh hierarchical keyring whose clock runs one propagation window
// (CacheTTL) ahead, as a process's would that long after a rotation, so it
// writes under a version just made instead of the one it replaced.
func (st *sharedTable) phicryptSide(t *testing.T, logical, id string) (*keyring.BranchKeys, *phicrypt.Encryptor, keyring.Keyring) {
	t.Helper()
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{
		Store: st.store, Client: st.kms.client, KMSKeyARN: st.kms.keyARN, LogicalStoreName: logical})
	if err != nil {
		t.Fatal(err)
	}
	later := func() time.Time { return time.Now().Add(time.Minute) }
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: id, CacheTTL: time.Minute, Now: later})
	if err != nil {
		t.Fatal(err)
	}
	return bk, newEncryptor(t, phicrypt.Config{Keyring: kr}), kr
}

// activeVersion is the active version of id as phicrypt's store reads it,
// which must be the one the MPL's KeyStore reads.
func (st *sharedTable) activeVersion(t *testing.T, id string) string {
	t.Helper()
	a, err := st.store.Active(context.Background(), id)
	if err != nil {
		t.Fatalf("store Active: %v", err)
	}
	out, err := st.aws.GetActiveBranchKey(context.Background(), awskstypes.GetActiveBranchKeyInput{BranchKeyIdentifier: id})
	if err != nil {
		t.Fatalf("MPL GetActiveBranchKey: %v", err)
	}
	if got := out.BranchKeyMaterials.BranchKeyVersion; got != a.Version {
		t.Fatalf("the MPL's KeyStore reads active version %s, phicrypt's store %s", got, a.Version)
	}
	if a.State != keystore.StateActive {
		t.Fatalf("the store's active version %s is %v", a.Version, a.State)
	}
	return a.Version
}

// sameMaterial: for each version, the branch key the MPL's KeyStore unwraps
// (GetBranchKeyVersion) is the one phicrypt's BranchKeys unwraps from its
// store's record, and for the active version the MPL's branch:ACTIVE copy
// (GetActiveBranchKey) holds it too.
func (st *sharedTable) sameMaterial(t *testing.T, bk *keyring.BranchKeys, id, active string, versions ...string) {
	t.Helper()
	ctx := context.Background()
	for _, v := range versions {
		rec, err := st.store.Get(ctx, id, v)
		if err != nil {
			t.Fatalf("store Get of version %s: %v", v, err)
		}
		ours, err := bk.Unwrap(ctx, rec)
		if err != nil {
			t.Fatalf("phicrypt Unwrap of version %s: %v", v, err)
		}
		theirs, err := st.aws.GetBranchKeyVersion(ctx, awskstypes.GetBranchKeyVersionInput{BranchKeyIdentifier: id, BranchKeyVersion: v})
		if err != nil {
			ours.Wipe()
			t.Fatalf("MPL GetBranchKeyVersion of version %s: %v", v, err)
		}
		same := bytes.Equal(ours, theirs.BranchKeyMaterials.BranchKey) && theirs.BranchKeyMaterials.BranchKeyVersion == v
		if v == active {
			a, err := st.aws.GetActiveBranchKey(ctx, awskstypes.GetActiveBranchKeyInput{BranchKeyIdentifier: id})
			if err != nil {
				ours.Wipe()
				t.Fatalf("MPL GetActiveBranchKey: %v", err)
			}
			same = same && bytes.Equal(ours, a.BranchKeyMaterials.BranchKey)
		}
		ours.Wipe()
		if !same {
			t.Fatalf("version %s: the MPL's KeyStore and phicrypt unwrap different branch keys", v)
		}
	}
}

// sent is a batch of messages, one per vector, and the version they were
// written under.
type sent struct {
	by      string
	version string
	msgs    [][]byte
}

// checkHierEDK: the message has one encrypted data key, the hierarchical
// keyring's for branch key id, with the 16 bytes of version at bytes 28..44
// of its 92-byte ciphertext (salt 16, IV 12, version 16, key 32, tag 16;
// aws-kms-hierarchical-keyring.md "Ciphertext").
func checkHierEDK(t *testing.T, msg []byte, id, version string) {
	t.Helper()
	l, err := parseLayout(msg)
	if err != nil {
		t.Fatalf("message layout: %v", err)
	}
	if len(l.edkCipher) != 1 || l.edkProvider[0] != hierarchyProviderID || l.edkInfo[0] != id {
		t.Fatalf("want one %s encrypted data key for the branch key, got %d (providers %q)", hierarchyProviderID, len(l.edkCipher), l.edkProvider)
	}
	off := l.edkCipher[0]
	if n := int(msg[off-2])<<8 | int(msg[off-1]); n != 16+12+16+32+16 {
		t.Fatalf("encrypted data key is %d bytes, want 92", n)
	}
	want, err := hex.DecodeString(strings.ReplaceAll(version, "-", ""))
	if err != nil || len(want) != 16 {
		t.Fatalf("version %s is not a UUID", version)
	}
	if !bytes.Equal(msg[off+28:off+44], want) {
		t.Fatalf("encrypted data key names version %x, want %s", msg[off+28:off+44], version)
	}
}

// goWrites encrypts every vector with the AWS keyring m; each message must
// name version.
func goWrites(t *testing.T, p *goESDK, m materials, vs []vector, id, version string) sent {
	t.Helper()
	out := sent{by: "ESDK", version: version}
	for _, v := range vs {
		msg, err := p.encrypt(m, v.suite, v.frame, v.pt, v.ec)
		if err != nil {
			t.Fatalf("ESDK hierarchical encrypt %s: %v", v.name, err)
		}
		checkHeader(t, msg, v)
		checkHierEDK(t, msg, id, version)
		out.msgs = append(out.msgs, msg)
	}
	return out
}

// phicryptWrites encrypts every vector with phicrypt's keyring kr.
func phicryptWrites(t *testing.T, kr keyring.Keyring, vs []vector, id, version string) sent {
	t.Helper()
	out := sent{by: "phicrypt", version: version}
	for _, v := range vs {
		enc := newEncryptor(t, phicrypt.Config{Keyring: kr, Suite: v.suite, FrameLength: v.frame})
		msg, err := enc.Encrypt(context.Background(), v.pt, v.ec)
		if err != nil {
			t.Fatalf("phicrypt hierarchical encrypt %s: %v", v.name, err)
		}
		checkHierEDK(t, msg, id, version)
		out.msgs = append(out.msgs, msg)
	}
	return out
}

// phicryptReadsAll: phicrypt's keyring reads the ESDK's messages.
func phicryptReadsAll(t *testing.T, enc *phicrypt.Encryptor, vs []vector, s sent) {
	t.Helper()
	for i, v := range vs {
		t.Run("phicrypt-reads-"+s.version[:8]+"/"+v.name, func(t *testing.T) { phicryptReads(t, enc, s.msgs[i], v) })
	}
}

// goReadsAll: the ESDK's keyring reads phicrypt's messages.
func goReadsAll(t *testing.T, p *goESDK, m materials, vs []vector, s sent) {
	t.Helper()
	for i, v := range vs {
		t.Run("esdk-reads-"+s.version[:8]+"/"+v.name, func(t *testing.T) { esdkReads(t, p, m, s.msgs[i], v) })
	}
}

// exchange writes vs on both sides under the active version and has each
// side read the other's messages, and then every batch of older ones.
func (st *sharedTable) exchange(t *testing.T, p *goESDK, id, version string, vs []vector, older []sent) (fromGo, fromPhicrypt sent) {
	t.Helper()
	_, enc, kr := st.phicryptSide(t, st.logical, id)
	m := st.awsKeyring(t, p, st.aws, id)
	fromGo = goWrites(t, p, m, vs, id, version)
	fromPhicrypt = phicryptWrites(t, kr, vs, id, version)
	phicryptReadsAll(t, enc, vs, fromGo)
	goReadsAll(t, p, m, vs, fromPhicrypt)
	for _, s := range older {
		if s.by == "ESDK" {
			phicryptReadsAll(t, enc, vs, s)
		} else {
			goReadsAll(t, p, m, vs, s)
		}
	}
	return fromGo, fromPhicrypt
}

func TestHierarchicalGoESDKSharedTable(t *testing.T) {
	ddbURL, targets := hierTargets(t)
	p := newGoESDK(t)
	for _, tg := range targets {
		t.Run(tg.name+"/AWS-made", func(t *testing.T) { testAWSMadeKey(t, p, tg, ddbURL) })
		t.Run(tg.name+"/phicrypt-made", func(t *testing.T) { testPhicryptMadeKey(t, p, tg, ddbURL) })
	}
}

// testAWSMadeKey: a branch key the MPL's KeyStore created and then rotated
// (VersionKey), used by phicrypt straight from the table.
func testAWSMadeKey(t *testing.T, p *goESDK, tg kmsTarget, ddbURL string) {
	ctx := context.Background()
	st := newSharedTable(t, tg, ddbURL)
	created, err := st.aws.CreateKey(ctx, awskstypes.CreateKeyInput{})
	if err != nil {
		t.Fatalf("MPL CreateKey: %v", err)
	}
	id := created.BranchKeyIdentifier
	v1 := st.activeVersion(t, id)
	vs := matrix(hierFrames)

	bk, _, _ := st.phicryptSide(t, st.logical, id)
	go1, phi1 := st.exchange(t, p, id, v1, vs, nil)
	st.sameMaterial(t, bk, id, v1, v1)
	refusedUnderOtherLogicalName(t, p, st, id, vs[len(vs)-1], go1.msgs[len(vs)-1], phi1.msgs[len(vs)-1])
	tamperedEDKRefused(t, p, st, id, vs, go1, phi1)

	// The AWS side rotates: both sides write under version 2 at once (fresh
	// keyrings) and still read version 1's messages.
	if _, err := st.aws.VersionKey(ctx, awskstypes.VersionKeyInput{BranchKeyIdentifier: id}); err != nil {
		t.Fatalf("MPL VersionKey: %v", err)
	}
	v2 := st.activeVersion(t, id)
	if v2 == v1 {
		t.Fatal("MPL VersionKey left the active version unchanged")
	}
	go2, phi2 := st.exchange(t, p, id, v2, vs, []sent{go1, phi1})
	st.sameMaterial(t, bk, id, v2, v1, v2)
	st.checkVersions(t, id, v2, v1, v2)

	// phicrypt's own items (a usage count on version 2, version 1 retired)
	// are items of their own in the partition: the MPL's KeyStore still
	// rotates and both keyrings still work. Retiring stops phicrypt's
	// readers only; the AWS keyring reads no phicrypt item and still
	// decrypts under version 1 (keystore/dynamodb's Store doc).
	if _, err := st.store.AddUsage(ctx, id, v2, 5); err != nil {
		t.Fatalf("store AddUsage: %v", err)
	}
	if err := st.store.SetState(ctx, id, v1, keystore.StateDecryptOnly, keystore.StateRetired); err != nil {
		t.Fatalf("store SetState: %v", err)
	}
	if _, err := st.aws.VersionKey(ctx, awskstypes.VersionKeyInput{BranchKeyIdentifier: id}); err != nil {
		t.Fatalf("MPL VersionKey after phicrypt's items: %v", err)
	}
	v3 := st.activeVersion(t, id)
	if v3 == v2 || v3 == v1 {
		t.Fatalf("MPL VersionKey after phicrypt's items left the active version at %s", v3)
	}
	small := vs[:4]
	st.exchange(t, p, id, v3, small, []sent{go2.first(4), phi2.first(4)})
	_, enc, _ := st.phicryptSide(t, st.logical, id)
	m := st.awsKeyring(t, p, st.aws, id)
	for i, v := range small {
		t.Run("retired-v1/"+v.name, func(t *testing.T) {
			if _, _, err := enc.Decrypt(context.Background(), go1.msgs[i], v.ec); !errors.Is(err, keyring.ErrVersionRetired) {
				t.Fatalf("phicrypt read a message under a version it retired: %v", err)
			}
			crossChecked()
			esdkReads(t, p, m, phi1.msgs[i], v)
		})
	}
	list, err := st.store.List(ctx, id)
	if err != nil || len(list) != 3 {
		t.Fatalf("store List: %d versions (%v), want 3", len(list), err)
	}
	for _, v := range list {
		if want := map[string]keystore.State{v1: keystore.StateRetired, v2: keystore.StateDecryptOnly, v3: keystore.StateActive}[v.Version]; v.State != want {
			t.Fatalf("version %s is %v after the MPL's rotation, want %v", v.Version, v.State, want)
		}
	}
}

// first is the batch's first n messages.
func (s sent) first(n int) sent {
	s.msgs = s.msgs[:n]
	return s
}

// testPhicryptMadeKey: a branch key phicrypt's custody created and rotated,
// used by the AWS keyring, and then rotated by the MPL's KeyStore.
func testPhicryptMadeKey(t *testing.T, p *goESDK, tg kmsTarget, ddbURL string) {
	ctx := context.Background()
	st := newSharedTable(t, tg, ddbURL)
	id := "phicrypt-tenant-" + randomHex(4)
	bk, _, _ := st.phicryptSide(t, st.logical, id)
	// custody sees a store in AWS's layout and writes the branch:ACTIVE copy
	// (KMS ReEncrypt) and the beacon key with the version.
	custodian, err := custody.NewBranchKeys(bk.Config())
	if err != nil {
		t.Fatal(err)
	}
	first, err := custodian.CreateBranchKey(ctx, id)
	if err != nil {
		t.Fatalf("custody CreateBranchKey: %v", err)
	}
	v1 := first.Version
	if got := st.activeVersion(t, id); got != v1 {
		t.Fatalf("active version %s, custody made %s", got, v1)
	}
	// The MPL's KeyStore authenticates phicrypt's beacon:ACTIVE item too (KMS
	// Decrypt under its encryption context).
	beacon, err := st.aws.GetBeaconKey(ctx, awskstypes.GetBeaconKeyInput{BranchKeyIdentifier: id})
	if err != nil {
		t.Fatalf("MPL GetBeaconKey of phicrypt's branch key: %v", err)
	}
	if len(beacon.BeaconKeyMaterials.BeaconKey) != 32 {
		t.Fatalf("MPL GetBeaconKey: %d-byte beacon key", len(beacon.BeaconKeyMaterials.BeaconKey))
	}
	vs := matrix(hierFrames)
	go1, phi1 := st.exchange(t, p, id, v1, vs, nil)
	st.sameMaterial(t, bk, id, v1, v1)

	// phicrypt's custody rotates.
	next, err := custodian.Rotate(ctx, id)
	if err != nil {
		t.Fatalf("custody Rotate: %v", err)
	}
	v2 := next.Version
	if got := st.activeVersion(t, id); got != v2 || v2 == v1 {
		t.Fatalf("after custody Rotate the active version is %s; custody made %s (was %s)", got, v2, v1)
	}
	go2, phi2 := st.exchange(t, p, id, v2, vs, []sent{go1, phi1})
	st.sameMaterial(t, bk, id, v2, v1, v2)

	// The MPL's KeyStore rotates phicrypt's branch key. VersionKey first
	// authenticates the branch:ACTIVE item (KMS ReEncrypt under its ACTIVE
	// encryption context; branch-key-store.md "VersionKey", "Authenticating
	// a Keystore item"), so this also proves the ACTIVE copy custody wrote.
	if _, err := st.aws.VersionKey(ctx, awskstypes.VersionKeyInput{BranchKeyIdentifier: id}); err != nil {
		t.Fatalf("MPL VersionKey of phicrypt's branch key: %v", err)
	}
	v3 := st.activeVersion(t, id)
	if v3 == v2 || v3 == v1 {
		t.Fatalf("after MPL VersionKey the active version is still %s", v3)
	}
	st.exchange(t, p, id, v3, vs, []sent{go1, phi1, go2, phi2})
	st.sameMaterial(t, bk, id, v3, v1, v2, v3)
	st.checkVersions(t, id, v3, v1, v2, v3)
}

// checkVersions: phicrypt's store lists exactly the versions made on both
// sides, the active one active and the others decrypt-only.
func (st *sharedTable) checkVersions(t *testing.T, id, active string, versions ...string) {
	t.Helper()
	list, err := st.store.List(context.Background(), id)
	if err != nil {
		t.Fatalf("store List: %v", err)
	}
	if len(list) != len(versions) {
		t.Fatalf("the store lists %d versions, want %d", len(list), len(versions))
	}
	want := map[string]bool{}
	for _, v := range versions {
		want[v] = true
	}
	for _, v := range list {
		state := keystore.StateDecryptOnly
		if v.Version == active {
			state = keystore.StateActive
		}
		if !want[v.Version] || v.State != state {
			t.Fatalf("the store lists version %s as %v; want one of the versions made, %v", v.Version, v.State, state)
		}
	}
}

// refusedUnderOtherLogicalName: the logical key store name is bound into the
// branch keys' KMS encryption context on both sides, so a keyring of either
// side configured with another name cannot read the other side's message
// (KMS refuses the context), and one with the right name can (exchange).
func refusedUnderOtherLogicalName(t *testing.T, p *goESDK, st *sharedTable, id string, v vector, fromGo, fromPhicrypt []byte) {
	t.Helper()
	other := st.logical + "-other"
	_, enc, _ := st.phicryptSide(t, other, id)
	if _, _, err := enc.Decrypt(context.Background(), fromGo, v.ec); err == nil {
		t.Fatal("phicrypt read the ESDK's message under another logical key store name")
	}
	crossChecked()
	m := st.awsKeyring(t, p, st.awsKeyStore(t, other), id)
	if _, err := p.decrypt(m, fromPhicrypt, v.ec); err == nil {
		t.Fatal("the ESDK read phicrypt's message under another logical key store name")
	}
	crossChecked()
}

// TestHierarchicalGoKeyStoreBindsExtraAttributes is why phicrypt keeps its
// usage counters and states in items of its own, shown for the Go MPL as
// interop/dynamodb_store_test.go shows it for JS: AWS's KeyStore binds
// every attribute of a branch key item but enc into the KMS encryption
// context (branch-key-store.md "Encryption Context"), so one extra
// attribute on the branch:ACTIVE item makes it unreadable to the MPL.
func TestHierarchicalGoKeyStoreBindsExtraAttributes(t *testing.T) {
	ddbURL := motoURL(t)
	l := kmsmock.StartTest(t, kmsmock.Config{Region: kmsRegion})
	st := newSharedTable(t, newKMSTarget(t, "kmsmock", l.Client("goesdk-interop")), ddbURL)
	ctx := context.Background()
	created, err := st.aws.CreateKey(ctx, awskstypes.CreateKeyInput{})
	if err != nil {
		t.Fatalf("MPL CreateKey: %v", err)
	}
	id := created.BranchKeyIdentifier
	key := map[string]ddbtypes.AttributeValue{
		"branch-key-id": &ddbtypes.AttributeValueMemberS{Value: id},
		"type":          &ddbtypes.AttributeValueMemberS{Value: "branch:ACTIVE"},
	}
	update := func(expr string, values map[string]ddbtypes.AttributeValue) {
		t.Helper()
		_, err := st.ddb.UpdateItem(ctx, &awsdynamodb.UpdateItemInput{
			TableName: &st.table, Key: key, UpdateExpression: &expr, ExpressionAttributeValues: values})
		if err != nil {
			t.Fatalf("UpdateItem: %v", err)
		}
	}
	active := func() error {
		_, err := st.aws.GetActiveBranchKey(ctx, awskstypes.GetActiveBranchKeyInput{BranchKeyIdentifier: id})
		return err
	}
	if err := active(); err != nil {
		t.Fatalf("MPL GetActiveBranchKey of its own key: %v", err)
	}
	// A number attribute (phicrypt's counter would be one) the MPL refuses
	// before calling KMS: an encryption context holds strings only. A
	// string attribute it binds, and KMS refuses the context.
	update("SET usage_count = :n", map[string]ddbtypes.AttributeValue{":n": &ddbtypes.AttributeValueMemberN{Value: "5"}})
	if err := active(); err == nil {
		t.Fatal("the MPL read a branch:ACTIVE item with an extra number attribute")
	} else if !strings.Contains(err.Error(), "not a valid active branch key") {
		t.Fatalf("the MPL refused an extra number attribute for another reason than the item's shape: %v", err)
	}
	update("SET usage_count = :n", map[string]ddbtypes.AttributeValue{":n": &ddbtypes.AttributeValueMemberS{Value: "5"}})
	if err := active(); err == nil {
		t.Fatal("the MPL read a branch:ACTIVE item with an extra string attribute")
	} else if !strings.Contains(err.Error(), "InvalidCiphertext") {
		t.Fatalf("the MPL refused an extra string attribute for another reason than KMS refusing the encryption context: %v", err)
	}
	// phicrypt's store refuses such an item too (it would otherwise hand
	// out a version AWS's readers cannot use).
	if _, err := st.store.Active(ctx, id); !errors.Is(err, keystore.ErrUnsupportedSchema) {
		t.Fatalf("store Active with an extra attribute on branch:ACTIVE: %v, want ErrUnsupportedSchema", err)
	}
	update("REMOVE usage_count", nil)
	if err := active(); err != nil {
		t.Fatalf("MPL GetActiveBranchKey without the extra attribute: %v", err)
	}
	if _, err := st.store.Active(ctx, id); err != nil {
		t.Fatalf("store Active without the extra attribute: %v", err)
	}
}

// hierEDKParts are the parts of the hierarchical keyring's encrypted data
// key (salt 16, IV 12, branch key version 16, wrapped data key 32, tag 16)
// and a byte in each.
var hierEDKParts = []struct {
	name string
	off  int
}{{"salt", 5}, {"iv", 16 + 7}, {"version", 28 + 15}, {"wrapped key", 44 + 31}, {"tag", 76}}

// tamperedEDKRefused: a bit flipped in any part of the other side's
// encrypted data key makes each side refuse the message (the salt, IV and
// version are bound as the wrapping's derivation input, IV or AAD; a
// flipped version names no stored version).
func tamperedEDKRefused(t *testing.T, p *goESDK, st *sharedTable, id string, vs []vector, fromGo, fromPhicrypt sent) {
	t.Helper()
	_, enc, _ := st.phicryptSide(t, st.logical, id)
	m := st.awsKeyring(t, p, st.aws, id)
	for _, i := range []int{0, len(vs) - 1} {
		v := vs[i]
		for _, part := range hierEDKParts {
			t.Run("tampered-"+part.name+"/"+v.name, func(t *testing.T) {
				bad := flipEDK(t, fromGo.msgs[i], part.off)
				if _, _, err := enc.Decrypt(context.Background(), bad, v.ec); !errors.Is(err, phicrypt.ErrNoKey) {
					t.Fatalf("phicrypt on the ESDK's message with its EDK's %s flipped: %v, want ErrNoKey", part.name, err)
				}
				crossChecked()
				bad = flipEDK(t, fromPhicrypt.msgs[i], part.off)
				if _, err := p.decrypt(m, bad, v.ec); err == nil {
					t.Fatalf("the ESDK read phicrypt's message with its EDK's %s flipped", part.name)
				}
				crossChecked()
			})
		}
	}
}

func flipEDK(t *testing.T, msg []byte, off int) []byte {
	t.Helper()
	l, err := parseLayout(msg)
	if err != nil || len(l.edkCipher) != 1 {
		t.Fatalf("message layout: %v", err)
	}
	out := append([]byte(nil), msg...)
	out[l.edkCipher[0]+off] ^= 0x01
	return out
}
