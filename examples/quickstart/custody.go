package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/audit"
	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
	"golang.org/x/mod/sumdb/note"
)

// custodyDemo shows separation of duty: a KMS key whose policy lets the
// custodians administer it and never decrypt, one branch key per patient,
// a destruction ("forget this patient") that needs two of three
// custodians, and an audit log an auditor verifies with the log's public
// key alone.
func custodyDemo(ctx context.Context, out io.Writer, l *kmsmock.Local) error {
	dir, err := os.MkdirTemp("", "phicrypt-quickstart-custody-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// Each principal signs its KMS calls with its own access key;
	// kmsmock names it arn:aws:iam::111122223333:user/<access key>.
	arn := func(name string) string { return "arn:aws:iam::" + kmsmock.DefaultAccount + ":user/" + name }
	custodianKMS, serviceKMS := l.Client("custodian-alice"), l.Client("svc-patients")
	const storeName = "quickstart-patients"
	policyDoc, err := custody.GenerateKMSKeyPolicy(custody.KMSKeyPolicyConfig{
		Account:        kmsmock.DefaultAccount,
		Custodians:     []string{arn("custodian-alice")},
		Services:       []string{arn("svc-patients")},
		BranchKeyStore: true, LogicalStoreName: storeName,
	})
	if err != nil {
		return err
	}
	key, err := custodianKMS.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(string(policyDoc)), Description: aws.String("quickstart branch keys")})
	if err != nil {
		return fmt.Errorf("CreateKey with the generated policy: %w", err)
	}
	keyARN := aws.ToString(key.KeyMetadata.Arn)
	fmt.Fprintf(out, "16. custody: a KMS key whose generated policy lets custodians administer it and services use it, never both (%d bytes of policy JSON)\n", len(policyDoc))

	// The audit log: records in a crash-safe file, checkpoints signed with
	// the log's Ed25519 key, ids and contexts only as keyed digests.
	skey, vkey, err := note.GenerateKey(rand.Reader, "quickstart.example/audit")
	if err != nil {
		return err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return err
	}
	sink, err := audit.OpenFileSink(dir + "/audit")
	if err != nil {
		return err
	}
	defer sink.Close()
	log, err := audit.NewLog(audit.Config{Sink: sink, Signer: signer})
	if err != nil {
		return err
	}
	hashKey := make([]byte, audit.MinHashKeySize)
	rand.Read(hashKey)
	hasher, err := audit.NewHasher(hashKey)
	if err != nil {
		return err
	}

	store, err := keystore.OpenFileStore(dir + "/keys")
	if err != nil {
		return err
	}
	defer store.Close()
	auth, err := custody.NewAuthority(custody.AuthorityConfig{Store: store, Audit: log, Hasher: hasher})
	if err != nil {
		return err
	}
	var custodians []*custody.Signer
	for _, name := range []string{"alice", "bob", "carol"} {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		s, err := custody.NewSigner(name, priv)
		if err != nil {
			return err
		}
		custodians = append(custodians, s)
	}
	alice, bob, carol := custodians[0], custodians[1], custodians[2]
	_, svcKey, _ := ed25519.GenerateKey(rand.Reader)
	svc, err := custody.NewSigner("svc-patients", svcKey)
	if err != nil {
		return err
	}
	policy := &custody.Policy{
		Scope:      "patient-*",
		Custodians: []custody.Principal{alice.Principal(), bob.Principal(), carol.Principal()},
		Services:   []custody.Principal{svc.Principal()},
		Quorum:     map[custody.Action]int{custody.ActionSetPolicy: 2, custody.ActionDestroyKey: 2, custody.ActionDestroyVersion: 2},
	}
	install, err := auth.Propose(ctx, "alice", custody.Change{Action: custody.ActionSetPolicy, NewPolicy: policy}, time.Hour)
	if err != nil {
		return err
	}
	if _, err := auth.Authorize(ctx, install, approvals(install, alice, bob)); err != nil {
		return fmt.Errorf("installing the policy: %w", err)
	}
	fmt.Fprintf(out, "17. installed a signed policy for patient-*: custodians alice, bob, carol; destroying a key takes 2 of 3\n")

	// The custodians' side: their own KMS client, which KMS lets make
	// branch keys but never unwrap them.
	cfg := keyring.BranchKeysConfig{Store: store, Client: custodianKMS, KMSKeyARN: keyARN, LogicalStoreName: storeName}
	keys, err := custody.NewBranchKeys(cfg)
	if err != nil {
		return err
	}
	// The service's side: its own KMS client, every call it makes audited.
	audited, err := keyring.NewAuditedKMS(serviceKMS, keyring.AuditConfig{Log: log, Hasher: hasher, Actor: "svc-patients"})
	if err != nil {
		return err
	}
	cfg.Client = audited
	bk, err := keyring.NewBranchKeys(cfg)
	if err != nil {
		return err
	}
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, CacheTTL: time.Minute,
		BranchKeyIDSupplier: func(ec map[string]string) (string, error) { return "patient-" + ec["patient"], nil }})
	if err != nil {
		return err
	}
	defer kr.Close()
	cache, err := phicrypt.NewCache(phicrypt.CacheConfig{MaxAge: 5 * time.Minute, MaxMessages: 1000})
	if err != nil {
		return err
	}
	enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, Cache: cache, RequiredContextKeys: []string{"patient"}})
	if err != nil {
		return err
	}
	x, err := custody.NewExecutor(custody.ExecutorConfig{Authority: auth, Keys: keys, KMS: custodianKMS,
		AfterDestroy: func(id string) { kr.Forget(id); cache.ForgetBranchKey(id) }})
	if err != nil {
		return err
	}

	records := map[string][]byte{}
	for _, patient := range []string{"1001", "1002"} {
		create, err := auth.Propose(ctx, "carol", custody.Change{Action: custody.ActionCreate, BranchKeyID: "patient-" + patient}, time.Hour)
		if err != nil {
			return err
		}
		if _, err := x.Apply(ctx, create, approvals(create, carol)); err != nil {
			return fmt.Errorf("creating a patient's branch key: %w", err)
		}
		msg, err := enc.Encrypt(ctx, []byte("(synthetic) lab results of patient "+patient), map[string]string{"patient": patient})
		if err != nil {
			return err
		}
		records[patient] = msg
	}
	fmt.Fprintf(out, "18. one branch key per patient (created by carol alone: create needs 1 approval); the service encrypted a record for each\n")

	// A custodian cannot read what it keeps: KMS refuses its Decrypt of a
	// branch key, whatever program it runs.
	v, err := store.Active(ctx, "patient-1001")
	if err != nil {
		return err
	}
	_, err = custodianKMS.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: v.Ciphertext, KeyId: aws.String(keyARN), EncryptionContext: keys.EncryptionContext(v)})
	if !isAccessDenied(err) {
		return fmt.Errorf("a custodian's Decrypt of a branch key: want AccessDeniedException, got %v", err)
	}
	fmt.Fprintf(out, "19. KMS refused the custodian's Decrypt of a branch key: AccessDeniedException\n")

	// Forget patient 1001: carol proposes, one approval is not enough,
	// two are.
	forget, err := auth.Propose(ctx, "carol", custody.Change{Action: custody.ActionDestroyKey, BranchKeyID: "patient-1001"}, time.Hour)
	if err != nil {
		return err
	}
	if _, err := x.Apply(ctx, forget, approvals(forget, carol)); !errors.Is(err, custody.ErrTooFewApprovals) {
		return fmt.Errorf("destroying with one approval: want ErrTooFewApprovals, got %v", err)
	}
	fmt.Fprintf(out, "20. destroying the first patient's key with carol's approval alone was refused: %v\n", custody.ErrTooFewApprovals)
	applied, err := x.Apply(ctx, forget, approvals(forget, carol, bob))
	if err != nil {
		return fmt.Errorf("destroying with two approvals: %w", err)
	}
	_, _, err = enc.Decrypt(ctx, records["1001"], map[string]string{"patient": "1001"})
	if !errors.Is(err, keyring.ErrKeyDestroyed) {
		return fmt.Errorf("a destroyed patient's record: want ErrKeyDestroyed, got %v", err)
	}
	if _, _, err := enc.Decrypt(ctx, records["1002"], map[string]string{"patient": "1002"}); err != nil {
		return fmt.Errorf("another patient's record: %w", err)
	}
	fmt.Fprintf(out, "21. approved by %v, the first patient's key was crypto-shredded: their record fails with ErrKeyDestroyed; the second patient's still decrypts\n",
		applied.Authorization.Approvers)

	// The auditor holds only the log's public key: it checks the signed
	// checkpoint, every record against it, and one record's inclusion.
	checkpoint, err := log.Checkpoint()
	if err != nil {
		return err
	}
	verifier, err := audit.NewVerifier(vkey)
	if err != nil {
		return err
	}
	cp, err := verifier.Open(checkpoint)
	if err != nil {
		return err
	}
	all, err := log.Records(0, cp.Size)
	if err != nil {
		return err
	}
	if err := verifier.VerifyRecords(cp, all); err != nil {
		return fmt.Errorf("verifying the audit log: %w", err)
	}
	kinds := map[audit.Kind]int{}
	destruction := int64(-1)
	for i, b := range all {
		r, err := audit.ParseRecord(b)
		if err != nil {
			return err
		}
		kinds[r.Kind]++
		if r.Kind == audit.KindDestruction {
			destruction = int64(i)
		}
	}
	proof, err := log.ProveRecord(destruction, cp.Size)
	if err != nil {
		return err
	}
	if err := verifier.VerifyRecord(cp, destruction, all[destruction], proof); err != nil {
		return err
	}
	fmt.Fprintf(out, "22. audit log verified with the log's public key: %d records (%d KMS key uses, %d changes, %d denial, %d destruction), the destruction proven included\n",
		cp.Size, kinds[audit.KindKeyUse], kinds[audit.KindAdminChange], kinds[audit.KindDenial], kinds[audit.KindDestruction])
	return nil
}

// approvals signs r by each custodian.
func approvals(r *custody.Request, signers ...*custody.Signer) []custody.Approval {
	var out []custody.Approval
	for _, s := range signers {
		a, err := s.Approve(r)
		if err != nil {
			continue // Apply then reports too few approvals
		}
		out = append(out, a)
	}
	return out
}

func isAccessDenied(err error) bool {
	var denied interface{ ErrorCode() string }
	return errors.As(err, &denied) && denied.ErrorCode() == "AccessDeniedException"
}
