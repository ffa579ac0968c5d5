package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/internal/s3test"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

// The break-glass drill of docs/OPERATIONS.md, end to end: a service
// encrypts with its KMS key K and the escrow public key; K is deleted; a
// recover request approved by three custodians and two of the three
// escrow shares rewrap every message's data key to a new KMS key K2
// (headers only); every message decrypts again with K2 alone. One approval
// short, a tampered, a foreign and too few shares are refused and audited;
// an interrupted recovery resumes; the audit log verifies and shows the
// approvers.
func TestBreakGlassRecovery(t *testing.T) {
	// A kmsmock of this test's own: the drill moves its clock past a
	// deletion window, which a shared one must not see.
	w, l, ids := recoveryWorld(t)
	dir := w.dir
	ctx := t.Context()

	// escrow init: a public key for services, one private share per custodian.
	escrowDir := filepath.Join(dir, "escrow")
	var made escrowView
	w.okJSON(&made, "escrow", "init", "--name", "escrow-2026", "--shares", "3", "--threshold", "2",
		"--custodian", "alice="+w.pubKeys["alice"], "--custodian", "bob", "--custodian", "carol", "--out-dir", escrowDir)
	require.Equal(t, 2, made.Threshold)
	require.Len(t, made.ShareFiles, 3)
	for _, p := range made.ShareFiles {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "a share file must be private")
	}
	share := func(who string) string { return filepath.Join(escrowDir, "escrow-2026."+who+".share") }
	w.fails(1, "not a custodian", "escrow", "init", "--name", "escrow-x", "--threshold", "2", "--custodian", "alice", "--custodian", "mallory", "--out-dir", escrowDir)
	w.fails(1, "exists", "escrow", "init", "--name", "escrow-2026", "--threshold", "2", "--custodian", "alice", "--custodian", "bob", "--out-dir", filepath.Join(dir, "again"))
	w.fails(2, "threshold", "escrow", "init", "--name", "escrow-y", "--threshold", "1", "--custodian", "alice", "--custodian", "bob", "--out-dir", filepath.Join(dir, "one"))
	// A second escrow key, for a foreign share.
	w.ok("escrow", "init", "--name", "escrow-other", "--threshold", "2", "--custodian", "alice", "--custodian", "bob", "--out-dir", filepath.Join(dir, "other"))

	// The service: KMS key K generates, the escrow public key wraps too.
	svc := kmsClient(w.kmsURL, servicePrincipal)
	k, err := svc.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("the service's key, soon lost")})
	require.NoError(t, err)
	escrowPub := readEscrowPublicKey(t, made.PublicKey)
	require.Equal(t, made.SHA256, fmt.Sprintf("%x", custody.EscrowKeyDigest(escrowPub)))
	service := serviceEncryptor(t, svc, aws.ToString(k.KeyMetadata.Arn), escrowPub, 0)
	msgDir := filepath.Join(dir, "messages")
	plain := writeMessages(t, service, msgDir, "a", "b", "c/d", "e")
	// A signed message (suite 0x0578): its footer is signed anew.
	maps.Copy(plain, writeMessages(t, serviceEncryptor(t, svc, aws.ToString(k.KeyMetadata.Arn), escrowPub, phicrypt.SuiteCommittedSigned), msgDir, "signed"))
	before := readAll(t, msgDir, plain)
	// Two S3 objects under phi/, one elsewhere that the recovery leaves alone.
	s3env := s3test.New(t)
	objects, err := s3crypt.New(s3crypt.Config{S3: s3env.Client(), Encryptor: service})
	require.NoError(t, err)
	for _, key := range []string{"phi/x1", "phi/x2", "other/y"} {
		_, err := objects.Put(ctx, s3env.Bucket, key, strings.NewReader("object "+key), map[string]string{"tenant": "general-hospital"}, nil)
		require.NoError(t, err)
	}
	w.s3Profile(s3env)

	// K is scheduled for deletion and deleted.
	_, err = svc.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: k.KeyMetadata.Arn, PendingWindowInDays: aws.Int32(7)})
	require.NoError(t, err)
	l.Advance(8 * 24 * time.Hour)
	_, err = svc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: k.KeyMetadata.Arn})
	require.ErrorContains(t, err, "NotFound")
	_, _, err = service.Decrypt(ctx, before["a"], nil)
	require.Error(t, err, "with K gone the service reads nothing")

	// K2: the custodian may only Encrypt under it; the service decrypts.
	k2 := w.createRecoveryKey()

	// The recover request: two approvals are one short of three.
	req := filepath.Join(dir, "recover.json")
	w.ok("propose", "recover", "--escrow", "escrow-2026", "--to", k2, "-o", req)
	w.ok("approve", req)
	w.ok("approve", req, "--identity", ids["bob"])
	w.fails(2, "keyctl recover", "apply", req)
	recoverArgs := func(shares ...string) []string {
		args := []string{"recover", req, "--messages", msgDir, "--progress", "lines",
			"--s3", "s3://" + s3env.Bucket + "/phi/", "--s3-endpoint", s3env.URL, "--s3-profile", "s3"}
		for _, s := range shares {
			args = append(args, "--share", s)
		}
		return args
	}
	w.fails(1, "too few custodians approved", recoverArgs(share("bob"), share("carol"))...)

	// Bad shares are refused before the request is spent.
	tampered := tamperShare(t, share("carol"), filepath.Join(dir, "tampered.share"))
	w.fails(1, "integrity check", recoverArgs(share("bob"), tampered)...)
	w.fails(1, "is of escrow key", recoverArgs(share("bob"), filepath.Join(dir, "other", "escrow-other.alice.share"))...)
	w.fails(1, "too few escrow shares", recoverArgs(share("bob"))...)
	w.fails(1, "given twice", recoverArgs(share("bob"), share("bob"))...)
	open := filepath.Join(dir, "open.share")
	copyFile(t, share("carol"), open, 0o644)
	w.fails(1, "", recoverArgs(share("bob"), open)...)

	// The third approval: the recovery runs, with two of the three shares.
	w.ok("approve", req, "--identity", ids["carol"])
	var got recoverView
	w.okJSON(&got, recoverArgs(share("bob"), share("carol"))...)
	require.Equal(t, []string{"alice", "bob", "carol"}, got.Approvers)
	require.Equal(t, len(plain)+2, got.Total)
	require.Equal(t, len(plain)+2, got.Rewrapped)
	w.fails(1, "replayed", recoverArgs(share("bob"), share("carol"))...)

	// Every message reads again with K2 alone, its body untouched; the
	// custodian who rewrapped it cannot decrypt under K2.
	k2Only, err := keyring.NewKMS(keyring.KMSConfig{Client: svc, Keys: []string{k2}})
	require.NoError(t, err)
	restored, err := phicrypt.New(phicrypt.Config{Keyring: k2Only})
	require.NoError(t, err)
	after := readAll(t, msgDir, plain)
	for name, want := range plain {
		pt, _, err := restored.Decrypt(ctx, after[name], nil)
		require.NoError(t, err, "message %s", name)
		require.Equal(t, want, string(pt))
		if name == "signed" { // the frames stay; the footer is new
			frames := len(body(t, service, before[name])) - footerLength(t, service, before[name])
			require.Equal(t, body(t, service, before[name])[:frames], body(t, service, after[name])[:frames], "message %s: the frames changed", name)
			continue
		}
		require.Equal(t, body(t, service, before[name]), body(t, service, after[name]), "message %s: the body changed", name)
	}
	w.requireCustodianCannotDecrypt(k2)
	restoredObjects, err := s3crypt.New(s3crypt.Config{S3: s3env.Client(), Encryptor: restored})
	require.NoError(t, err)
	for _, key := range []string{"phi/x1", "phi/x2"} {
		rd, err := restoredObjects.Get(ctx, s3env.Bucket, key, nil)
		require.NoError(t, err, "object %s", key)
		b, err := io.ReadAll(rd)
		require.NoError(t, err)
		require.Equal(t, "object "+key, string(b))
	}
	_, err = restoredObjects.Get(ctx, s3env.Bucket, "other/y", nil)
	require.Error(t, err, "an object outside the prefix is not rewrapped")

	// An interrupted recovery resumes: a damaged file stops it midway; once
	// it is moved away, the same command carries on under the same
	// authorization.
	service2 := serviceEncryptor(t, svc, k2, escrowPub, 0)
	msgDir2 := filepath.Join(dir, "messages2")
	plain2 := writeMessages(t, service2, msgDir2, "m1", "m2", "m4")
	require.NoError(t, os.WriteFile(filepath.Join(msgDir2, "m3"), []byte("not a message"), 0o600))
	k3 := w.createRecoveryKey()
	req2 := filepath.Join(dir, "recover2.json")
	w.approvedRecover(ids, k3, req2)
	run2 := []string{"recover", req2, "--messages", msgDir2, "--share", share("alice"), "--share", share("carol"), "--progress", "lines"}
	_, errOut, code := w.run(run2...)
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, "recover: 2/4 messages", "progress lines up to the damaged file")
	require.Contains(t, errOut, "keyctl: message file:m3: ")
	require.Contains(t, errOut, "run the same keyctl recover again to resume")
	require.NoError(t, os.Rename(filepath.Join(msgDir2, "m3"), filepath.Join(dir, "m3.damaged")))
	w.fails(1, "takes a custodian", append(slices.Clone(run2), "--identity", ids["mallory"])...)
	var resumed recoverView
	w.okJSON(&resumed, run2...)
	require.Equal(t, 2, resumed.Resumed, "m1 and m2 were done before the interruption")
	require.Equal(t, 1, resumed.Rewrapped)
	require.Equal(t, []string{"alice", "bob", "carol"}, resumed.Approvers)
	k3Only, err := keyring.NewKMS(keyring.KMSConfig{Client: svc, Keys: []string{k3}})
	require.NoError(t, err)
	restored3, err := phicrypt.New(phicrypt.Config{Keyring: k3Only})
	require.NoError(t, err)
	for name, want := range plain2 {
		pt, _, err := restored3.Decrypt(ctx, readAll(t, msgDir2, plain2)[name], nil)
		require.NoError(t, err, "message %s", name)
		require.Equal(t, want, string(pt))
	}
	w.fails(1, "replayed", run2...)

	// The audit log verifies and shows every step with its approvers, and
	// holds no share.
	var verified struct {
		Verified bool         `json:"verified"`
		Records  []recordJSON `json:"records"`
	}
	w.okJSON(&verified, "audit", "verify", "--records", "-1")
	require.True(t, verified.Verified)
	var ops, denials []string
	for _, r := range verified.Records {
		switch r.Kind {
		case "admin-change":
			ops = append(ops, r.Operation)
			if strings.HasPrefix(r.Operation, "recover") {
				require.Equal(t, []string{"alice", "bob", "carol"}, r.Approvers, "record %q", r.Operation)
			}
			if r.Operation == "escrow-init" && strings.Contains(r.Reason, "escrow-2026") {
				require.Contains(t, r.Reason, "sha256:"+made.SHA256)
				require.Contains(t, r.Reason, "threshold 2 of 3 shares")
			}
			if r.Operation == "recover: data keys rewrapped, escrow key dropped" && strings.Contains(r.Reason, kmsKeyID(k2)) {
				require.Contains(t, r.Reason, "7 of 7 messages rewrapped")
				require.Contains(t, r.Reason, "request "+got.Request)
			}
		case "denial":
			if strings.Contains(r.Operation, "recover") {
				denials = append(denials, r.Reason)
			}
		}
	}
	for _, want := range []string{"escrow-init", "recover", "recover: escrow key reassembled", "recover: data keys rewrapped, escrow key dropped",
		"recover: interrupted, escrow key dropped", "recover: resumed, escrow key reassembled"} {
		require.Contains(t, ops, want)
	}
	for _, want := range []string{"too-few-approvals", "bad-escrow-share", "too-few-escrow-shares", "replayed"} {
		require.Contains(t, denials, want)
	}
	require.Contains(t, w.ok("audit", "verify"), "approvers:alice,bob,carol")
	logBytes := readDir(t, filepath.Join(dir, "keyctl", "audit"))
	for _, who := range []string{"alice", "bob", "carol"} {
		y := shareBytes(t, share(who))
		require.False(t, bytes.Contains(logBytes, y), "the audit log holds %s's share", who)
	}
}

// s3Profile writes the AWS profile "s3" keyctl signs S3 calls with: the
// S3 endpoint's credentials (KMS calls keep the custodian's).
func (w *world) s3Profile(e *s3test.Env) {
	access, secret := os.Getenv("PHICRYPT_S3_ACCESS_KEY"), os.Getenv("PHICRYPT_S3_SECRET_KEY")
	if !e.Real {
		access, secret = "s3test", "s3test-secret"
	}
	creds := "[s3]\naws_access_key_id = " + access + "\naws_secret_access_key = " + secret + "\n"
	require.NoError(w.t, os.WriteFile(filepath.Join(w.dir, "no-aws-credentials"), []byte(creds), 0o600))
}

// initTeamOfThree is initTeam with every change, recover included, needing
// all three custodians.
func (w *world) initTeamOfThree() map[string]string {
	ids := map[string]string{}
	for _, n := range []string{"alice", "bob", "carol", "mallory", "svc"} {
		ids[n] = w.identity(n)
	}
	w.ok("init", "--store", w.store, "--kms-key", w.keyARN, "--kms-endpoint", w.kmsURL, "--region", kmsmock.DefaultRegion)
	w.asWho = ids["alice"]
	req := filepath.Join(w.dir, "policy.json")
	w.ok("propose", "set-policy", "-o", req,
		"--custodian", "alice="+w.pubKeys["alice"]+"@"+user(custodianPrincipal), "--custodian", "bob="+w.pubKeys["bob"], "--custodian", "carol="+w.pubKeys["carol"],
		"--service", "svc="+w.pubKeys["svc"]+"@"+user(servicePrincipal),
		"--quorum", "3", "--quorum-for", "recover=3", "--quorum-for", "create=1")
	for _, who := range []string{"alice", "bob", "carol"} {
		w.ok("approve", req, "--identity", ids[who])
	}
	w.ok("apply", req)
	return ids
}

// createRecoveryKey makes a KMS key the custodian may only encrypt under
// (to wrap recovered data keys) and the service uses.
func (w *world) createRecoveryKey() string {
	doc := `{"Version":"2012-10-17","Statement":[
 {"Sid":"custodian-wraps","Effect":"Allow","Principal":{"AWS":"` + user(custodianPrincipal) + `"},"Action":["kms:Encrypt","kms:DescribeKey"],"Resource":"*"},
 {"Sid":"service-uses","Effect":"Allow","Principal":{"AWS":"` + user(servicePrincipal) + `"},"Action":["kms:Decrypt","kms:Encrypt","kms:GenerateDataKey","kms:DescribeKey"],"Resource":"*"}]}`
	out, err := kmsClient(w.kmsURL, servicePrincipal).CreateKey(w.t.Context(), &kms.CreateKeyInput{Policy: aws.String(doc), BypassPolicyLockoutSafetyCheck: true})
	require.NoError(w.t, err)
	return aws.ToString(out.KeyMetadata.Arn)
}

func (w *world) requireCustodianCannotDecrypt(arn string) {
	ctx := w.t.Context()
	enc, err := kmsClient(w.kmsURL, servicePrincipal).Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(arn), Plaintext: []byte("x")})
	require.NoError(w.t, err)
	_, err = kmsClient(w.kmsURL, custodianPrincipal).Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(arn), CiphertextBlob: enc.CiphertextBlob})
	require.ErrorContains(w.t, err, "AccessDenied")
}

func readEscrowPublicKey(t *testing.T, path string) *keyring.HPKEEscrowPublicKey {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	block, _ := pem.Decode(b)
	require.NotNil(t, block)
	require.Equal(t, pemEscrowPublicKey, block.Type)
	pub, err := keyring.ParseHPKEEscrowPublicKey(block.Bytes)
	require.NoError(t, err)
	return pub
}

// serviceEncryptor is a service's Encryptor: KMS key generator, escrow
// public key beside it, writing suite (0 for the default).
func serviceEncryptor(t *testing.T, client *kms.Client, generator string, pub *keyring.HPKEEscrowPublicKey, suite phicrypt.Suite) *phicrypt.Encryptor {
	k, err := keyring.NewKMS(keyring.KMSConfig{Client: client, Generator: generator})
	require.NoError(t, err)
	escrow, err := keyring.NewHPKEEscrow("escrow-2026", pub)
	require.NoError(t, err)
	both, err := keyring.NewMulti(k, escrow)
	require.NoError(t, err)
	e, err := phicrypt.New(phicrypt.Config{Keyring: both, FrameLength: 1024, Suite: suite})
	require.NoError(t, err)
	return e
}

// footerLength is the length of a signed message's footer (its two-byte
// signature length and the signature): what follows its frames, walked
// from the end of its header (frame length 1024, as serviceEncryptor).
func footerLength(t *testing.T, e *phicrypt.Encryptor, msg []byte) int {
	off, err := e.HeaderLength(msg)
	require.NoError(t, err)
	for {
		if string(msg[off:off+4]) != "\xff\xff\xff\xff" {
			off += 4 + 12 + 1024 + 16
			continue
		}
		n := int(binary.BigEndian.Uint32(msg[off+4+4+12:]))
		return len(msg) - (off + 4 + 4 + 12 + 4 + n + 16)
	}
}

// writeMessages encrypts a few kilobytes of PHI-like text per name into
// dir/name and returns the plaintexts by name.
func writeMessages(t *testing.T, e *phicrypt.Encryptor, dir string, names ...string) map[string]string {
	out := map[string]string{}
	for i, n := range names {
		pt := strings.Repeat(fmt.Sprintf("patient %d: discharge summary, line %s. ", i, n), 100)
		ct, err := e.Encrypt(context.Background(), []byte(pt), map[string]string{"tenant": "general-hospital", "record": n})
		require.NoError(t, err)
		path := filepath.Join(dir, filepath.FromSlash(n))
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
		require.NoError(t, os.WriteFile(path, ct, 0o600))
		out[n] = pt
	}
	return out
}

func readAll(t *testing.T, dir string, names map[string]string) map[string][]byte {
	out := map[string][]byte{}
	for n := range names {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(n)))
		require.NoError(t, err)
		out[n] = b
	}
	return out
}

// body is a message without its header.
func body(t *testing.T, e *phicrypt.Encryptor, msg []byte) []byte {
	hl, err := e.HeaderLength(msg)
	require.NoError(t, err)
	return msg[hl:]
}

// tamperShare copies a share file with one byte of the share changed (the
// file stays valid PEM).
func tamperShare(t *testing.T, from, to string) string {
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	block, _ := pem.Decode(b)
	require.NotNil(t, block)
	block.Bytes[len(block.Bytes)-40] ^= 1
	require.NoError(t, os.WriteFile(to, pem.EncodeToMemory(block), 0o600))
	return to
}

// shareBytes are the 32 share bytes inside a share file.
func shareBytes(t *testing.T, path string) []byte {
	sh, err := readShareFile(path)
	require.NoError(t, err)
	enc := sh.RevealEncoding()
	return enc[len(enc)-64 : len(enc)-32]
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, mode))
	require.NoError(t, os.Chmod(to, mode))
}

// readDir concatenates every file under dir.
func readDir(t *testing.T, dir string) []byte {
	var all []byte
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		if e.Type().IsRegular() {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			require.NoError(t, err)
			all = append(all, b...)
		}
	}
	return slices.Clip(all)
}

// recoveryWorld is a keyctl world for a recovery test: a kmsmock of the
// test's own (a drill moves its clock past a deletion window, which a
// shared one must not see), a file store, a KMS key for branch keys and
// the team of three custodians (their identity files by name).
func recoveryWorld(t *testing.T) (*world, *kmsmock.Local, map[string]string) {
	l := kmsmock.StartTest(t, kmsmock.Config{})
	dir := t.TempDir()
	w := &world{t: t, dir: dir, kmsURL: l.URL, config: filepath.Join(dir, "keyctl", "config.json"), pubKeys: map[string]string{}}
	w.keyARN = w.createKMSKey()
	w.store = storeURL(t, dir)
	return w, l, w.initTeamOfThree()
}

// escrow2of3 runs escrow init for the key "escrow-2026", split 2 of 3
// between alice, bob and carol into w.dir/escrow, and returns that
// directory and the escrow public key.
func (w *world) escrow2of3() (string, *keyring.HPKEEscrowPublicKey) {
	dir := filepath.Join(w.dir, "escrow")
	var made escrowView
	w.okJSON(&made, "escrow", "init", "--name", "escrow-2026", "--shares", "3", "--threshold", "2",
		"--custodian", "alice", "--custodian", "bob", "--custodian", "carol", "--out-dir", dir)
	return dir, readEscrowPublicKey(w.t, made.PublicKey)
}

// approvedRecover proposes recovering escrow key "escrow-2026" to KMS
// key to into the change file out, approved by alice, bob and carol.
func (w *world) approvedRecover(ids map[string]string, to, out string) {
	w.t.Helper()
	w.ok("propose", "recover", "--escrow", "escrow-2026", "--to", to, "-o", out)
	for _, who := range []string{"alice", "bob", "carol"} {
		w.ok("approve", out, "--identity", ids[who])
	}
}

// serviceWithEscrow is a service as the drill has it: its KMS client, a
// KMS key of its own (soon lost) and an Encryptor wrapping each data key
// with that key and with the escrow public key pub.
func (w *world) serviceWithEscrow(pub *keyring.HPKEEscrowPublicKey) (*kms.Client, *kms.CreateKeyOutput, *phicrypt.Encryptor) {
	svc := kmsClient(w.kmsURL, servicePrincipal)
	k, err := svc.CreateKey(w.t.Context(), &kms.CreateKeyInput{Description: aws.String("a service key, soon lost")})
	require.NoError(w.t, err)
	return svc, k, serviceEncryptor(w.t, svc, aws.ToString(k.KeyMetadata.Arn), pub, 0)
}
