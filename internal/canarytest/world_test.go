package canarytest

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// The canaries: secrets of each kind that no formatted value may show.
// They are printable ASCII without characters that JSON or %q escape, so
// they read the same in every output they could leak into.
const (
	canaryPlain  = "cnry-plaintext-PHI-Jane-Roe-1961" // a message or field plaintext
	canaryKey    = "cnry-key-material-0123456789ABCD" // 32 bytes: an AES-256 key
	canaryID     = "cnry-branch-key-id-MRN-00042"     // a branch key id (may be a patient number)
	canaryCtxKey = "cnry-ctx-key-tenant-name"         // an encryption-context key
	canaryCtxVal = "cnry-ctx-value-patient-55501"     // an encryption-context value
	canaryCred   = "cnry-aws-secret-access-key-7741"  // a SigV4 secret access key
)

func canaryContext() map[string]string { return map[string]string{canaryCtxKey: canaryCtxVal} }

// world is what the table's builders draw on: kmsmock over HTTP, a file
// store, branch keys, keyrings and encryptors, all set up through the public
// API with the canaries in them. canaries starts as the constants above;
// builders add the secrets the world made (a random data key, say).
type world struct {
	t        *testing.T
	ctx      context.Context
	kms      *kmsmock.Local
	client   *kms.Client
	arn      string
	store    *keystore.FileStore
	bk       *keyring.BranchKeys
	version  keystore.BranchKeyVersion // CreateBranchKey(canaryID)
	hier     *keyring.Hierarchical     // BranchKeyID canaryID, its cache loaded
	raw      *keyring.RawAES           // canaryKey
	cache    *phicrypt.Cache
	enc      *phicrypt.Encryptor // raw keyring, cache, canary context required
	message  []byte              // canaryPlain thrice under canaryContext: two frames, the first holding it whole
	table    *fieldenc.Table     // BranchKeyID canaryID
	canaries []string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{t: t, ctx: ctx,
		canaries: []string{canaryPlain, canaryKey, canaryID, canaryCtxKey, canaryCtxVal, canaryCred}}
	w.kms = kmsmock.StartTest(t, kmsmock.Config{})
	w.client = w.kms.Client("svc-canary")
	key, err := w.client.CreateKey(ctx, &kms.CreateKeyInput{})
	w.must(err)
	w.arn = aws.ToString(key.KeyMetadata.Arn)
	w.store, err = keystore.OpenFileStore(t.TempDir())
	w.must(err)
	t.Cleanup(func() { w.store.Close() })
	w.bk, err = keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: w.store, Client: w.client,
		KMSKeyARN: w.arn, LogicalStoreName: "canary-store"})
	w.must(err)
	w.version, err = testkeys.Custodian(w.t, w.bk).CreateBranchKey(ctx, canaryID)
	w.must(err)
	w.hier, err = keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: w.bk,
		BranchKeyID: canaryID, CacheTTL: time.Minute, MaxUsesPerVersion: 1 << 20})
	w.must(err)
	w.raw, err = keyring.NewRawAES("canary-ns", "canary-wrapping-key", []byte(canaryKey))
	w.must(err)
	w.cache, err = phicrypt.NewCache(phicrypt.CacheConfig{MaxAge: time.Minute, Partition: "canary"})
	w.must(err)
	w.enc, err = phicrypt.New(phicrypt.Config{Keyring: w.raw, Cache: w.cache, FrameLength: 64,
		RequiredContextKeys: []string{canaryCtxKey}})
	w.must(err)
	w.message, err = w.enc.Encrypt(ctx, []byte(canaryPlain+canaryPlain+canaryPlain), canaryContext())
	w.must(err)
	w.table, err = fieldenc.New(fieldenc.Config{Keys: w.hier, BranchKeyID: canaryID, Table: "patients"})
	w.must(err)
	return w
}

func (w *world) must(err error) {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
}

// reader returns a stream Reader that has read one byte of the message, so
// the rest of the plaintext waits in its buffer.
func (w *world) reader() *phicrypt.Reader {
	r, err := w.enc.NewReader(w.ctx, bytes.NewReader(w.message), canaryContext())
	w.must(err)
	_, err = io.ReadFull(r, make([]byte, 1))
	w.must(err)
	return r
}

// writer returns a stream writer holding canaryPlain, written but not yet
// sealed (the writer keeps the frame being filled).
func (w *world) writer() io.WriteCloser {
	enc, err := phicrypt.New(phicrypt.Config{Keyring: w.raw, FrameLength: 4096})
	w.must(err)
	wc, err := enc.NewWriter(w.ctx, io.Discard, canaryContext())
	w.must(err)
	_, err = wc.Write([]byte(canaryPlain))
	w.must(err)
	return wc
}

// messageErrors returns the errors Decrypt gives for the message with a
// frame altered, and for the message read with another wrapping key.
func (w *world) messageErrors() []*phicrypt.MessageError {
	var out []*phicrypt.MessageError
	altered := bytes.Clone(w.message)
	altered[len(altered)-20] ^= 1
	_, _, err1 := w.enc.Decrypt(w.ctx, altered, canaryContext())
	other, err := keyring.NewRawAES("canary-ns", "canary-wrapping-key", bytes.Repeat([]byte{7}, 32))
	w.must(err)
	enc, err := phicrypt.New(phicrypt.Config{Keyring: other})
	w.must(err)
	_, _, err2 := enc.Decrypt(w.ctx, w.message, canaryContext())
	for _, err := range []error{err1, err2} {
		var me *phicrypt.MessageError
		if !errors.As(err, &me) {
			w.t.Fatalf("Decrypt gave %v, want a *MessageError", err)
		}
		out = append(out, me)
	}
	return out
}

// encryptionMaterials returns materials after the hierarchical keyring's
// OnEncrypt under the canary context: the data key it made is a canary,
// and the encrypted data key names the branch key by its id.
func (w *world) encryptionMaterials() *keyring.EncryptionMaterials {
	m := &keyring.EncryptionMaterials{SuiteID: 0x0478, DataKeyLength: 32, EncryptionContext: canaryContext()}
	w.must(w.hier.OnEncrypt(w.ctx, m))
	w.canaries = append(w.canaries, string(m.DataKey))
	return m
}

// keyringError is what the hierarchical keyring returns for a branch key
// id (the canary) the store does not hold.
func (w *world) keyringError() error {
	hier, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: w.bk,
		BranchKeyID: canaryID + "-missing", CacheTTL: time.Minute})
	w.must(err)
	m := &keyring.EncryptionMaterials{SuiteID: 0x0478, DataKeyLength: 32, EncryptionContext: canaryContext()}
	err = hier.OnEncrypt(w.ctx, m)
	if err == nil {
		w.t.Fatal("OnEncrypt under a missing branch key succeeded")
	}
	return err
}

// patient is a row type for fieldenc.
type patient struct {
	ID   string                  `phi:"rowid"`
	Name fieldenc.Sealed[string] `phi:"encrypt"`
	MRN  fieldenc.Sealed[string] `phi:"encrypt,deterministic"`
}

func (w *world) codec() *fieldenc.Codec[patient] {
	c, err := fieldenc.NewCodec[patient](w.table)
	w.must(err)
	p := patient{ID: "row-1", Name: fieldenc.Of(canaryPlain), MRN: fieldenc.Of(canaryPlain)}
	w.must(c.Seal(w.ctx, &p))
	return c
}

// fieldError is what Open gives for a row whose sealed MRN was altered.
func (w *world) fieldError() *fieldenc.FieldError {
	c := w.codec()
	p := patient{ID: "row-1", Name: fieldenc.Of(canaryPlain), MRN: fieldenc.Of(canaryPlain)}
	w.must(c.Seal(w.ctx, &p))
	stored, err := p.MRN.Value()
	w.must(err)
	// Flip one bit of the sealed bytes (not of their text form, where a
	// flipped bit may make bad base64 instead of a bad tag).
	text := stored.(string)
	bin, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(text, fieldenc.TextPrefix))
	w.must(err)
	bin[len(bin)-3] ^= 1
	var altered fieldenc.Sealed[string]
	w.must(altered.Scan(fieldenc.TextPrefix + base64.RawURLEncoding.EncodeToString(bin)))
	p.MRN = altered
	err = c.Open(w.ctx, &p)
	var fe *fieldenc.FieldError
	if !errors.As(err, &fe) {
		w.t.Fatalf("Open of an altered field gave %v, want a *FieldError", err)
	}
	return fe
}

// readerAt returns a ReaderAt that has read a range of the message.
func (w *world) readerAt() *phicrypt.ReaderAt {
	r, err := w.enc.NewReaderAt(w.ctx, bytes.NewReader(w.message), int64(len(w.message)), canaryContext())
	w.must(err)
	_, err = r.ReadAt(make([]byte, 20), 3)
	w.must(err)
	return r
}
