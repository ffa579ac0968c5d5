package canarytest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"io"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/phicrypt/phicrypt/audit"
	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/dynamodb"
	"github.com/phicrypt/phicrypt/keystore/sqlite"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
	"golang.org/x/mod/sumdb/note"
	_ "modernc.org/sqlite"
)

// entry says how the canary test treats one type. Exactly one of its fields
// is set:
//
//   - build returns values of the type, each as a pointer (*T), carrying a
//     canary wherever the type can hold one. Use the public API where it
//     can put the secret there (a Reader that has buffered plaintext, a
//     keyring whose cache holds an unwrapped key); build a literal only for
//     plain data types. A builder may add secrets the world made at random
//     (a generated data key) to w.canaries.
//   - noSecret says in one line why the type cannot hold a secret.
type entry struct {
	build    func(w *world) []any
	noSecret string
}

// How to add an entry: a new exported type in a public package (any
// directory of the module outside internal/, cmd/, examples/, interop/ and
// testdata/) makes TestEveryExportedTypeHasAnEntry fail with its name, for
// example "keyring.StaleUse". Add that name below with a builder (if the
// type can hold plaintext, key bytes, a branch key id, encryption-context
// keys or values, credentials, or an error that could carry any of them)
// or with noSecret and its reason. Unexported types that the public API
// hands out behind an interface (the stream writer) are listed under a
// descriptive name in extraTypes.
var types = map[string]entry{
	// phicrypt
	"phicrypt.Cache": {build: func(w *world) []any {
		return []any{w.cache} // newWorld's Encrypt left an entry: the canary context and a data key
	}},
	"phicrypt.CacheConfig":      {noSecret: "limits, a partition name and callbacks"},
	"phicrypt.CacheStats":       {noSecret: "counters"},
	"phicrypt.CommitmentPolicy": {noSecret: "an enumeration"},
	// RequiredContextKeys are names the program chose, not data (values
	// are where PHI may be); the canary sits in the keyring's key.
	"phicrypt.Config": {build: func(w *world) []any {
		return []any{&phicrypt.Config{Keyring: w.raw, Cache: w.cache, RequiredContextKeys: []string{"tenant"}}}
	}},
	"phicrypt.Encryptor": {build: func(w *world) []any { return []any{w.enc} }},
	"phicrypt.MessageError": {build: func(w *world) []any {
		var out []any
		for _, e := range w.messageErrors() {
			out = append(out, e)
		}
		return out
	}},
	"phicrypt.Reader":   {build: func(w *world) []any { return []any{w.reader()} }},
	"phicrypt.ReaderAt": {build: func(w *world) []any { return []any{w.readerAt()} }},
	"phicrypt.Stage":    {noSecret: "an enumeration"},
	"phicrypt.Message": {build: func(w *world) []any {
		m, err := w.enc.OpenHeader(w.ctx, w.message, canaryContext())
		w.must(err)
		return []any{m}
	}},
	"phicrypt.Layout": {noSecret: "sizes and counts of a message's frames"},
	"phicrypt.FrameSealer": {build: func(w *world) []any {
		f, err := w.enc.NewFrameSealer(w.ctx, canaryContext())
		w.must(err)
		return []any{f}
	}},

	// phicrypt/s3crypt
	"phicrypt/s3crypt.Client": {build: func(w *world) []any { return []any{w.s3().c} }},
	"phicrypt/s3crypt.Config": {build: func(w *world) []any {
		return []any{&s3crypt.Config{S3: w.s3().client, Encryptor: w.enc}}
	}},
	"phicrypt/s3crypt.Object": {build: func(w *world) []any {
		s := w.s3()
		o, err := s.c.Open(w.ctx, s.env.Bucket, "canary", canaryContext())
		w.must(err)
		_, err = o.ReadAt(make([]byte, 20), 3)
		w.must(err)
		return []any{o}
	}},
	"phicrypt/s3crypt.Reader": {build: func(w *world) []any {
		s := w.s3()
		r, err := s.c.Get(w.ctx, s.env.Bucket, "canary", canaryContext())
		w.must(err)
		_, err = io.ReadFull(r, make([]byte, 1))
		w.must(err)
		w.t.Cleanup(func() { r.Close() })
		return []any{r}
	}},
	"phicrypt/s3crypt.PutOptions":    {noSecret: "a size, a content type and ETag conditions"},
	"phicrypt/s3crypt.PutResult":     {noSecret: "an ETag, a version id and sizes"},
	"phicrypt/s3crypt.MigrateResult": {noSecret: "an ETag, a version id and sizes"},

	"phicrypt.StaleUse": {build: func(w *world) []any {
		return []any{&phicrypt.StaleUse{ExpiredFor: time.Second, Err: w.keyringError()}}
	}},
	"phicrypt.Suite": {noSecret: "an enumeration"},
	// phicrypt/s3crypt: reading objects of the Amazon S3 Encryption Client.
	// The client signs with the canary secret; the config must not show it.
	"phicrypt/s3crypt.LegacyConfig": {build: func(w *world) []any {
		client := kmsmock.NewClient(w.kms.URL, "us-east-1", "AKIDCANARY", canaryCred)
		return []any{&s3crypt.LegacyConfig{KMS: client, KeyIDs: []string{w.arn}, AllowInstructionFile: true}}
	}},
	"phicrypt/s3crypt.KMSDecrypter": {noSecret: "an interface: values format as their own type does"},
	// Rewrap: the rewrap of a signed message holds its new
	// header (the canary context in the clear) and a new signing key.
	"phicrypt.SignedRewrap":         {build: func(w *world) []any { return []any{w.signedRewrap()} }},
	"phicrypt/s3crypt.RewrapResult": {noSecret: "an ETag, a version id and byte counts"},
	// End of the Rewrap block.
	"keyring.StaleUse": {build: func(w *world) []any {
		return []any{&keyring.StaleUse{BranchKey: "branch key #00000000", Version: "v", ExpiredFor: time.Second, Err: w.keyringError()}}
	}},

	// keyring
	"keyring.BranchKey": {build: func(w *world) []any {
		k, err := w.hier.AcquireActive(w.ctx, canaryID, 1)
		w.must(err)
		w.t.Cleanup(k.Release)
		return []any{k}
	}},
	"keystore.BranchKeyVersion": {build: func(w *world) []any {
		rotated, err := testkeys.Custodian(w.t, w.bk).Rotate(w.ctx, canaryID)
		w.must(err)
		wrapped := w.version
		wrapped.Ciphertext = []byte(canaryKey) // wrapped key material: only its length may show
		return []any{&w.version, &rotated, &wrapped}
	}},
	"keyring.BranchKeys":       {build: func(w *world) []any { return []any{w.bk} }},
	"keyring.BranchKeysConfig": {noSecret: "a store and client, a key ARN, a store name and grant tokens"},
	"keyring.CountingKMS":      {noSecret: "counters around a KMS client"},
	"keyring.DecryptionMaterials": {build: func(w *world) []any {
		m := w.encryptionMaterials()
		return []any{&keyring.DecryptionMaterials{SuiteID: m.SuiteID, DataKeyLength: m.DataKeyLength,
			EncryptionContext: m.EncryptionContext, DataKey: m.DataKey}}
	}},
	"keyring.DiscoveryFilter": {noSecret: "an AWS partition and account ids"},
	"keyring.EscrowReport":    {noSecret: "counters"},
	"keyring.DropReport":      {noSecret: "counters"},
	"keyring.EncryptedDataKey": {build: func(w *world) []any {
		m := w.encryptionMaterials()
		return []any{&m.EncryptedDataKeys[0]} // a hierarchical EDK names the branch key id
	}},
	"keyring.EncryptionMaterials": {build: func(w *world) []any { return []any{w.encryptionMaterials()} }},
	"keystore.FileStore":          {build: func(w *world) []any { return []any{w.store} }},
	"keyring.Hierarchical":        {build: func(w *world) []any { w.encryptionMaterials(); return []any{w.hier} }},
	"keyring.HierarchicalConfig": {build: func(w *world) []any {
		return []any{&keyring.HierarchicalConfig{BranchKeys: w.bk, BranchKeyID: canaryID, CacheTTL: time.Minute}}
	}},
	"keyring.KMSCalls":  {noSecret: "counters"},
	"keyring.KMSClient": {noSecret: "an interface: values format as their own type does"},
	"keyring.AuditLog":  {noSecret: "an interface: values format as their own type does"},
	"keyring.AuditConfig": {build: func(w *world) []any {
		return []any{&keyring.AuditConfig{Log: auditLog(w, audit.NewMemorySink()), Hasher: auditHasher(w), Actor: "svc"}}
	}},
	"keyring.AuditedKMS": {build: func(w *world) []any {
		a, err := keyring.NewAuditedKMS(w.client, keyring.AuditConfig{Log: auditLog(w, audit.NewMemorySink()), Hasher: auditHasher(w), Actor: "svc"})
		w.must(err)
		return []any{a}
	}},
	"keyring.KMSConfig":          {noSecret: "a client, KMS key ids or ARNs and grant tokens"},
	"keyring.KMSDiscoveryConfig": {noSecret: "a client, a filter and grant tokens"},
	"custody.KMSReEncrypter":     {noSecret: "an interface: values format as their own type does"},
	"custody.KMSKeyPolicyConfig": {noSecret: "principal ARNs, an account id, a store name and context key names the program chose (values are where PHI may be)"},
	"custody.KMSKeyPolicyReader": {noSecret: "an interface: values format as their own type does"},
	// A policy may hold encryption-context keys and values in its
	// conditions; what the checker reports about it must not.
	"custody.KMSPolicyViolation": {build: func(w *world) []any {
		cond := `"Condition":{"StringEquals":{"kms:EncryptionContext:` + canaryCtxKey + `":"` + canaryCtxVal + `"}}`
		doc := `{"Version":"2012-10-17","Statement":[
 {"Sid":"S","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/svc"},"Action":["kms:Decrypt","kms:PutKeyPolicy"],"Resource":"*",` + cond + `},
 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/custodian"},"Action":"kms:*","Resource":"*",` + cond + `}]}`
		found, err := custody.CheckKMSKeyPolicy([]byte(doc), custody.KMSKeyPolicyConfig{Account: "111122223333",
			Custodians: []string{"arn:aws:iam::111122223333:role/custodian"}, Services: []string{"arn:aws:iam::111122223333:role/svc"},
			RequiredContextKeys: []string{"tenant"}})
		w.must(err)
		if len(found) < 3 {
			w.t.Fatalf("the checker found %d violations in a bad policy", len(found))
		}
		out := make([]any, len(found))
		for i := range found {
			out[i] = &found[i]
		}
		return out
	}},
	"custody.KMSPolicyViolationCode": {noSecret: "an enumeration"},
	"keyring.Keyring":                {noSecret: "an interface: values format as their own type does"},
	"keyring.Multi": {build: func(w *world) []any {
		m, err := keyring.NewMulti(w.raw, w.hier)
		w.must(err)
		return []any{m}
	}},
	"keyring.RawAES": {build: func(w *world) []any { return []any{w.raw} }},
	// keyring: the post-quantum escrow keyring. The private key's seed is
	// the key canary; the recovery keyring holds that key.
	"keyring.HPKEEscrowPrivateKey": {build: func(w *world) []any {
		k, err := keyring.ParseHPKEEscrowPrivateKey([]byte(canaryKey))
		w.must(err)
		return []any{k}
	}},
	"keyring.HPKEEscrow": {build: func(w *world) []any {
		k, err := keyring.ParseHPKEEscrowPrivateKey([]byte(canaryKey))
		w.must(err)
		rec, err := keyring.NewHPKEEscrowRecovery("canary-escrow", k)
		w.must(err)
		svc, err := keyring.NewHPKEEscrow("canary-escrow", k.PublicKey())
		w.must(err)
		return []any{rec, svc}
	}},
	"keyring.HPKEEscrowPublicKey": {noSecret: "an escrow public key, public by design (derived from the seed, which it cannot give back)"},
	// The raw RSA keyring holds an escrow private key; its numbers (and
	// their bytes) join the canaries.
	"keyring.RSAPadding": {noSecret: "an enumeration"},
	"keyring.RawRSA": {build: func(w *world) []any {
		cfg := rawRSAConfig(w)
		both, err := keyring.NewRawRSA(cfg)
		w.must(err)
		cfg.PublicKey = nil
		privOnly, err := keyring.NewRawRSA(cfg)
		w.must(err)
		return []any{both, privOnly}
	}},
	"keyring.RawRSAConfig": {build: func(w *world) []any { cfg := rawRSAConfig(w); return []any{&cfg} }},
	// The threshold keyring: children holding the canary key and the
	// canary branch key; it keeps nothing between calls, but a call under
	// the canary context has gone through it.
	"keyring.Threshold": {build: func(w *world) []any {
		kr := thresholdKeyring(w)
		thresholdMaterials(w, kr)
		return []any{kr}
	}},
	"keyring.ThresholdConfig": {build: func(w *world) []any {
		return []any{&keyring.ThresholdConfig{Threshold: 2, Children: thresholdChildren(w)}}
	}},
	"custody.RewrapOptions": {build: func(w *world) []any {
		return []any{&custody.RewrapOptions{Resume: &custody.RewrapPosition{BranchKeyID: canaryID, Version: w.version.Version}}}
	}},
	"custody.RewrapPosition": {build: func(w *world) []any {
		return []any{&custody.RewrapPosition{BranchKeyID: canaryID, Version: w.version.Version}}
	}},
	"custody.RewrapReport": {noSecret: "counters"},
	// Branch-key recovery (RecoverBranchKeys).
	"custody.KMSEncrypter": {noSecret: "an interface: values format as their own type does"},
	"custody.RecoverBranchKeysOptions": {build: func(w *world) []any {
		return []any{&custody.RecoverBranchKeysOptions{BranchKeyID: canaryID, Resume: &custody.RewrapPosition{BranchKeyID: canaryID, Version: w.version.Version}}}
	}},
	"custody.RecoverBranchKeysReport": {noSecret: "counters and versions named by branch key fingerprint"},
	"custody.VersionFingerprint":      {noSecret: "a branch key fingerprint and a version"},
	"custody.RotationPolicy":          {noSecret: "limits"},
	"custody.RotationReport":          {noSecret: "counters"},
	"keystore/sqlite.Store": {build: func(w *world) []any {
		s, err := sqlite.Open(w.ctx, w.t.TempDir()+"/store.db")
		w.must(err)
		w.t.Cleanup(func() { s.Close() })
		return []any{s}
	}},
	"keyring.Secret": {build: func(w *world) []any { s := keyring.Secret(canaryKey); return []any{&s} }},
	// A record's name may be a branch key id; its value is what the
	// custodian stored (here key-like bytes, to prove it never prints).
	"keystore.Record": {build: func(w *world) []any {
		_, err := w.store.PutRecord(w.ctx, "policy", canaryID, []byte(canaryKey), 0)
		w.must(err)
		r, err := w.store.GetRecord(w.ctx, "policy", canaryID)
		w.must(err)
		return []any{&r}
	}},
	"keystore.Records":           {noSecret: "an interface: values format as their own type does"},
	"keystore.RecordKindLister":  {noSecret: "an interface: values format as their own type does"},
	"keystore.State":             {noSecret: "an enumeration"},
	"keystore.Store":             {noSecret: "an interface: values format as their own type does"},
	"keystore/dynamodb.API":      {noSecret: "an interface of the DynamoDB client's methods"},
	"keystore/dynamodb.TableAPI": {noSecret: "an interface of the DynamoDB client's methods"},
	"keystore/dynamodb.Store": {build: func(w *world) []any {
		client := awsdynamodb.New(awsdynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://127.0.0.1:1"),
			Credentials: credentials.NewStaticCredentialsProvider("AKIDCANARY", canaryCred, "")})
		s, err := dynamodb.New(client, "branch-keys")
		w.must(err)
		return []any{s}
	}},
	"custody.BranchKeys": {build: func(w *world) []any {
		return []any{testkeys.Custodian(w.t, w.bk)}
	}},
	"keystore/postgres.Store":    {noSecret: "the same type as keystore/sqlite.Store (the shared SQL store), which has its own entry"},
	"keystore/storetest.Backend": {noSecret: "test configuration: a name and constructor functions"},

	// keystore/postgres: database roles (GrantStatements)
	"keystore/postgres.Role":        {noSecret: "an enumeration"},
	"keystore/postgres.GrantConfig": {noSecret: "a duty, a database role's name and a schema's name"},

	// custody: roles, signed policies, quorum-signed change requests
	"custody.Action":          {noSecret: "an enumeration"},
	"custody.Role":            {noSecret: "an enumeration"},
	"custody.ServiceRotation": {noSecret: "two flags"},
	"custody.RequestID":       {noSecret: "SHA-256 of a request's encoding"},
	"custody.Approval":        {noSecret: "a principal's name (never PHI), a request id and an Ed25519 signature"},
	"custody.Principal":       {noSecret: "a name (never PHI), an Ed25519 public key and an IAM ARN"},
	"custody.RecordStore":     {noSecret: "an interface: values format as their own type does"},
	"custody.AuditLog":        {noSecret: "an interface: values format as their own type does"},
	"custody.Policy":          {build: func(w *world) []any { return []any{custodyPolicy(w)} }},
	"custody.Change": {build: func(w *world) []any {
		r := custodyRequests(w)
		return []any{&r[0].Change, &r[1].Change}
	}},
	"custody.Request": {build: func(w *world) []any {
		r := custodyRequests(w)
		return []any{r[0], r[1]}
	}},
	"custody.Signer": {build: func(w *world) []any { return []any{custodySigner(w)} }},
	// Escrow shares: the seed and every share's bytes are canaries.
	"custody.EscrowShare": {build: func(w *world) []any {
		key, err := keyring.GenerateHPKEEscrowKey()
		w.must(err)
		seed := key.RevealSeed()
		w.canaries = append(w.canaries, string(seed))
		shares, err := custody.SplitEscrowKey("escrow-canary", key, 3, 2)
		w.must(err)
		out := make([]any, len(shares))
		for i, sh := range shares {
			enc := sh.RevealEncoding()
			w.canaries = append(w.canaries, string(enc[len(enc)-64:len(enc)-32]))
			out[i] = sh
		}
		return out
	}},
	"custody.AuthorityConfig": {build: func(w *world) []any {
		return []any{&custody.AuthorityConfig{Store: w.store, Audit: auditLog(w, audit.NewMemorySink()), Hasher: auditHasher(w)}}
	}},
	"custody.Authority": {build: func(w *world) []any {
		a, err := custody.NewAuthority(custody.AuthorityConfig{Store: w.store, Audit: auditLog(w, audit.NewMemorySink()), Hasher: auditHasher(w)})
		w.must(err)
		return []any{a}
	}},
	"custody.KMSKeyAdmin": {noSecret: "an interface: values format as their own type does"},
	"custody.ExecutorConfig": {build: func(w *world) []any {
		a, err := custody.NewAuthority(custody.AuthorityConfig{Store: w.store, Audit: auditLog(w, audit.NewMemorySink()), Hasher: auditHasher(w)})
		w.must(err)
		return []any{&custody.ExecutorConfig{Authority: a, Keys: testkeys.Custodian(w.t, w.bk), KMS: w.client, ReEncrypter: w.client}}
	}},
	"custody.Executor": {build: func(w *world) []any {
		a, err := custody.NewAuthority(custody.AuthorityConfig{Store: w.store, Audit: auditLog(w, audit.NewMemorySink()), Hasher: auditHasher(w)})
		w.must(err)
		x, err := custody.NewExecutor(custody.ExecutorConfig{Authority: a, Keys: testkeys.Custodian(w.t, w.bk), KMS: w.client, ReEncrypter: w.client})
		w.must(err)
		return []any{x}
	}},
	"custody.Applied": {build: func(w *world) []any {
		r := custodyRequests(w)
		v := keystore.BranchKeyVersion{BranchKeyID: canaryID, Version: keystore.NewBranchKeyVersion(), Ciphertext: []byte(canaryKey)}
		return []any{&custody.Applied{Authorization: &custody.Authorization{Request: r[0], Approvers: []string{"alice"}, Policy: custodyPolicy(w)}, Version: v}}
	}},
	"custody.Authorization": {build: func(w *world) []any {
		r := custodyRequests(w)
		return []any{&custody.Authorization{Request: r[0], Approvers: []string{"alice"}, Policy: custodyPolicy(w)}}
	}},

	// fieldenc
	"fieldenc.Codec": {build: func(w *world) []any { return []any{w.codec()} }},
	"fieldenc.Column": {build: func(w *world) []any {
		c, err := w.table.Column("notes", fieldenc.Randomized)
		w.must(err)
		_, err = c.Seal(w.ctx, nil, []byte(canaryPlain), []byte("row-1"))
		w.must(err)
		return []any{c}
	}},
	"fieldenc.Config": {build: func(w *world) []any {
		return []any{&fieldenc.Config{Keys: w.hier, BranchKeyID: canaryID, Table: "patients"}}
	}},
	"fieldenc.FieldError":      {build: func(w *world) []any { return []any{w.fieldError()} }},
	"fieldenc.IndexAssessment": {noSecret: "numbers about an index size"},
	"fieldenc.Kind":            {noSecret: "an enumeration"},
	"fieldenc.Plain":           {noSecret: "a type constraint"},
	"fieldenc.Progress":        {noSecret: "counters and the application's own row key (a position, not PHI)"},
	"fieldenc.Pseudonyms": {build: func(w *world) []any {
		p, err := w.table.Pseudonyms(w.ctx, "research")
		w.must(err)
		return []any{p}
	}},
	"fieldenc.Reencrypt": {build: func(w *world) []any {
		return []any{&fieldenc.Reencrypt[patient]{Codec: w.codec(), Job: "canary"}}
	}},
	"fieldenc.Sealed": {build: func(w *world) []any {
		s := fieldenc.Of(canaryPlain)
		b := fieldenc.Of([]byte(canaryKey))
		return []any{&s, &b}
	}},
	"fieldenc.Table": {build: func(w *world) []any { w.codec(); return []any{w.table} }},

	// kmsmock
	"kmsmock.Config": {build: func(w *world) []any {
		return []any{&kmsmock.Config{Credentials: map[string]string{"AKIDCANARY": canaryCred}}}
	}},
	"kmsmock.Fault": {noSecret: "fault rates and latencies"},
	"kmsmock.Local": {build: func(w *world) []any {
		return []any{kmsmock.StartTest(w.t, kmsmock.Config{Credentials: map[string]string{"AKIDCANARY": canaryCred}})}
	}},
	"kmsmock.Seed":    {noSecret: "key ids, descriptions, aliases and policies (no key material)"},
	"kmsmock.SeedKey": {noSecret: "a key id, description, aliases and policy (no key material)"},
	"kmsmock.Server": {build: func(w *world) []any {
		s, err := kmsmock.New(kmsmock.Config{Credentials: map[string]string{"AKIDCANARY": canaryCred}})
		w.must(err)
		return []any{s}
	}},
	"kmsmock.TB": {noSecret: "an interface: values format as their own type does"},
	"kmsmock.TrailEvent": {build: func(w *world) []any {
		w.encryptionMaterials() // the keyring's KMS calls carry the canary id in their context
		var out []any
		for _, e := range w.kms.Server.Trail() {
			out = append(out, &e)
		}
		return out
	}},

	// audit
	"audit.Checkpoint": {noSecret: "a log's origin, size and root hash"},
	"audit.Config": {build: func(w *world) []any {
		return []any{&audit.Config{Sink: audit.NewMemorySink(), Signer: auditSigner(w)}}
	}},
	"audit.Digest": {build: func(w *world) []any {
		h := auditHasher(w)
		k, c := h.BranchKey(canaryID), h.Context(canaryContext())
		return []any{&k, &c}
	}},
	"audit.Event": {build: func(w *world) []any {
		e := auditEvent(w)
		return []any{&e}
	}},
	"audit.FileSink": {build: func(w *world) []any {
		s, err := audit.OpenFileSink(w.t.TempDir())
		w.must(err)
		w.t.Cleanup(func() { s.Close() })
		auditLog(w, s)
		return []any{s}
	}},
	"audit.Hasher": {build: func(w *world) []any { return []any{auditHasher(w)} }},
	"audit.Kind":   {noSecret: "an enumeration"},
	"audit.Log":    {build: func(w *world) []any { return []any{auditLog(w, audit.NewMemorySink())} }},
	"audit.MemorySink": {build: func(w *world) []any {
		s := audit.NewMemorySink()
		auditLog(w, s)
		return []any{s}
	}},
	"audit.Record": {build: func(w *world) []any {
		l := auditLog(w, audit.NewMemorySink())
		recs, err := l.Records(0, 1)
		w.must(err)
		r, err := audit.ParseRecord(recs[0])
		w.must(err)
		return []any{&r}
	}},
	"audit.PostgresSink": {noSecret: "the caller's *sql.DB (formatted as a pointer, never its connection string), a table name and a record count"},
	"audit.Sink":         {noSecret: "an interface: values format as their own type does"},
	"audit.SlogMirror": {build: func(w *world) []any {
		m := audit.NewSlogMirror(audit.NewMemorySink(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		w.t.Cleanup(func() { m.Close() })
		auditLog(w, m)
		return []any{m}
	}},
	"audit.Verifier": {noSecret: "the log's public key"},
}

// rawRSAConfig holds a fresh RSA key pair whose private numbers, as
// decimal and hex text and as bytes, are added to the canaries.
func rawRSAConfig(w *world) keyring.RawRSAConfig {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	w.must(err)
	for _, n := range []*big.Int{key.D, key.Primes[0], key.Primes[1], key.Precomputed.Dp, key.Precomputed.Dq, key.Precomputed.Qinv} {
		w.canaries = append(w.canaries, n.String(), n.Text(16), string(n.Bytes()))
	}
	return keyring.RawRSAConfig{Namespace: "canary-ns", Name: "canary-escrow-key", PublicKey: &key.PublicKey,
		PrivateKey: key, Padding: keyring.RSAPaddingOAEPSHA256}
}

// custodySigner signs with an Ed25519 key whose seed is the key canary.
func custodySigner(w *world) *custody.Signer {
	s, err := custody.NewSigner("alice", ed25519.NewKeyFromSeed([]byte(canaryKey)))
	w.must(err)
	return s
}

// custodyPolicy governs the canary branch key id.
func custodyPolicy(w *world) *custody.Policy {
	return &custody.Policy{Scope: canaryID, Revision: 1, Custodians: []custody.Principal{custodySigner(w).Principal()},
		Quorum: map[custody.Action]int{custody.ActionSetPolicy: 1}}
}

// custodyRequests are a destruction of the canary branch key and a policy
// for it, both signed (an approval's error paths see them).
func custodyRequests(w *world) []*custody.Request {
	out := []*custody.Request{
		{Change: custody.Change{Action: custody.ActionDestroyKey, BranchKeyID: canaryID}, Proposer: "alice", Expiry: time.Now().Add(time.Hour)},
		{Change: custody.Change{Action: custody.ActionSetPolicy, NewPolicy: custodyPolicy(w)}, Proposer: "alice", Expiry: time.Now().Add(time.Hour)},
	}
	for _, r := range out {
		_, err := custodySigner(w).Approve(r)
		w.must(err)
	}
	return out
}

// auditHasher is keyed with the key canary.
func auditHasher(w *world) *audit.Hasher {
	h, err := audit.NewHasher([]byte(canaryKey))
	w.must(err)
	return h
}

// auditSigner is a fresh log signing key, added to the canaries.
func auditSigner(w *world) note.Signer {
	skey, _, err := note.GenerateKey(nil, "audit.canary/phicrypt")
	w.must(err)
	seed, err := base64.StdEncoding.DecodeString(strings.SplitN(skey, "+", 5)[4])
	w.must(err)
	w.canaries = append(w.canaries, skey, string(seed[1:])) // seed[0] is the algorithm
	s, err := note.NewSigner(skey)
	w.must(err)
	return s
}

// auditEvent is a key use of the canary branch key under the canary context.
func auditEvent(w *world) audit.Event {
	return auditHasher(w).KeyUse(time.Now(), "svc", "Decrypt", canaryID, canaryContext())
}

// auditLog is a log over sink holding auditEvent.
func auditLog(w *world, sink audit.Sink) *audit.Log {
	l, err := audit.NewLog(audit.Config{Sink: sink, Signer: auditSigner(w)})
	w.must(err)
	_, err = l.Append(auditEvent(w))
	w.must(err)
	return l
}

// thresholdChildren are three keyrings holding canaries: the raw keyring
// (the key canary), a second raw keyring with the same key, and the
// hierarchical keyring (the branch key id canary).
func thresholdChildren(w *world) []keyring.Keyring {
	second, err := keyring.NewRawAES("canary-ns", "canary-second-key", []byte(canaryKey))
	w.must(err)
	return []keyring.Keyring{w.raw, second, w.hier}
}

func thresholdKeyring(w *world) *keyring.Threshold {
	kr, err := keyring.NewThreshold(keyring.ThresholdConfig{Threshold: 2, Children: thresholdChildren(w)})
	w.must(err)
	return kr
}

// thresholdMaterials encrypts under the canary context; the data key it
// made is added to the canaries.
func thresholdMaterials(w *world, kr *keyring.Threshold) *keyring.EncryptionMaterials {
	m := &keyring.EncryptionMaterials{SuiteID: 0x0478, DataKeyLength: 32, EncryptionContext: canaryContext()}
	w.must(kr.OnEncrypt(w.ctx, m))
	w.canaries = append(w.canaries, string(m.DataKey))
	return m
}

// thresholdErrors are the threshold keyring's failures on a message
// written under the canary context: read under another context holding
// canaries (no child unwraps its share), with a share's key check altered,
// and with shares of two messages.
func thresholdErrors(w *world) []any {
	kr := thresholdKeyring(w)
	a, b := thresholdMaterials(w, kr), thresholdMaterials(w, kr)
	other := map[string]string{canaryCtxKey: canaryCtxVal + "-other", "mrn": canaryID}
	altered := slices.Clone(a.EncryptedDataKeys)
	altered[0].Ciphertext = slices.Clone(altered[0].Ciphertext)
	altered[0].Ciphertext[0] ^= 1
	var out []any
	for _, c := range []struct {
		ec   map[string]string
		edks []keyring.EncryptedDataKey
	}{
		{other, a.EncryptedDataKeys},
		{canaryContext(), altered},
		{canaryContext(), []keyring.EncryptedDataKey{a.EncryptedDataKeys[0], b.EncryptedDataKeys[1]}},
	} {
		m := &keyring.DecryptionMaterials{SuiteID: 0x0478, DataKeyLength: 32, EncryptionContext: c.ec}
		err := kr.OnDecrypt(w.ctx, m, c.edks)
		if err == nil {
			w.t.Fatal("a threshold keyring opened a message it must refuse")
		}
		out = append(out, err)
	}
	return out
}

// extraTypes are unexported types the public API hands out behind an
// interface; they are checked like the entries of types.
var extraTypes = map[string]entry{
	"keyring.thresholdError (from Threshold.OnDecrypt)": {build: thresholdErrors},
	"keyring branch-key escrow errors (escrow_test.go)": {build: branchKeyEscrowErrors},
	"phicrypt.writer (from Encryptor.NewWriter)":        {build: func(w *world) []any { return []any{w.writer()} }},
}
