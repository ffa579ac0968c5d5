//go:build interop

package interop

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/dynamodb"
	"github.com/phicrypt/phicrypt/kmsmock"
)

// The DynamoDB store's interop: phicrypt's hierarchical keyring reads and
// writes branch keys straight from the table the JS ESDK's
// BranchKeyStoreNode uses (no import step), both for branch keys JS made
// and rotated and for branch keys phicrypt made and rotated; messages go
// both ways, and each side rotates the other's branch key.

// ddbStore opens keystore/dynamodb on the JS keystore's table.
func ddbStore(t *testing.T, ks *jsKeystore) *dynamodb.Store {
	t.Helper()
	s, err := dynamodb.New(ddbClient(ks), ks.table)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ddbClient(ks *jsKeystore) *awsdynamodb.Client {
	return awsdynamodb.New(awsdynamodb.Options{
		Region:       kmsRegion,
		BaseEndpoint: aws.String(ks.ddbURL),
		Credentials:  credentials.NewStaticCredentialsProvider("interop", "x", ""),
	})
}

// ddbSide is phicrypt's view of the table: BranchKeys over the DynamoDB
// store and a fresh hierarchical keyring whose clock runs one propagation
// window ahead (as ks.goSide's does), so it writes under the newest version.
func ddbSide(t *testing.T, ks *jsKeystore, s *dynamodb.Store) (*keyring.BranchKeys, *keyring.Hierarchical) {
	t.Helper()
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{
		Store: s, Client: ks.kms.client, KMSKeyARN: ks.kms.keyARN, LogicalStoreName: ks.logical})
	if err != nil {
		t.Fatal(err)
	}
	later := func() time.Time { return time.Now().Add(time.Minute) }
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: ks.branchKeyID, CacheTTL: time.Minute, Now: later})
	if err != nil {
		t.Fatal(err)
	}
	return bk, kr
}

func activeVersion(t *testing.T, s *dynamodb.Store, id string) string {
	t.Helper()
	a, err := s.Active(context.Background(), id)
	if err != nil {
		t.Fatalf("Active: %v", err)
	}
	return a.Version
}

// TestDynamoDBStoreInterop: a branch key JS made and rotated, read by
// phicrypt straight from the table; and a branch key phicrypt made and
// rotated, read by JS from the same table.
func TestDynamoDBStoreInterop(t *testing.T) {
	ddbURL, targets := hierTargets(t)
	for _, tg := range targets {
		t.Run(tg.name+"/JS-made", func(t *testing.T) { testJSMadeKey(t, tg, ddbURL) })
		t.Run(tg.name+"/phicrypt-made", func(t *testing.T) { testPhicryptMadeKey(t, tg, ddbURL) })
	}
}

func testJSMadeKey(t *testing.T, tg kmsTarget, ddbURL string) {
	ks := newKeystore(t, tg, ddbURL)
	s := ddbStore(t, ks)
	vs := hierMatrix()

	// Version 1, JS's: the store names JS's active version, and phicrypt
	// rebuilds for it the KMS encryption context JS decrypts it with.
	e1 := ks.export(t)
	v1 := e1.ActiveVersion
	if got := activeVersion(t, s, ks.branchKeyID); got != v1 {
		t.Fatalf("the store's active version is %s, JS's %s", got, v1)
	}
	bk, kr := ddbSide(t, ks, s)
	stored, err := s.List(context.Background(), ks.branchKeyID)
	if err != nil || len(stored) != 1 {
		t.Fatalf("List: %d versions (%v), want 1", len(stored), err)
	}
	if got, want := bk.EncryptionContext(stored[0]), e1.Versions[0].EncryptionContext; !maps.Equal(got, want) {
		t.Fatalf("phicrypt's KMS encryption context\n%v\ndiffers from the JS keystore's\n%v", got, want)
	}
	js1 := runHierJS(t, ks.encryptJobs(vs))
	ks.goDecryptsJS(t, kr, vs, js1, v1)
	go1 := goEncrypt(t, kr, vs)
	ks.jsDecryptedGo(t, vs, runHierJS(t, ks.decryptJobs(vs, go1)), v1)

	// JS rotates; phicrypt sees version 2 active at once (a fresh keyring),
	// 1 decrypt-only, and messages go both ways under both.
	var none struct{}
	ks.jsOp(t, "keystore-version-key", nil, &none)
	e2 := ks.export(t)
	v2 := e2.ActiveVersion
	if v2 == v1 || activeVersion(t, s, ks.branchKeyID) != v2 {
		t.Fatalf("after JS versionKey: JS active %s, store active %s (was %s)", v2, activeVersion(t, s, ks.branchKeyID), v1)
	}
	_, kr = ddbSide(t, ks, s)
	go2 := goEncrypt(t, kr, vs)
	jobs := ks.encryptJobs(vs)
	jobs = append(jobs, ks.decryptJobs(vs, go1)...)
	jobs = append(jobs, ks.decryptJobs(vs, go2)...)
	res := runHierJS(t, jobs)
	n := len(vs)
	ks.jsDecryptedGo(t, vs, res[n:2*n], v1)
	ks.jsDecryptedGo(t, vs, res[2*n:], v2)
	ks.goDecryptsJS(t, kr, vs, js1, v1)
	ks.goDecryptsJS(t, kr, vs, res[:n], v2)

	// phicrypt's own items (a usage count, a retirement) leave JS's reads
	// and rotations working: they are items of their own.
	if _, err := s.AddUsage(context.Background(), ks.branchKeyID, v2, 5); err != nil {
		t.Fatal(err)
	}
	if err := s.SetState(context.Background(), ks.branchKeyID, v1, keystore.StateDecryptOnly, keystore.StateRetired); err != nil {
		t.Fatal(err)
	}
	ks.jsOp(t, "keystore-version-key", nil, &none)
	v3 := activeVersion(t, s, ks.branchKeyID)
	if v3 == v2 {
		t.Fatal("JS versionKey after phicrypt's items made no new version")
	}
	_, kr = ddbSide(t, ks, s)
	go3 := goEncrypt(t, kr, vs[:2])
	res = runHierJS(t, append(ks.encryptJobs(vs[:2]), ks.decryptJobs(vs[:2], go3)...))
	ks.goDecryptsJS(t, kr, vs[:2], res[:2], v3)
	ks.jsDecryptedGo(t, vs[:2], res[2:], v3)
}

func testPhicryptMadeKey(t *testing.T, tg kmsTarget, ddbURL string) {
	ks := newKeystore(t, tg, ddbURL) // the table, made by JS; its JS branch key is not used
	s := ddbStore(t, ks)
	ctx := context.Background()
	ks.branchKeyID = "phicrypt-tenant-" + randomHex(4)
	bk, _ := ddbSide(t, ks, s)
	// The custodian's own code path: custody sees a store in AWS's layout
	// and adds the ACTIVE copy (KMS ReEncrypt) and the beacon key.
	custodian := testkeys.Custodian(t, bk)
	v, err := custodian.CreateBranchKey(ctx, ks.branchKeyID)
	if err != nil {
		t.Fatal(err)
	}
	v1 := v.Version
	vs := hierMatrix()

	// JS reads phicrypt's branch:ACTIVE item (its ACTIVE copy) to encrypt,
	// and phicrypt's branch:version item to decrypt.
	_, kr := ddbSide(t, ks, s)
	go1 := goEncrypt(t, kr, vs)
	res := runHierJS(t, append(ks.encryptJobs(vs), ks.decryptJobs(vs, go1)...))
	n := len(vs)
	js1 := res[:n]
	ks.goDecryptsJS(t, kr, vs, js1, v1)
	ks.jsDecryptedGo(t, vs, res[n:], v1)
	e1 := ks.export(t)
	if e1.ActiveVersion != v1 || len(e1.Versions) != 1 || !e1.Beacon {
		t.Fatalf("JS export: active %s, %d versions, beacon %v; want %s, 1, true", e1.ActiveVersion, len(e1.Versions), e1.Beacon, v1)
	}
	if got := e1.Versions[0].EncryptionContext; !maps.Equal(got, bk.EncryptionContext(v)) {
		t.Fatalf("JS's storage builds the KMS encryption context\n%v\nfor phicrypt's version; phicrypt binds\n%v", got, bk.EncryptionContext(v))
	}

	// phicrypt rotates; JS encrypts under the new version and reads both.
	next, err := custodian.Rotate(ctx, ks.branchKeyID)
	if err != nil {
		t.Fatal(err)
	}
	v2 := next.Version
	_, kr = ddbSide(t, ks, s)
	go2 := goEncrypt(t, kr, vs)
	jobs := ks.encryptJobs(vs)
	jobs = append(jobs, ks.decryptJobs(vs, go1)...)
	jobs = append(jobs, ks.decryptJobs(vs, go2)...)
	res = runHierJS(t, jobs)
	ks.goDecryptsJS(t, kr, vs, res[:n], v2)
	ks.jsDecryptedGo(t, vs, res[n:2*n], v1)
	ks.jsDecryptedGo(t, vs, res[2*n:], v2)
	ks.goDecryptsJS(t, kr, vs, js1, v1)

	// JS rotates phicrypt's branch key: its VersionKey authenticates the
	// ACTIVE item with KMS ReEncrypt under the ACTIVE context (branch-key-
	// store.md "Authenticating a Keystore item") before it writes, so this
	// also proves the ACTIVE copy phicrypt stored.
	var none struct{}
	ks.jsOp(t, "keystore-version-key", nil, &none)
	v3 := activeVersion(t, s, ks.branchKeyID)
	if v3 == v2 || v3 == v1 {
		t.Fatalf("after JS versionKey the store's active version is still %s", v3)
	}
	_, kr = ddbSide(t, ks, s)
	go3 := goEncrypt(t, kr, vs[:2])
	res = runHierJS(t, append(ks.encryptJobs(vs[:2]), ks.decryptJobs(vs[:2], go3)...))
	ks.goDecryptsJS(t, kr, vs[:2], res[:2], v3)
	ks.jsDecryptedGo(t, vs[:2], res[2:], v3)
}

// TestDynamoDBExtraAttributeBreaksAWSReaders is why phicrypt keeps its
// usage counters and states in items of its own: AWS's readers bind every
// attribute of a branch key item (but enc) into the KMS encryption context
// (branch-key-store.md "Encryption Context": "Any additionally attributes
// on the DynamoDB item MUST be added to the encryption context"), so one
// extra attribute on the branch:ACTIVE item stops the JS keyring.
func TestDynamoDBExtraAttributeBreaksAWSReaders(t *testing.T) {
	ddbURL := motoURL(t)
	tg := newKMSTarget(t, "moto", ddbURL, kmsmock.NewClient(ddbURL, kmsRegion, "interop", "x"))
	ks := newKeystore(t, tg, ddbURL)
	c := ddbClient(ks)
	key := map[string]types.AttributeValue{
		"branch-key-id": &types.AttributeValueMemberS{Value: ks.branchKeyID},
		"type":          &types.AttributeValueMemberS{Value: "branch:ACTIVE"},
	}
	update := func(expr string, values map[string]types.AttributeValue) {
		t.Helper()
		_, err := c.UpdateItem(context.Background(), &awsdynamodb.UpdateItemInput{
			TableName: &ks.table, Key: key, UpdateExpression: &expr, ExpressionAttributeValues: values})
		if err != nil {
			t.Fatal(err)
		}
	}
	encrypt := func() hierResult {
		t.Helper()
		return runHierJS(t, []job{{Op: "encrypt", InputB64: b64([]byte("x")), Args: ks.args(nil)}})[0]
	}
	update("SET usage_count = :n", map[string]types.AttributeValue{":n": &types.AttributeValueMemberN{Value: "5"}})
	if r := encrypt(); r.OK {
		t.Fatal("the JS keyring encrypted with an extra attribute on the branch:ACTIVE item")
	} else if !strings.Contains(r.Error, "InvalidCiphertextException") {
		t.Fatalf("JS failed for another reason than KMS refusing the encryption context: %s", r.Error)
	}
	update("REMOVE usage_count", nil)
	if r := encrypt(); !r.OK {
		t.Fatalf("without the extra attribute: %s", r.Error)
	}
}
