package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/stretchr/testify/require"
)

// kmsEnv is one kmsmock server on loopback, reached over real HTTP by the
// aws-sdk-go-v2 client.
type kmsEnv struct {
	t *testing.T
	l *kmsmock.Local
}

func newKMSEnv(t *testing.T, cfg kmsmock.Config) *kmsEnv {
	return &kmsEnv{t: t, l: kmsmock.StartTest(t, cfg)}
}

// client signs as principal, without retries, so call counts are exact.
func (e *kmsEnv) client(principal string) *kms.Client {
	return e.l.Client(principal, func(o *kms.Options) { o.RetryMaxAttempts = 1 })
}

func (e *kmsEnv) admin() *kms.Client { return e.client("admin") }

// key creates a key (under policy, when set) and returns its ARN.
func (e *kmsEnv) key(policy string) string {
	e.t.Helper()
	in := &kms.CreateKeyInput{Description: aws.String("keyring test")}
	if policy != "" {
		in.Policy = aws.String(policy)
	}
	out, err := e.admin().CreateKey(context.Background(), in)
	require.NoError(e.t, err)
	return aws.ToString(out.KeyMetadata.Arn)
}

func (e *kmsEnv) calls(op string) int64 { return e.l.Calls(op) }

func newKMS(t *testing.T, cfg keyring.KMSConfig) keyring.Keyring {
	t.Helper()
	kr, err := keyring.NewKMS(cfg)
	require.NoError(t, err)
	return kr
}

func newDiscovery(t *testing.T, cfg keyring.KMSDiscoveryConfig) keyring.Keyring {
	t.Helper()
	kr, err := keyring.NewKMSDiscovery(cfg)
	require.NoError(t, err)
	return kr
}

func apiErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestNewKMSRefusesBadConfig(t *testing.T) {
	e := newKMSEnv(t, kmsmock.Config{})
	c := e.client("svc")
	for _, cfg := range []keyring.KMSConfig{
		{Generator: "arn:aws:kms:us-east-1:111122223333:key/x"},
		{Client: c},
		{Client: c, Generator: "arn:aws:kms:us-east-1:111122223333:key/x", Keys: []string{""}},
	} {
		kr, err := keyring.NewKMS(cfg)
		require.Error(t, err)
		require.Nil(t, kr)
	}
	for _, cfg := range []keyring.KMSDiscoveryConfig{
		{},
		{Client: c, Filter: &keyring.DiscoveryFilter{AccountIDs: []string{"111122223333"}}},
		{Client: c, Filter: &keyring.DiscoveryFilter{Partition: "aws"}},
		{Client: c, Filter: &keyring.DiscoveryFilter{Partition: "aws", AccountIDs: []string{"111122223333", ""}}},
	} {
		kr, err := keyring.NewKMSDiscovery(cfg)
		require.Error(t, err)
		require.Nil(t, kr)
	}
}

// The generator makes the data key with one GenerateDataKey and each extra
// key wraps it with one Encrypt; every EDK is provider "aws-kms" with the
// key ARN KMS answered as its provider info, and each key alone decrypts.
func TestKMSGeneratorAndExtraKeys(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	gen, extra1, extra2 := e.key(""), e.key(""), e.key("")
	svc := e.client("svc")

	kr := newKMS(t, keyring.KMSConfig{Client: svc, Generator: gen, Keys: []string{extra1, extra2}})
	em := encMaterials(phiContext)
	require.NoError(t, kr.OnEncrypt(ctx, em))
	require.EqualValues(t, 1, e.calls("GenerateDataKey"))
	require.EqualValues(t, 2, e.calls("Encrypt"))
	require.Len(t, em.DataKey, dataKeyLength)
	require.Len(t, em.EncryptedDataKeys, 3)
	for i, arn := range []string{gen, extra1, extra2} {
		edk := em.EncryptedDataKeys[i]
		require.Equal(t, "aws-kms", edk.ProviderID)
		require.Equal(t, arn, string(edk.ProviderInfo))
		require.NotEmpty(t, edk.Ciphertext)
	}

	for _, arn := range []string{gen, extra1, extra2} {
		for name, alone := range map[string]keyring.KMSConfig{
			"generator": {Client: svc, Generator: arn},
			"keys":      {Client: svc, Keys: []string{arn}},
		} {
			t.Run(arn[strings.LastIndex(arn, "/")+1:]+"/"+name, func(t *testing.T) {
				before := e.calls("Decrypt")
				dm := decMaterials(phiContext)
				require.NoError(t, newKMS(t, alone).OnDecrypt(ctx, dm, em.EncryptedDataKeys))
				require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))
				require.EqualValues(t, 1, e.calls("Decrypt")-before, "only the EDK naming this key is sent to KMS")
			})
		}
	}

	// The trail shows each Decrypt named the key that wrapped the EDK.
	for _, ev := range e.l.Trail() {
		if ev.Operation == "Decrypt" {
			require.Equal(t, "Success", ev.Result)
			require.Contains(t, []string{gen, extra1, extra2}, ev.KeyARN)
		}
	}

	// A keyring for an unrelated key skips all EDKs without calling KMS.
	before := e.calls("Decrypt")
	dm := decMaterials(phiContext)
	err := newKMS(t, keyring.KMSConfig{Client: svc, Generator: e.key("")}).OnDecrypt(ctx, dm, em.EncryptedDataKeys)
	require.ErrorIs(t, err, keyring.ErrNoMatchingKey)
	require.Nil(t, dm.DataKey)
	require.Equal(t, before, e.calls("Decrypt"))
}

// A keyring with only extra keys (no generator) wraps a data key made
// elsewhere and cannot make one itself.
func TestKMSWithoutGeneratorWrapsOnly(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	arn := e.key("")
	kr := newKMS(t, keyring.KMSConfig{Client: e.client("svc"), Keys: []string{arn}})

	em := encMaterials(nil)
	require.Error(t, kr.OnEncrypt(ctx, em))
	require.Nil(t, em.DataKey)
	require.Empty(t, em.EncryptedDataKeys)
	require.Zero(t, e.calls("GenerateDataKey")+e.calls("Encrypt"))

	dk := bytes.Repeat([]byte{0x42}, dataKeyLength)
	em.DataKey = keyring.Secret(bytes.Clone(dk))
	require.NoError(t, kr.OnEncrypt(ctx, em))
	require.EqualValues(t, 1, e.calls("Encrypt"))
	require.Equal(t, dk, []byte(em.DataKey))
	require.Len(t, em.EncryptedDataKeys, 1)
	require.Equal(t, arn, string(em.EncryptedDataKeys[0].ProviderInfo))

	dm := decMaterials(nil)
	require.NoError(t, kr.OnDecrypt(ctx, dm, em.EncryptedDataKeys))
	require.Equal(t, dk, []byte(dm.DataKey))
}

// An alias (name or ARN) works as a generator; the EDK records the key ARN
// KMS answered, so keyrings named by key ARN decrypt it. A strict keyring
// named by alias matches no EDK (KMS always answers with key ARNs).
func TestKMSAliasGenerator(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	arn := e.key("")
	_, err := e.admin().CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/phi-notes"), TargetKeyId: aws.String(arn)})
	require.NoError(t, err)
	svc := e.client("svc")
	aliasARN := "arn:aws:kms:us-east-1:111122223333:alias/phi-notes"

	for _, id := range []string{"alias/phi-notes", aliasARN} {
		t.Run(id, func(t *testing.T) {
			kr := newKMS(t, keyring.KMSConfig{Client: svc, Generator: id})
			em := encMaterials(phiContext)
			require.NoError(t, kr.OnEncrypt(ctx, em))
			require.Len(t, em.EncryptedDataKeys, 1)
			require.Equal(t, arn, string(em.EncryptedDataKeys[0].ProviderInfo))

			dm := decMaterials(phiContext)
			require.NoError(t, newKMS(t, keyring.KMSConfig{Client: svc, Generator: arn}).OnDecrypt(ctx, dm, em.EncryptedDataKeys))
			require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))

			dm = decMaterials(phiContext)
			require.NoError(t, newDiscovery(t, keyring.KMSDiscoveryConfig{Client: svc}).OnDecrypt(ctx, dm, em.EncryptedDataKeys))

			dm = decMaterials(phiContext)
			require.ErrorIs(t, kr.OnDecrypt(ctx, dm, em.EncryptedDataKeys), keyring.ErrNoMatchingKey)
			require.Nil(t, dm.DataKey)
		})
	}
}

func TestKMSWrongContext(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	arn := e.key("")
	svc := e.client("svc")
	em := encMaterials(phiContext)
	require.NoError(t, newKMS(t, keyring.KMSConfig{Client: svc, Generator: arn}).OnEncrypt(ctx, em))

	wrong := map[string]string{"tenant": "general-hospital", "patient": "CANARY-other-patient"}
	for name, kr := range map[string]keyring.Keyring{
		"strict":    newKMS(t, keyring.KMSConfig{Client: svc, Generator: arn}),
		"discovery": newDiscovery(t, keyring.KMSDiscoveryConfig{Client: svc}),
	} {
		t.Run(name, func(t *testing.T) {
			for _, ec := range []map[string]string{wrong, nil, {"tenant": "general-hospital"}} {
				dm := decMaterials(ec)
				err := kr.OnDecrypt(ctx, dm, em.EncryptedDataKeys)
				require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
				var invalid *types.InvalidCiphertextException
				require.ErrorAs(t, err, &invalid)
				require.Nil(t, dm.DataKey)
				requireNoCanary(t, err.Error(), em.DataKey)
			}
		})
	}
}

func TestKMSDisabledKey(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	arn := e.key("")
	svc := e.client("svc")
	kr := newKMS(t, keyring.KMSConfig{Client: svc, Generator: arn})
	em := encMaterials(phiContext)
	require.NoError(t, kr.OnEncrypt(ctx, em))

	_, err := e.admin().DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(arn)})
	require.NoError(t, err)

	fresh := encMaterials(phiContext)
	err = kr.OnEncrypt(ctx, fresh)
	require.ErrorContains(t, err, "DisabledException")
	var disabled *types.DisabledException
	require.ErrorAs(t, err, &disabled)
	require.Nil(t, fresh.DataKey)
	require.Empty(t, fresh.EncryptedDataKeys)

	for _, dec := range []keyring.Keyring{kr, newDiscovery(t, keyring.KMSDiscoveryConfig{Client: svc})} {
		dm := decMaterials(phiContext)
		err = dec.OnDecrypt(ctx, dm, em.EncryptedDataKeys)
		require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
		require.ErrorContains(t, err, "DisabledException")
		require.ErrorAs(t, err, &disabled)
		require.Nil(t, dm.DataKey)
	}

	// Enabled again, the old EDK reads.
	_, err = e.admin().EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(arn)})
	require.NoError(t, err)
	dm := decMaterials(phiContext)
	require.NoError(t, kr.OnDecrypt(ctx, dm, em.EncryptedDataKeys))
	require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))
}

// A key policy that denies the principal makes both directions fail for it
// alone; another principal of the account still uses the key.
func TestKMSPolicyDeniesPrincipal(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	policy := `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
		{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:user/intruder"},"Action":["kms:Decrypt","kms:Encrypt","kms:GenerateDataKey*"],"Resource":"*"}]}`
	arn := e.key(policy)

	allowed := newKMS(t, keyring.KMSConfig{Client: e.client("svc"), Generator: arn})
	em := encMaterials(phiContext)
	require.NoError(t, allowed.OnEncrypt(ctx, em))

	denied := newKMS(t, keyring.KMSConfig{Client: e.client("intruder"), Generator: arn})
	fresh := encMaterials(phiContext)
	err := denied.OnEncrypt(ctx, fresh)
	require.Error(t, err)
	require.Equal(t, "AccessDeniedException", apiErrorCode(err))
	require.Nil(t, fresh.DataKey)
	require.Empty(t, fresh.EncryptedDataKeys)

	for _, kr := range []keyring.Keyring{denied, newDiscovery(t, keyring.KMSDiscoveryConfig{Client: e.client("intruder")})} {
		dm := decMaterials(phiContext)
		err = kr.OnDecrypt(ctx, dm, em.EncryptedDataKeys)
		require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
		require.Equal(t, "AccessDeniedException", apiErrorCode(err))
		require.Nil(t, dm.DataKey)
	}

	dm := decMaterials(phiContext)
	require.NoError(t, allowed.OnDecrypt(ctx, dm, em.EncryptedDataKeys))
	require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))
}

func TestKMSDiscovery(t *testing.T) {
	ctx := context.Background()
	home := newKMSEnv(t, kmsmock.Config{})
	away := newKMSEnv(t, kmsmock.Config{Account: "444455556666"})
	homeARN, awayARN := home.key(""), away.key("")
	require.Contains(t, homeARN, ":111122223333:key/")
	require.Contains(t, awayARN, ":444455556666:key/")

	// One message with a data key wrapped in each account.
	em := encMaterials(phiContext)
	require.NoError(t, newKMS(t, keyring.KMSConfig{Client: away.client("svc"), Generator: awayARN}).OnEncrypt(ctx, em))
	require.NoError(t, newKMS(t, keyring.KMSConfig{Client: home.client("svc"), Keys: []string{homeARN}}).OnEncrypt(ctx, em))
	require.Len(t, em.EncryptedDataKeys, 2)
	awayOnly := em.EncryptedDataKeys[:1]
	homeOnly := em.EncryptedDataKeys[1:]

	homeFilter := &keyring.DiscoveryFilter{Partition: "aws", AccountIDs: []string{"111122223333"}}
	for _, tc := range []struct {
		name    string
		filter  *keyring.DiscoveryFilter
		edks    []keyring.EncryptedDataKey
		want    error // nil: decrypts
		decrypt int64 // Decrypt calls sent to the home server
	}{
		{"no filter, home EDK", nil, homeOnly, nil, 1},
		{"no filter, away EDK first", nil, em.EncryptedDataKeys, nil, 2},
		{"no filter, away EDK only", nil, awayOnly, keyring.ErrUnwrapFailed, 1},
		{"home account", homeFilter, homeOnly, nil, 1},
		{"home account skips away EDK", homeFilter, em.EncryptedDataKeys, nil, 1},
		{"home account, away EDK only", homeFilter, awayOnly, keyring.ErrNoMatchingKey, 0},
		{"several accounts", &keyring.DiscoveryFilter{Partition: "aws", AccountIDs: []string{"444455556666", "111122223333"}}, homeOnly, nil, 1},
		{"other account", &keyring.DiscoveryFilter{Partition: "aws", AccountIDs: []string{"999999999999"}}, em.EncryptedDataKeys, keyring.ErrNoMatchingKey, 0},
		{"other partition", &keyring.DiscoveryFilter{Partition: "aws-cn", AccountIDs: []string{"111122223333"}}, homeOnly, keyring.ErrNoMatchingKey, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kr := newDiscovery(t, keyring.KMSDiscoveryConfig{Client: home.client("svc"), Filter: tc.filter})
			before := home.calls("Decrypt")
			dm := decMaterials(phiContext)
			err := kr.OnDecrypt(ctx, dm, tc.edks)
			require.Equal(t, tc.decrypt, home.calls("Decrypt")-before)
			if tc.want == nil {
				require.NoError(t, err)
				require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))
				return
			}
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, dm.DataKey)
		})
	}

	// The away account's own discovery keyring reads its EDK.
	dm := decMaterials(phiContext)
	awayFilter := &keyring.DiscoveryFilter{Partition: "aws", AccountIDs: []string{"444455556666"}}
	require.NoError(t, newDiscovery(t, keyring.KMSDiscoveryConfig{Client: away.client("svc"), Filter: awayFilter}).OnDecrypt(ctx, dm, em.EncryptedDataKeys))
	require.Equal(t, []byte(em.DataKey), []byte(dm.DataKey))
}

func TestKMSDiscoveryRefusesEncrypt(t *testing.T) {
	e := newKMSEnv(t, kmsmock.Config{})
	kr := newDiscovery(t, keyring.KMSDiscoveryConfig{Client: e.client("svc")})
	em := encMaterials(phiContext)
	err := kr.OnEncrypt(context.Background(), em)
	require.ErrorContains(t, err, "cannot encrypt")
	require.Nil(t, em.DataKey)
	require.Empty(t, em.EncryptedDataKeys)

	dk := keyring.Secret(bytes.Repeat([]byte{1}, dataKeyLength))
	em.DataKey = dk
	require.Error(t, kr.OnEncrypt(context.Background(), em))
	require.Empty(t, em.EncryptedDataKeys)
	require.Zero(t, e.calls("Encrypt")+e.calls("GenerateDataKey"))
}

// An aws-kms EDK whose provider info is not a key ARN fails the call
// (framework/aws-kms/aws-kms-keyring.md, OnDecrypt), without calling KMS.
func TestKMSRefusesMalformedProviderInfo(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	arn := e.key("")
	svc := e.client("svc")
	for _, info := range []string{
		"not-an-arn",
		"arn:aws:kms:us-east-1:111122223333:key/",
		"arn:aws:s3:us-east-1:111122223333:key/x",
		"arn:aws:kms:us-east-1:111122223333:alias/phi-notes",
	} {
		edks := []keyring.EncryptedDataKey{{ProviderID: "aws-kms", ProviderInfo: []byte(info), Ciphertext: []byte{1, 2, 3}}}
		for name, kr := range map[string]keyring.Keyring{
			"strict":    newKMS(t, keyring.KMSConfig{Client: svc, Generator: arn}),
			"discovery": newDiscovery(t, keyring.KMSDiscoveryConfig{Client: svc}),
		} {
			t.Run(name+"/"+info, func(t *testing.T) {
				dm := decMaterials(nil)
				err := kr.OnDecrypt(ctx, dm, edks)
				require.Error(t, err)
				require.NotErrorIs(t, err, keyring.ErrNoMatchingKey)
				require.Nil(t, dm.DataKey)
			})
		}
	}
	require.Zero(t, e.calls("Decrypt"))

	// EDKs of other providers are skipped by both.
	edks := []keyring.EncryptedDataKey{{ProviderID: "aws-kms-not", ProviderInfo: []byte(arn), Ciphertext: []byte{1}}, {ProviderID: "raw", ProviderInfo: []byte("k"), Ciphertext: []byte{1}}}
	require.ErrorIs(t, newKMS(t, keyring.KMSConfig{Client: svc, Generator: arn}).OnDecrypt(ctx, decMaterials(nil), edks), keyring.ErrNoMatchingKey)
	require.ErrorIs(t, newDiscovery(t, keyring.KMSDiscoveryConfig{Client: svc}).OnDecrypt(ctx, decMaterials(nil), edks), keyring.ErrNoMatchingKey)
}

func TestKMSDataKeyAlreadyPresent(t *testing.T) {
	e := newKMSEnv(t, kmsmock.Config{})
	arn := e.key("")
	dk := keyring.Secret(bytes.Repeat([]byte{3}, dataKeyLength))
	for _, kr := range []keyring.Keyring{
		newKMS(t, keyring.KMSConfig{Client: e.client("svc"), Generator: arn}),
		newDiscovery(t, keyring.KMSDiscoveryConfig{Client: e.client("svc")}),
	} {
		dm := decMaterials(nil)
		dm.DataKey = dk
		require.ErrorIs(t, kr.OnDecrypt(context.Background(), dm, nil), keyring.ErrDataKeyPresent)
		require.Equal(t, dk, dm.DataKey)
	}
}

// recordingKMS records the grant tokens of every call and can tamper with
// KMS's answers, to test the keyrings' checks of them.
type recordingKMS struct {
	keyring.KMSClient
	mu     sync.Mutex
	grants [][]string
	tamper func(keyID *string, plaintext *[]byte)
}

func (r *recordingKMS) record(g []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.grants = append(r.grants, g)
}

func (r *recordingKMS) GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, opts ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	r.record(in.GrantTokens)
	out, err := r.KMSClient.GenerateDataKey(ctx, in, opts...)
	if err == nil && r.tamper != nil {
		r.tamper(out.KeyId, &out.Plaintext)
	}
	return out, err
}

func (r *recordingKMS) Encrypt(ctx context.Context, in *kms.EncryptInput, opts ...func(*kms.Options)) (*kms.EncryptOutput, error) {
	r.record(in.GrantTokens)
	out, err := r.KMSClient.Encrypt(ctx, in, opts...)
	if err == nil && r.tamper != nil {
		var none []byte
		r.tamper(out.KeyId, &none)
	}
	return out, err
}

func (r *recordingKMS) Decrypt(ctx context.Context, in *kms.DecryptInput, opts ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	r.record(in.GrantTokens)
	out, err := r.KMSClient.Decrypt(ctx, in, opts...)
	if err == nil && r.tamper != nil {
		r.tamper(out.KeyId, &out.Plaintext)
	}
	return out, err
}

func TestKMSGrantTokensPassThrough(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	gen, extra := e.key(""), e.key("")
	grants := []string{"grant-token-1", "grant-token-2"}
	rec := &recordingKMS{KMSClient: e.client("svc")}

	kr := newKMS(t, keyring.KMSConfig{Client: rec, Generator: gen, Keys: []string{extra}, GrantTokens: grants})
	em := encMaterials(phiContext)
	require.NoError(t, kr.OnEncrypt(ctx, em))
	dm := decMaterials(phiContext)
	require.NoError(t, kr.OnDecrypt(ctx, dm, em.EncryptedDataKeys))
	dm = decMaterials(phiContext)
	require.NoError(t, newDiscovery(t, keyring.KMSDiscoveryConfig{Client: rec, GrantTokens: grants}).OnDecrypt(ctx, dm, em.EncryptedDataKeys))
	require.Len(t, rec.grants, 4) // GenerateDataKey, Encrypt, Decrypt, Decrypt
	for _, g := range rec.grants {
		require.Equal(t, grants, g)
	}

	// They reach the wire: kmsmock checks them as KMS does (at most 10).
	tooMany := make([]string, 11)
	for i := range tooMany {
		tooMany[i] = "grant"
	}
	err := newKMS(t, keyring.KMSConfig{Client: e.client("svc"), Generator: gen, GrantTokens: tooMany}).OnEncrypt(ctx, encMaterials(nil))
	require.Equal(t, "ValidationException", apiErrorCode(err))
	dm = decMaterials(phiContext)
	err = newDiscovery(t, keyring.KMSDiscoveryConfig{Client: e.client("svc"), GrantTokens: tooMany}).OnDecrypt(ctx, dm, em.EncryptedDataKeys)
	require.ErrorIs(t, err, keyring.ErrUnwrapFailed)
	require.Equal(t, "ValidationException", apiErrorCode(err))
}

// The keyrings check KMS's answers as the specification requires: a key ARN
// in every response, the asked-for key on Decrypt, and a data key of the
// suite's length. A bad answer leaves the materials unchanged.
func TestKMSChecksResponses(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	gen, extra, other := e.key(""), e.key(""), e.key("")
	good := newKMS(t, keyring.KMSConfig{Client: e.client("svc"), Generator: gen, Keys: []string{extra}})
	em := encMaterials(nil)
	require.NoError(t, good.OnEncrypt(ctx, em))

	for _, tc := range []struct {
		name   string
		tamper func(keyID *string, plaintext *[]byte)
	}{
		{"key id not an ARN", func(id *string, _ *[]byte) { *id = "not-an-arn" }},
		{"short data key", func(_ *string, pt *[]byte) {
			if *pt != nil {
				*pt = (*pt)[:16]
			}
		}},
		{"answer names another key", func(id *string, _ *[]byte) { *id = other }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingKMS{KMSClient: e.client("svc"), tamper: tc.tamper}
			kr := newKMS(t, keyring.KMSConfig{Client: rec, Generator: gen, Keys: []string{extra}})
			if tc.name != "answer names another key" { // any ARN is a valid encrypt answer
				fresh := encMaterials(nil)
				require.Error(t, kr.OnEncrypt(ctx, fresh))
				require.Nil(t, fresh.DataKey)
				require.Empty(t, fresh.EncryptedDataKeys)
			}
			for _, dec := range []keyring.Keyring{kr, newDiscovery(t, keyring.KMSDiscoveryConfig{Client: rec})} {
				dm := decMaterials(nil)
				require.ErrorIs(t, dec.OnDecrypt(ctx, dm, em.EncryptedDataKeys), keyring.ErrUnwrapFailed)
				require.Nil(t, dm.DataKey)
			}
		})
	}
}

// One KMS keyring serves concurrent messages over one client (run with
// -race).
func TestKMSConcurrentUse(t *testing.T) {
	ctx := context.Background()
	e := newKMSEnv(t, kmsmock.Config{})
	gen, extra := e.key(""), e.key("")
	svc := e.client("svc")
	kr := newKMS(t, keyring.KMSConfig{Client: svc, Generator: gen, Keys: []string{extra}})
	disc := newDiscovery(t, keyring.KMSDiscoveryConfig{Client: svc})
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			em := encMaterials(phiContext)
			if err := kr.OnEncrypt(ctx, em); err != nil {
				errs <- err
				return
			}
			for _, dec := range []keyring.Keyring{kr, disc} {
				dm := decMaterials(phiContext)
				if err := dec.OnDecrypt(ctx, dm, em.EncryptedDataKeys); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(em.DataKey, dm.DataKey) {
					errs <- errors.New("data keys differ")
					return
				}
			}
			errs <- nil
		}()
	}
	for range n {
		require.NoError(t, <-errs)
	}
	require.EqualValues(t, n, e.calls("GenerateDataKey"))
	require.EqualValues(t, n, e.calls("Encrypt"))
	require.EqualValues(t, 2*n, e.calls("Decrypt"))
}
