package kmsmock_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/stretchr/testify/require"
)

// BenchmarkGenerateDataKeyDecrypt is the envelope-encryption round trip a
// phicrypt keyring makes: GenerateDataKey (AES_256, with an encryption
// context) then Decrypt of the wrapped key, through the aws-sdk-go-v2 client
// over loopback HTTP. Allocations are counted for the whole process, so they
// include the server's share.
func BenchmarkGenerateDataKeyDecrypt(b *testing.B) {
	l := kmsmock.StartTest(b, kmsmock.Config{})
	client := l.Client("bench")
	ctx := context.Background()
	created, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(b, err)
	keyID := created.KeyMetadata.KeyId
	ec := map[string]string{"purpose": "phi", "tenant": "bench"}
	calls := func() int64 { return l.Calls("GenerateDataKey") + l.Calls("Decrypt") }
	before := calls()

	b.ReportAllocs()
	for b.Loop() {
		gdk, err := client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
			KeyId: keyID, KeySpec: types.DataKeySpecAes256, EncryptionContext: ec,
		})
		if err != nil {
			b.Fatal(err)
		}
		dec, err := client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: gdk.CiphertextBlob, EncryptionContext: ec})
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(dec.Plaintext, gdk.Plaintext) {
			b.Fatal("Decrypt returned another data key")
		}
	}
	// Requests the server saw per iteration: 2 unless the SDK retried.
	b.ReportMetric(float64(calls()-before)/float64(b.N), "roundtrips/op")
}

// BenchmarkServeHTTPEncrypt is the server's own cost for a 32-byte Encrypt
// with an encryption context: ServeHTTP called directly, without a socket or
// the SDK. Compare with BenchmarkGenerateDataKeyDecrypt to see what HTTP and
// the SDK add.
func BenchmarkServeHTTPEncrypt(b *testing.B) {
	s, err := kmsmock.New(kmsmock.Config{TrailCapacity: 1024})
	require.NoError(b, err)
	const auth = "AWS4-HMAC-SHA256 Credential=bench/20261122/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=abcd"
	serve := func(op string, body []byte) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/x-amz-json-1.1")
		r.Header.Set("X-Amz-Target", "TrentService."+op)
		r.Header.Set("Authorization", auth)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("%s: %d %s", op, w.Code, w.Body.Bytes())
		}
		return w
	}
	var created struct{ KeyMetadata struct{ KeyId string } }
	require.NoError(b, json.Unmarshal(serve("CreateKey", []byte(`{}`)).Body.Bytes(), &created))
	body, err := json.Marshal(map[string]any{
		"KeyId":             created.KeyMetadata.KeyId,
		"Plaintext":         base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 32)),
		"EncryptionContext": map[string]string{"purpose": "phi", "tenant": "bench"},
	})
	require.NoError(b, err)

	b.SetBytes(32)
	b.ReportAllocs()
	for b.Loop() {
		serve("Encrypt", body)
	}
}
