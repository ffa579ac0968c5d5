//go:build interop

package interop

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// The hierarchical keyring's interop: the JS ESDK's BranchKeyStoreNode makes
// branch keys in a DynamoDB table (moto_server) and versions them; their
// branch:version items are imported into a phicrypt file store; messages
// written by either keyring under either version are read by the other.

// hierarchyProviderID is the EDK provider id both keyrings write.
const hierarchyProviderID = "aws-kms-hierarchy"

// createTimeLayout is the JS keystore's create-time (branch-key-store.md
// "CreateKey": ISO 8601, UTC, microseconds).
const createTimeLayout = "2006-01-02T15:04:05.000000Z"

// motoURL is moto_server's URL: it is the only DynamoDB the tests have, so
// without it they skip, except in the full suite, which must run them.
func motoURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("PHICRYPT_MOTO_URL")
	if url == "" {
		if os.Getenv("PHICRYPT_FULL_SUITE") != "" {
			t.Fatal("the full suite must set PHICRYPT_MOTO_URL: hierarchical keyring interop keeps branch keys in moto_server's DynamoDB")
		}
		t.Skip("PHICRYPT_MOTO_URL is not set: hierarchical keyring interop (branch keys in moto_server's DynamoDB) not run")
	}
	return url
}

// jsKeystore is one JS branch key store (a DynamoDB table in moto_server, its
// KMS key on kms) and the phicrypt file store its versions are imported into.
type jsKeystore struct {
	kms         kmsTarget
	ddbURL      string
	table       string
	logical     string
	branchKeyID string
	store       *keystore.FileStore
}

// hierTargets are the KMS back ends the JS keystore's KMS key lives on:
// moto_server itself and kmsmock (with the table in moto_server either way).
func hierTargets(t *testing.T) (ddbURL string, targets []kmsTarget) {
	t.Helper()
	ddbURL = motoURL(t)
	l := kmsmock.StartTest(t, kmsmock.Config{Region: kmsRegion})
	return ddbURL, []kmsTarget{
		newKMSTarget(t, "moto", ddbURL, kmsmock.NewClient(ddbURL, kmsRegion, "interop", "x")),
		newKMSTarget(t, "kmsmock", l.URL, l.Client("interop")),
	}
}

// newKeystore creates the table (JS), a branch key in it (JS createKey) and
// an empty phicrypt store. The logical name differs from the table name, so
// only the logical name can be what both sides bind.
func newKeystore(t *testing.T, tg kmsTarget, ddbURL string) *jsKeystore {
	t.Helper()
	suffix := randomHex(6)
	ks := &jsKeystore{kms: tg, ddbURL: ddbURL, table: "phicrypt-keystore-" + suffix, logical: "phicrypt-logical-" + suffix}
	var table struct {
		TableName string `json:"tableName"`
	}
	ks.jsOp(t, "keystore-create-table", nil, &table)
	var created struct {
		BranchKeyID string `json:"branchKeyId"`
	}
	ks.jsOp(t, "keystore-create-key", nil, &created)
	if created.BranchKeyID == "" {
		t.Fatal("JS createKey returned no branch key id")
	}
	ks.branchKeyID = created.BranchKeyID
	store, err := keystore.OpenFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ks.store = store
	return ks
}

// args are the harness flags for this jsKeystore (hierarchical keyring when
// the branch key id is set), plus extra.
func (ks *jsKeystore) args(extra map[string]any) map[string]any {
	a := map[string]any{
		"ddb-endpoint": ks.ddbURL, "kms-endpoint": ks.kms.url, "region": kmsRegion,
		"keystore-table": ks.table, "keystore-logical-name": ks.logical, "keystore-kms-key": ks.kms.keyARN,
	}
	if ks.branchKeyID != "" {
		a["branch-key-id"] = ks.branchKeyID
	}
	maps.Copy(a, extra)
	return a
}

// jsOp runs one jsKeystore operation and decodes its JSON answer into out.
func (ks *jsKeystore) jsOp(t *testing.T, op string, extra map[string]any, out any) {
	t.Helper()
	r := runHierJS(t, []job{{Op: op, Args: ks.args(extra)}})[0]
	if !r.OK {
		t.Fatalf("JS %s: %s", op, r.Error)
	}
	if err := json.Unmarshal(r.output(t), out); err != nil {
		t.Fatalf("JS %s answered no JSON: %v", op, err)
	}
}

// ksItem is a jsKeystore item as the harness exports it (interop/js/README.md).
type ksItem struct {
	BranchKeyID       string            `json:"branch-key-id"`
	Type              string            `json:"type"`
	Version           string            `json:"version"`
	CreateTime        string            `json:"create-time"`
	KMSARN            string            `json:"kms-arn"`
	HierarchyVersion  string            `json:"hierarchy-version"`
	Enc               []byte            `json:"enc"`
	Extra             map[string]string `json:"extra"`
	EncryptionContext map[string]string `json:"encryptionContext"`
}

type ksExport struct {
	TableName           string   `json:"tableName"`
	LogicalKeyStoreName string   `json:"logicalKeyStoreName"`
	BranchKeyID         string   `json:"branchKeyId"`
	ActiveVersion       string   `json:"activeVersion"`
	Versions            []ksItem `json:"versions"`
	Active              ksItem   `json:"active"`
	Beacon              bool     `json:"beacon"`
}

func (ks *jsKeystore) export(t *testing.T) ksExport {
	t.Helper()
	var e ksExport
	ks.jsOp(t, "keystore-export", nil, &e)
	if e.BranchKeyID != ks.branchKeyID || e.LogicalKeyStoreName != ks.logical || e.ActiveVersion == "" {
		t.Fatalf("JS export: branch key %q, logical name %q, active version %q", e.BranchKeyID, e.LogicalKeyStoreName, e.ActiveVersion)
	}
	return e
}

// record is a branch:version item as a phicrypt BranchKeyVersion. Only what
// phicrypt can carry is accepted: hierarchy version 1, no custom encryption
// context, a create-time that formats back to the same string (phicrypt
// rebuilds the KMS encryption context from CreatedAt).
func (ks *jsKeystore) record(t *testing.T, it ksItem, state keystore.State) keystore.BranchKeyVersion {
	t.Helper()
	if it.BranchKeyID != ks.branchKeyID || it.Type != "branch:version:"+it.Version {
		t.Fatalf("JS item %q of %q is not a version of the branch key", it.Type, it.BranchKeyID)
	}
	if it.HierarchyVersion != "1" {
		t.Fatalf("version %s: hierarchy-version %q; phicrypt implements 1", it.Version, it.HierarchyVersion)
	}
	if len(it.Extra) != 0 {
		t.Fatalf("version %s: attributes phicrypt does not carry (custom encryption context): %v", it.Version, slices.Sorted(maps.Keys(it.Extra)))
	}
	created, err := time.Parse(createTimeLayout, it.CreateTime)
	if err != nil {
		t.Fatalf("version %s: create-time %q is not %s: %v", it.Version, it.CreateTime, createTimeLayout, err)
	}
	if got := created.UTC().Format(createTimeLayout); got != it.CreateTime {
		t.Fatalf("version %s: create-time %q formats back as %q", it.Version, it.CreateTime, got)
	}
	return keystore.BranchKeyVersion{
		BranchKeyID: it.BranchKeyID, Version: it.Version, KMSKeyARN: it.KMSARN,
		Ciphertext: it.Enc, CreatedAt: created, State: state,
	}
}

// sync imports the versions of e that the store lacks: the first with
// Create, the others with Rotate, oldest first and the JS active version
// last, so the store's active version is JS's and every other version is
// decrypt-only. Versions already imported must be unchanged.
func (ks *jsKeystore) sync(t *testing.T, bk *keyring.BranchKeys, e ksExport) {
	t.Helper()
	ctx := context.Background()
	have := map[string]keystore.BranchKeyVersion{}
	stored, err := ks.store.List(ctx, ks.branchKeyID)
	if err != nil && !errors.Is(err, keystore.ErrNotFound) {
		t.Fatal(err)
	}
	for _, v := range stored {
		have[v.Version] = v
	}
	var pending []ksItem
	var active *ksItem
	for i, it := range e.Versions {
		if old, ok := have[it.Version]; ok {
			rec := ks.record(t, it, old.State)
			if !bytes.Equal(old.Ciphertext, rec.Ciphertext) || !old.CreatedAt.Equal(rec.CreatedAt) || old.KMSKeyARN != rec.KMSKeyARN {
				t.Fatalf("version %s changed in the JS jsKeystore since it was imported", it.Version)
			}
			continue
		}
		if it.Version == e.ActiveVersion {
			active = &e.Versions[i]
			continue
		}
		pending = append(pending, it)
	}
	if active != nil {
		pending = append(pending, *active)
	} else if _, ok := have[e.ActiveVersion]; !ok {
		t.Fatalf("the JS active version %s has no branch:version item", e.ActiveVersion)
	}
	var cur string
	if len(stored) == 0 {
		if len(pending) == 0 {
			t.Fatal("the JS export has no versions")
		}
		if err := ks.store.Create(ctx, ks.record(t, pending[0], keystore.StateActive)); err != nil {
			t.Fatalf("Create: %v", err)
		}
		cur, pending = pending[0].Version, pending[1:]
	} else {
		a, err := ks.store.Active(ctx, ks.branchKeyID)
		if err != nil {
			t.Fatal(err)
		}
		cur = a.Version
	}
	for _, it := range pending {
		if err := ks.store.Rotate(ctx, ks.branchKeyID, cur, ks.record(t, it, keystore.StateActive)); err != nil {
			t.Fatalf("Rotate to %s: %v", it.Version, err)
		}
		cur = it.Version
	}
	ks.checkImported(t, bk, e)
}

// checkImported: the store holds exactly JS's versions, JS's active one
// active and the others decrypt-only, and phicrypt rebuilds for each the
// KMS encryption context the JS jsKeystore decrypts it with.
func (ks *jsKeystore) checkImported(t *testing.T, bk *keyring.BranchKeys, e ksExport) {
	t.Helper()
	stored, err := ks.store.List(context.Background(), ks.branchKeyID)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(e.Versions) {
		t.Fatalf("the store has %d versions, the JS jsKeystore %d", len(stored), len(e.Versions))
	}
	byVersion := map[string]ksItem{}
	for _, it := range e.Versions {
		byVersion[it.Version] = it
	}
	for _, v := range stored {
		want := keystore.StateDecryptOnly
		if v.Version == e.ActiveVersion {
			want = keystore.StateActive
		}
		if v.State != want {
			t.Fatalf("version %s is %v in the store; JS has it %v", v.Version, v.State, want)
		}
		it, ok := byVersion[v.Version]
		if !ok {
			t.Fatalf("the store has version %s, the JS jsKeystore does not", v.Version)
		}
		if got := bk.EncryptionContext(v); !maps.Equal(got, it.EncryptionContext) {
			t.Fatalf("version %s: phicrypt's KMS encryption context\n%v\ndiffers from the JS jsKeystore's\n%v", v.Version, got, it.EncryptionContext)
		}
	}
}

// goSide is phicrypt's view of the jsKeystore: BranchKeys over the imported
// versions (the JS logical name as LogicalStoreName) and a fresh
// hierarchical keyring, so no cached active version outlives a rotation.
func (ks *jsKeystore) goSide(t *testing.T, logical string) (*keyring.BranchKeys, *keyring.Hierarchical) {
	t.Helper()
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{
		Store: ks.store, Client: ks.kms.client, KMSKeyARN: ks.kms.keyARN, LogicalStoreName: logical})
	if err != nil {
		t.Fatal(err)
	}
	// The keyring's clock runs one propagation window (CacheTTL) ahead, as
	// a process's would that long after a rotation, so that it writes under
	// a version JS has just made instead of the one it replaced.
	later := func() time.Time { return time.Now().Add(time.Minute) }
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: ks.branchKeyID, CacheTTL: time.Minute, Now: later})
	if err != nil {
		t.Fatal(err)
	}
	return bk, kr
}

// hierResult is a harness result (esdk_test.go's result) with the header's
// encrypted data keys.
type hierResult struct {
	OK        bool   `json:"ok"`
	OutputB64 string `json:"outputB64"`
	Error     string `json:"error"`
	Header    struct {
		SuiteID           string            `json:"suiteId"`
		EncryptionContext map[string]string `json:"encryptionContext"`
		FrameLength       int               `json:"frameLength"`
		EncryptedDataKeys []struct {
			ProviderID          string `json:"providerId"`
			ProviderInfo        string `json:"providerInfo"`
			EncryptedDataKeyB64 string `json:"encryptedDataKeyB64"`
		} `json:"encryptedDataKeys"`
	} `json:"header"`
}

func (r hierResult) output(t *testing.T) []byte {
	t.Helper()
	return result{OutputB64: r.OutputB64}.output(t)
}

// runHierJS is runJS (esdk_test.go), keeping each header's encrypted data
// keys.
func runHierJS(t *testing.T, jobs []job) []hierResult {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "js")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@aws-crypto", "client-node")); err != nil {
		t.Fatalf("the JS ESDK is not installed: run `npm ci --prefix interop/js` (scripts/test.sh does)")
	}
	in, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join(dir, "esdk.mjs"), "batch")
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node esdk.mjs batch: %v\n%s", err, stderr.String())
	}
	var out []hierResult
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || len(out) != len(jobs) {
		t.Fatalf("harness answered %d results for %d jobs (%v)", len(out), len(jobs), err)
	}
	return out
}

// checkEDK: the message has one EDK, the hierarchical keyring's, for the
// branch key, with the 16-byte form of version at bytes 28..44 of its
// ciphertext (salt 16, IV 12, version 16, key 32, tag 16: spec "Ciphertext").
func (ks *jsKeystore) checkEDK(t *testing.T, r hierResult, version string) {
	t.Helper()
	edks := r.Header.EncryptedDataKeys
	if len(edks) != 1 || edks[0].ProviderID != hierarchyProviderID || edks[0].ProviderInfo != ks.branchKeyID {
		t.Fatalf("want one %s EDK for the branch key, got %+v", hierarchyProviderID, edks)
	}
	ct, err := base64.StdEncoding.DecodeString(edks[0].EncryptedDataKeyB64)
	if err != nil || len(ct) != 16+12+16+32+16 {
		t.Fatalf("EDK ciphertext is %d bytes (%v), want 92", len(ct), err)
	}
	want, _ := hex.DecodeString(strings.ReplaceAll(version, "-", ""))
	if !bytes.Equal(ct[28:44], want) {
		t.Fatalf("EDK names version %x, want %s", ct[28:44], version)
	}
}

// hierMatrix: both committing suites; sizes 0, 1 and two frames plus one at
// frame length 4096; no context and a several-pair one. Context keys are
// lowercase ASCII, whose order is the same under every sort (see
// TestHierarchicalContextSortOrder for keys where it is not).
func hierMatrix() []vector {
	const frame = 4096
	contexts := []map[string]string{
		nil,
		{"tenant": "general-hospital", "table": "patients", "column": "notes", "purpose": "hierarchical-interop"},
	}
	var vs []vector
	for _, suite := range []phicrypt.Suite{phicrypt.SuiteCommitted, phicrypt.SuiteCommittedSigned} {
		for _, size := range []int{0, 1, 2*frame + 1} {
			for i, ec := range contexts {
				pt := make([]byte, size)
				rand.Read(pt)
				vs = append(vs, vector{fmt.Sprintf("%v/size%d/ctx%d", suite, size, i), suite, frame, pt, ec})
			}
		}
	}
	return vs
}

func (ks *jsKeystore) encryptJobs(vs []vector) []job {
	jobs := make([]job, len(vs))
	for i, v := range vs {
		jobs[i] = job{Op: "encrypt", InputB64: b64(v.pt), Args: ks.args(map[string]any{
			"suite": suiteHex(uint16(v.suite)), "frame-length": v.frame, "context": contextJSON(v.ec)})}
	}
	return jobs
}

func (ks *jsKeystore) decryptJobs(vs []vector, msgs [][]byte) []job {
	jobs := make([]job, len(vs))
	for i, v := range vs {
		jobs[i] = job{Op: "decrypt", InputB64: b64(msgs[i]), Args: ks.args(map[string]any{"context": contextJSON(v.ec)})}
	}
	return jobs
}

func goEncrypt(t *testing.T, kr keyring.Keyring, vs []vector) [][]byte {
	t.Helper()
	msgs := make([][]byte, len(vs))
	for i, v := range vs {
		enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, Suite: v.suite, FrameLength: v.frame})
		if err != nil {
			t.Fatal(err)
		}
		if msgs[i], err = enc.Encrypt(context.Background(), v.pt, v.ec); err != nil {
			t.Fatalf("%s: phicrypt encrypt with the hierarchical keyring: %v", v.name, err)
		}
	}
	return msgs
}

// goDecryptsJS: phicrypt reads each JS message, made under version.
func (ks *jsKeystore) goDecryptsJS(t *testing.T, kr keyring.Keyring, vs []vector, res []hierResult, version string) {
	t.Helper()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		r := res[i]
		if !r.OK {
			t.Fatalf("%s: JS encrypt with the hierarchical keyring: %s", v.name, r.Error)
		}
		if r.Header.SuiteID != suiteHex(uint16(v.suite)) || r.Header.FrameLength != v.frame {
			t.Fatalf("%s: JS wrote suite %s frame %d", v.name, r.Header.SuiteID, r.Header.FrameLength)
		}
		ks.checkEDK(t, r, version)
		got, ec, err := enc.Decrypt(context.Background(), r.output(t), v.ec)
		if err != nil {
			t.Fatalf("%s: phicrypt cannot decrypt the JS message (version %s): %v", v.name, version, err)
		}
		if !bytes.Equal(got, v.pt) {
			t.Fatalf("%s: plaintext differs", v.name)
		}
		requireContext(t, ec, v.ec)
		requireContext(t, r.Header.EncryptionContext, v.ec)
	}
}

// jsDecryptedGo: JS read each phicrypt message, made under version.
func (ks *jsKeystore) jsDecryptedGo(t *testing.T, vs []vector, res []hierResult, version string) {
	t.Helper()
	for i, v := range vs {
		r := res[i]
		if !r.OK {
			t.Fatalf("%s: JS cannot decrypt the phicrypt message (version %s): %s", v.name, version, r.Error)
		}
		if !bytes.Equal(r.output(t), v.pt) {
			t.Fatalf("%s: JS: plaintext differs", v.name)
		}
		if r.Header.SuiteID != suiteHex(uint16(v.suite)) || r.Header.FrameLength != v.frame {
			t.Fatalf("%s: JS read suite %s frame %d", v.name, r.Header.SuiteID, r.Header.FrameLength)
		}
		requireContext(t, r.Header.EncryptionContext, v.ec)
		ks.checkEDK(t, r, version)
	}
}

// TestHierarchicalInterop: a branch key made and rotated by the JS jsKeystore
// is imported into phicrypt; messages go both ways under its first version,
// then, after a JS versionKey, under both versions.
func TestHierarchicalInterop(t *testing.T) {
	ddbURL, targets := hierTargets(t)
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			ks := newKeystore(t, tg, ddbURL)
			vs := hierMatrix()

			// Version 1: JS made it; JS encrypts, phicrypt imports and decrypts.
			e1 := ks.export(t)
			if len(e1.Versions) != 1 || !e1.Beacon {
				t.Fatalf("JS createKey made %d versions (beacon %v), want 1 and a beacon key", len(e1.Versions), e1.Beacon)
			}
			v1 := e1.ActiveVersion
			js1 := runHierJS(t, ks.encryptJobs(vs))
			bk, kr := ks.goSide(t, ks.logical)
			ks.sync(t, bk, e1)
			ks.goDecryptsJS(t, kr, vs, js1, v1)

			// The logical name is bound into every version: under another
			// one, KMS refuses to unwrap it.
			_, wrong := ks.goSide(t, ks.logical+"-other")
			other, _ := phicrypt.New(phicrypt.Config{Keyring: wrong})
			if _, _, err := other.Decrypt(context.Background(), js1[0].output(t), nil); !errors.Is(err, phicrypt.ErrNoKey) {
				t.Fatalf("under another logical jsKeystore name: got %v, want ErrNoKey", err)
			}

			// phicrypt encrypts under version 1; JS reads it from DynamoDB.
			go1 := goEncrypt(t, kr, vs)
			ks.jsDecryptedGo(t, vs, runHierJS(t, ks.decryptJobs(vs, go1)), v1)

			// JS rotates; phicrypt imports version 2 as active, 1 decrypt-only.
			var none struct{}
			ks.jsOp(t, "keystore-version-key", nil, &none)
			e2 := ks.export(t)
			v2 := e2.ActiveVersion
			if len(e2.Versions) != 2 || v2 == v1 {
				t.Fatalf("after versionKey: %d versions, active %s (was %s)", len(e2.Versions), v2, v1)
			}
			bk, kr = ks.goSide(t, ks.logical)
			ks.sync(t, bk, e2)

			go2 := goEncrypt(t, kr, vs)
			jobs := ks.encryptJobs(vs)
			jobs = append(jobs, ks.decryptJobs(vs, go1)...)
			jobs = append(jobs, ks.decryptJobs(vs, go2)...)
			res := runHierJS(t, jobs)
			n := len(vs)
			js2 := res[:n]
			ks.jsDecryptedGo(t, vs, res[n:2*n], v1)
			ks.jsDecryptedGo(t, vs, res[2*n:], v2)
			ks.goDecryptsJS(t, kr, vs, js1, v1)
			ks.goDecryptsJS(t, kr, vs, js2, v2)
		})
	}
}

// TestHierarchicalContextSortOrder pins down the one place the two
// keyrings disagree. The wrapping AAD ends with the serialized encryption
// context, whose pairs the spec sorts by the keys' UTF-8 bytes (as the
// message header does, and as phicrypt does). KmsHierarchicalKeyRingNode
// 5.0.2 does so only with its option utf8Sorting: true; by default (false)
// it sorts the keys with String.prototype.localeCompare, a locale collation
// ("patient" before "Ward", where bytes put "Ward" first). So for a context
// whose keys collate and byte-sort differently (mixed case, punctuation
// such as "_", non-ASCII), a JS keyring left at its default writes EDKs
// that phicrypt — and a JS keyring with utf8Sorting: true — cannot unwrap,
// and cannot unwrap theirs. With utf8Sorting: true both directions work.
// (aws-encryption-sdk-javascript issue #428; the message header itself is
// always written UTF-8 sorted.)
func TestHierarchicalContextSortOrder(t *testing.T) {
	ddbURL := motoURL(t)
	tg := newKMSTarget(t, "moto", ddbURL, kmsmock.NewClient(ddbURL, kmsRegion, "interop", "x"))
	ks := newKeystore(t, tg, ddbURL)
	bk, kr := ks.goSide(t, ks.logical)
	ks.sync(t, bk, ks.export(t))
	// Bytes: "Ward" < "patient"; localeCompare: "patient" < "Ward".
	ec := map[string]string{"Ward": "7", "patient": "inpatient"}
	pt := []byte("discharge summary")
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	goMsg, err := enc.Encrypt(context.Background(), pt, ec)
	if err != nil {
		t.Fatal(err)
	}
	locale := ks.args(map[string]any{"context": contextJSON(ec)})
	utf8 := ks.args(map[string]any{"context": contextJSON(ec), "utf8-sorting": true})
	// Suite 0x0478 (phicrypt's default), so the keyrings see no
	// aws-crypto-public-key pair: the context is exactly ec.
	jsEnc := runHierJS(t, []job{
		{Op: "encrypt", InputB64: b64(pt), Args: withSuite(locale, "0x0478")},
		{Op: "encrypt", InputB64: b64(pt), Args: withSuite(utf8, "0x0478")},
	})
	for i, r := range jsEnc {
		if !r.OK {
			t.Fatalf("JS encrypt %d: %s", i, r.Error)
		}
	}
	jsLocaleMsg, jsUTF8Msg := jsEnc[0].output(t), jsEnc[1].output(t)
	jsDec := runHierJS(t, []job{
		{Op: "decrypt", InputB64: b64(jsLocaleMsg), Args: locale},
		{Op: "decrypt", InputB64: b64(jsLocaleMsg), Args: utf8},
		{Op: "decrypt", InputB64: b64(goMsg), Args: locale},
		{Op: "decrypt", InputB64: b64(goMsg), Args: utf8},
	})
	for _, c := range []struct {
		name string
		r    hierResult
		ok   bool
	}{
		{"JS (default) reads JS (default)", jsDec[0], true},
		{"JS (utf8Sorting) reads JS (default)", jsDec[1], false},
		{"JS (default) reads phicrypt", jsDec[2], false},
		{"JS (utf8Sorting) reads phicrypt", jsDec[3], true},
	} {
		if c.r.OK != c.ok {
			t.Errorf("%s: ok %v, want %v (%s); if the JS default changed, update this test and interop/README.md", c.name, c.r.OK, c.ok, c.r.Error)
		} else if c.ok && !bytes.Equal(c.r.output(t), pt) {
			t.Errorf("%s: plaintext differs", c.name)
		} else if !c.ok && !strings.Contains(c.r.Error, "Unable to decrypt data key") {
			t.Errorf("%s: failed for another reason than the wrapped key not opening: %s", c.name, c.r.Error)
		}
	}
	got, gotEC, err := enc.Decrypt(context.Background(), jsUTF8Msg, ec)
	if err != nil || !bytes.Equal(got, pt) {
		t.Errorf("phicrypt reads JS (utf8Sorting): %v", err)
	} else {
		requireContext(t, gotEC, ec)
	}
	if _, _, err := enc.Decrypt(context.Background(), jsLocaleMsg, ec); !errors.Is(err, phicrypt.ErrNoKey) {
		t.Errorf("phicrypt reads JS (default): got %v, want ErrNoKey (the wrapped key's AAD has the context in locale order); if the JS default changed, update this test and interop/README.md", err)
	}

	// Nothing else differs: the default JS EDK opens, by hand, with the
	// pairs in locale order and not in byte order; the utf8Sorting one
	// the other way round.
	v, err := ks.store.Active(context.Background(), ks.branchKeyID)
	if err != nil {
		t.Fatal(err)
	}
	branchKey, err := bk.Unwrap(context.Background(), v)
	if err != nil {
		t.Fatal(err)
	}
	defer branchKey.Wipe()
	localeOrder, byteOrder := []string{"patient", "Ward"}, []string{"Ward", "patient"}
	for _, c := range []struct {
		name   string
		r      hierResult
		opens  []string
		refuse []string
	}{
		{"JS (default)", jsEnc[0], localeOrder, byteOrder},
		{"JS (utf8Sorting)", jsEnc[1], byteOrder, localeOrder},
	} {
		ct, err := base64.StdEncoding.DecodeString(c.r.Header.EncryptedDataKeys[0].EncryptedDataKeyB64)
		if err != nil {
			t.Fatal(err)
		}
		if err := openHierarchicalEDK(branchKey, ks.branchKeyID, ct, c.opens, ec); err != nil {
			t.Errorf("%s EDK with the context in order %q: %v", c.name, c.opens, err)
		}
		if err := openHierarchicalEDK(branchKey, ks.branchKeyID, ct, c.refuse, ec); err == nil {
			t.Errorf("%s EDK opened with the context in order %q too", c.name, c.refuse)
		}
	}
}

// openHierarchicalEDK opens an aws-kms-hierarchy EDK ciphertext by the spec
// ("Branch Key Unwrapping"), with the context's pairs serialized in the
// given key order: SP 800-108 counter-mode KDF with HMAC-SHA-256 (counter
// 1, label "aws-kms-hierarchy", 0x00, the salt, 256 as 4 bytes), then
// AES-256-GCM with AAD "aws-kms-hierarchy" || branch key id || version
// bytes || pair count || (key length, key, value length, value)...
func openHierarchicalEDK(branchKey []byte, id string, ct []byte, order []string, ec map[string]string) error {
	salt, iv, version, sealed := ct[:16], ct[16:28], ct[28:44], ct[44:]
	mac := hmac.New(sha256.New, branchKey)
	mac.Write(binary.BigEndian.AppendUint32(nil, 1))
	mac.Write([]byte(hierarchyProviderID + "\x00"))
	mac.Write(salt)
	mac.Write(binary.BigEndian.AppendUint32(nil, 256))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return err
	}
	aad := append([]byte(hierarchyProviderID+id), version...)
	aad = binary.BigEndian.AppendUint16(aad, uint16(len(order)))
	for _, k := range order {
		aad = binary.BigEndian.AppendUint16(aad, uint16(len(k)))
		aad = append(aad, k...)
		aad = binary.BigEndian.AppendUint16(aad, uint16(len(ec[k])))
		aad = append(aad, ec[k]...)
	}
	dk, err := gcm.Open(nil, iv, sealed, aad)
	clear(dk)
	return err
}

func withSuite(args map[string]any, suite string) map[string]any {
	a := maps.Clone(args)
	a["suite"] = suite
	return a
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
