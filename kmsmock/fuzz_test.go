package kmsmock

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The fuzz server's keys have fixed ids and fixed backing material, so a
// ciphertext blob made for the seed corpus (in the fuzzing coordinator) opens
// in every worker process, and a crash reproduces exactly.
const (
	fzKeyID      = "0b5e7a11-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
	fzOtherKeyID = "5ca1ab1e-0000-4000-8000-00000000beef"
	fzPendingID  = "dead0000-0000-4000-8000-00000000dead"
	fzAlias      = "alias/fuzz"
	fzAuth       = "AWS4-HMAC-SHA256 Credential=fuzzer/20261122/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=abcd"
)

var fzEpoch = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// fzMaterial returns backing key i of the fuzz keys.
func fzMaterial(i byte) []byte { return bytes.Repeat([]byte{0x40 + i}, 32) }

// fzAuthAs is fzAuth signing as another access key id.
func fzAuthAs(principal string) string {
	return strings.Replace(fzAuth, "fuzzer/", principal+"/", 1)
}

// newFuzzServer returns a server holding three keys: fzKeyID (enabled,
// default policy, rotated twice, alias/fuzz), fzOtherKeyID (disabled, a policy
// that lets only "fuzzer" use it and only with a purpose in the context) and
// fzPendingID (pending deletion). Its clock stands still.
func newFuzzServer(tb testing.TB, logger *slog.Logger) *Server {
	tb.Helper()
	s, err := New(Config{TrailCapacity: 64, Now: func() time.Time { return fzEpoch }, Logger: logger})
	require.NoError(tb, err)
	add := func(id, doc, state string, backing int) *key {
		p, err := parsePolicy(doc)
		require.NoError(tb, err)
		k := &key{ID: id, Description: "fuzz key", Created: fzEpoch.Add(-48 * time.Hour), State: state, Policy: doc, policy: p}
		for i := range backing {
			k.Backing = append(k.Backing, fzMaterial(byte(i)))
		}
		s.keys[id] = k
		return k
	}
	k := add(fzKeyID, defaultPolicy(s.account), stateEnabled, 3)
	k.Rotations = []rotation{{fzEpoch.Add(-24 * time.Hour), "ON_DEMAND"}, {fzEpoch.Add(-12 * time.Hour), "ON_DEMAND"}}
	add(fzOtherKeyID, ptDoc(
		`{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::`+s.account+`:user/fuzzer"},"Action":"kms:*","Resource":"*"}`,
		`{"Effect":"Deny","Principal":"*","Action":["kms:Encrypt","kms:Decrypt","kms:GenerateDataKey*","kms:ReEncrypt*"],"Resource":"*",
			"Condition":{"Null":{"kms:EncryptionContext:purpose":"true"}}}`), stateDisabled, 1)
	pending := add(fzPendingID, defaultPolicy(s.account), statePendingDeletion, 1)
	pending.DeletionDate, pending.PendingWindowDays = fzEpoch.Add(7*24*time.Hour), 7
	s.aliases[fzAlias] = &alias{Name: fzAlias, KeyID: fzKeyID, Created: fzEpoch, Updated: fzEpoch}
	return s
}

// fzSortedOps is Operations in a fixed order, so a fuzz input names the same
// operation in every run.
func fzSortedOps() []string {
	ops := Operations()
	slices.Sort(ops)
	return ops
}

// serveKMS sends one request straight to ServeHTTP. An empty auth sends no
// Authorization header.
func serveKMS(s *Server, target, auth string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if target != "" {
		r.Header.Set("X-Amz-Target", target)
	}
	r.Header.Set("X-Amz-Date", "20261122T120000Z")
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

type kmsErrorBody struct {
	Type    string `json:"__type"`
	Message string `json:"message"`
}

// checkResponseShape is the protocol invariant: 200 with a JSON object, or
// 400/500 with a JSON error naming its exception.
func checkResponseShape(t *testing.T, op string, w *httptest.ResponseRecorder) {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		t.Errorf("%s: Content-Type %q", op, ct)
	}
	body := w.Body.Bytes()
	if w.Code == http.StatusOK {
		var obj map[string]any
		if err := json.Unmarshal(body, &obj); err != nil {
			t.Fatalf("%s: 200 with a body that is not a JSON object: %v\n%.500s", op, err, body)
		}
		return
	}
	if w.Code != http.StatusBadRequest && w.Code != http.StatusInternalServerError {
		t.Fatalf("%s: status %d, want 200, 400 or 500\n%.500s", op, w.Code, body)
	}
	var e kmsErrorBody
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("%s: status %d with a body that is not JSON: %v\n%.500s", op, w.Code, err, body)
	}
	if e.Type == "" || e.Message == "" || !strings.HasSuffix(e.Type, "Exception") {
		t.Fatalf("%s: status %d with a malformed error %+v", op, w.Code, e)
	}
	if (w.Code == http.StatusInternalServerError) != (e.Type == codeInternal) {
		t.Fatalf("%s: status %d with %s", op, w.Code, e.Type)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// fzSeeds returns a valid body for every operation (some several), naming the
// fuzz server's keys, alias and blobs.
func fzSeeds() map[string][]string {
	ctx := map[string]string{"purpose": "phi", "tenant": "a"}
	blob0 := sealBlob(fzMaterial(0), blobHeader{keyID: fzKeyID, backing: 0}, []byte("patient record 17"), ctx)
	blob2 := sealBlob(fzMaterial(2), blobHeader{keyID: fzKeyID, backing: 2}, bytes.Repeat([]byte{7}, 32), nil)
	blobOther := sealBlob(fzMaterial(0), blobHeader{keyID: fzOtherKeyID, backing: 0}, []byte("x"), map[string]string{"purpose": "p"})
	arn := "arn:aws:kms:us-east-1:" + DefaultAccount + ":key/" + fzKeyID
	id := `"KeyId":"` + fzKeyID + `"`
	ctxJSON := `"EncryptionContext":{"purpose":"phi","tenant":"a"}`
	return map[string][]string{
		"CreateKey": {``, `{}`, `{"Description":"fuzz","KeyUsage":"ENCRYPT_DECRYPT","KeySpec":"SYMMETRIC_DEFAULT","Tags":[{"TagKey":"a","TagValue":"b"}]}`,
			`{"Policy":` + strconv.Quote(defaultPolicy(DefaultAccount)) + `,"BypassPolicyLockoutSafetyCheck":true}`},
		"DescribeKey":                     {`{` + id + `}`, `{"KeyId":"` + fzAlias + `"}`, `{"KeyId":"` + arn + `"}`},
		"ListKeys":                        {`{}`, `{"Limit":1}`, `{"Limit":1,"Marker":"` + fzOtherKeyID + `"}`},
		"CreateAlias":                     {`{"AliasName":"alias/new","TargetKeyId":"` + fzKeyID + `"}`},
		"UpdateAlias":                     {`{"AliasName":"` + fzAlias + `","TargetKeyId":"` + fzOtherKeyID + `"}`},
		"DeleteAlias":                     {`{"AliasName":"` + fzAlias + `"}`},
		"ListAliases":                     {`{}`, `{` + id + `,"Limit":10}`},
		"Encrypt":                         {`{"KeyId":"` + fzAlias + `","Plaintext":"` + b64([]byte("hello")) + `",` + ctxJSON + `}`, `{"KeyId":"` + fzOtherKeyID + `","Plaintext":"AA=="}`},
		"Decrypt":                         {`{"CiphertextBlob":"` + b64(blob0) + `",` + ctxJSON + `}`, `{"CiphertextBlob":"` + b64(blob2) + `",` + id + `,"EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}`, `{"CiphertextBlob":"` + b64(blobOther) + `","EncryptionContext":{"purpose":"p"}}`},
		"ReEncrypt":                       {`{"CiphertextBlob":"` + b64(blob0) + `","SourceEncryptionContext":{"purpose":"phi","tenant":"a"},"DestinationKeyId":"` + fzAlias + `","DestinationEncryptionContext":{"b":"c"}}`},
		"GenerateDataKey":                 {`{` + id + `,"KeySpec":"AES_256",` + ctxJSON + `}`, `{` + id + `,"NumberOfBytes":64,"GrantTokens":["t"]}`},
		"GenerateDataKeyWithoutPlaintext": {`{"KeyId":"` + arn + `","KeySpec":"AES_128"}`},
		"GenerateRandom":                  {`{"NumberOfBytes":32}`},
		"EnableKey":                       {`{"KeyId":"` + fzOtherKeyID + `"}`},
		"DisableKey":                      {`{` + id + `}`},
		"ScheduleKeyDeletion":             {`{` + id + `,"PendingWindowInDays":7}`},
		"CancelKeyDeletion":               {`{"KeyId":"` + fzPendingID + `"}`, `{` + id + `}`},
		"EnableKeyRotation":               {`{` + id + `,"RotationPeriodInDays":90}`},
		"DisableKeyRotation":              {`{` + id + `}`},
		"GetKeyRotationStatus":            {`{` + id + `}`},
		"RotateKeyOnDemand":               {`{` + id + `}`},
		"ListKeyRotations":                {`{` + id + `,"Limit":1}`, `{` + id + `,"Marker":"` + fzEpoch.Add(-12*time.Hour).Format(time.RFC3339Nano) + `"}`},
		"GetKeyPolicy":                    {`{` + id + `,"PolicyName":"default"}`},
		"PutKeyPolicy":                    {`{` + id + `,"Policy":` + strconv.Quote(defaultPolicy(DefaultAccount)) + `}`},
	}
}

// FuzzRequest feeds arbitrary bodies to every operation. Each input gets a
// fresh server, so inputs are independent and state cannot grow without
// bound.
func FuzzRequest(f *testing.F) {
	ops := fzSortedOps()
	seeds := fzSeeds()
	for i, op := range ops {
		bodies, ok := seeds[op]
		if !ok {
			f.Fatalf("no seed body for operation %s", op)
		}
		for _, body := range bodies {
			f.Add(uint8(i), []byte(body))
		}
	}
	f.Add(uint8(0), []byte(`{"KeyId":5}`))
	f.Add(uint8(0), []byte(`{"Plaintext":"not base64!"}`))
	f.Fuzz(func(t *testing.T, opIndex uint8, body []byte) {
		s := newFuzzServer(t, nil)
		op := ops[int(opIndex)%len(ops)]
		w := serveKMS(s, targetPrefix+op, fzAuth, body)
		checkResponseShape(t, op, w)
		if n := len(s.Trail()); n != 1 {
			t.Fatalf("%s: %d trail events, want 1", op, n)
		}
		if w.Code == http.StatusOK {
			// A success must not have broken the state a later request
			// relies on.
			for _, next := range []string{"ListKeys", "ListAliases"} {
				checkResponseShape(t, next, serveKMS(s, targetPrefix+next, fzAuth, nil))
			}
		}
	})
}

// TestFuzzSeeds checks that the first seed body of every operation succeeds,
// so the fuzzer starts from inputs that reach each operation's real work.
func TestFuzzSeeds(t *testing.T) {
	for op, bodies := range fzSeeds() {
		w := serveKMS(newFuzzServer(t, nil), targetPrefix+op, fzAuth, []byte(bodies[0]))
		checkResponseShape(t, op, w)
		if w.Code != http.StatusOK {
			t.Errorf("%s seed: %d %s", op, w.Code, w.Body.Bytes())
		}
	}
}

// FuzzPolicy checks that no document makes parsePolicy or allows panic.
func FuzzPolicy(f *testing.F) {
	for _, doc := range []string{
		defaultPolicy(DefaultAccount),
		ptDoc(ptAllowAll),
		`{"Statement":` + ptAllowAll + `}`,
		ptDoc(ptAllowAll, `{"Effect":"Deny","Principal":{"AWS":["`+ptBob+`","`+ptAccount+`"]},"NotAction":"kms:Describe*","Resource":"arn:aws:kms:*"}`),
		ptDoc(ptCond(`{"StringEquals":{"kms:EncryptionContext:purpose":"phi"},"StringLikeIfExists":{"aws:PrincipalArn":"*alice"}}`)),
		ptDoc(ptCond(`{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["purpose","tenant"]},"Null":{"kms:EncryptionContextKeys":false}}`)),
		ptDoc(ptCond(`{"ForAnyValue:StringNotLike":{"kms:EncryptionContextKeys":"a?*"},"Bool":{"kms:EncryptionContext:flag":true}}`)),
		ptDoc(ptCond(`{"StringEquals":{"kms:CallerAccount":"111122223333","aws:username":"alice"}}`)),
		`{"Statement":[{"Effect":"Allow","Principal":null,"Action":null,"Resource":null}]}`,
		`{`, `[]`, `null`, ``,
	} {
		f.Add(doc, "purpose", "phi")
	}
	f.Fuzz(func(t *testing.T, doc, ctxKey, ctxValue string) {
		p, err := parsePolicy(doc)
		if err != nil {
			if p != nil {
				t.Fatal("parsePolicy returned a policy with its error")
			}
			if err.Error() == "" {
				t.Fatal("empty error text")
			}
			return
		}
		if len(p.statements) == 0 {
			t.Fatal("a policy without statements was accepted")
		}
		facts := []requestFacts{
			ptFacts(),
			ptFacts(withContext(ctxKey, ctxValue)),
			ptFacts(withContext(ctxKey, ctxValue, "tenant", ctxValue), asAction("kms:GenerateDataKey")),
			ptFacts(asPrincipal(ptMallory, ptOther), asAction(ctxKey), onResource(ctxValue)),
			{principal: ctxValue, account: ctxKey, action: ctxKey, resource: ctxValue, context: map[string]string{ctxValue: ctxKey}},
			{},
		}
		for i := range facts {
			p.allows(&facts[i])
		}
	})
}

// FuzzParseSigV4 checks the Authorization parser and authenticate on
// arbitrary headers: no panic, and a principal only for a well-formed header
// scoped to the server's region and kms.
func FuzzParseSigV4(f *testing.F) {
	for _, h := range []string{
		fzAuth,
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/kms/aws4_request,SignedHeaders=host;x-amz-date;x-amz-target,Signature=0123abcd",
		"AWS4-HMAC-SHA256 Credential=a/b/us-west-2/kms/aws4_request, SignedHeaders=host, Signature=x",
		"AWS4-HMAC-SHA256 Credential=a/b/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x",
		"AWS4-HMAC-SHA256 Credential=bad key!/b/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=x",
		"AWS4-HMAC-SHA256 Credential=//////, SignedHeaders=, Signature=",
		"AWS4-HMAC-SHA256 ",
		"AWS4-HMAC-SHA256 Credential",
		"Basic dXNlcjpwYXNz",
		"",
	} {
		f.Add(h)
	}
	open := newFuzzServer(f, nil)
	checked, err := New(Config{Credentials: map[string]string{"fuzzer": "secret", "AKIDEXAMPLE": "secret"}})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, header string) {
		v, ok := parseSigV4(header)
		if ok && (v.accessKey == "" || v.signature == "" || len(v.signedHeaders) == 0) {
			t.Fatalf("parseSigV4(%q) accepted a header missing a part: %+v", header, v)
		}
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
		r.Header.Set("Authorization", header)
		principal, aerr := open.authenticate(r)
		if aerr == nil {
			if !ok || v.service != "kms" || v.region != open.region || !validAccessKey(v.accessKey) {
				t.Fatalf("authenticate accepted %q", header)
			}
			if want := "arn:aws:iam::" + open.account + ":user/" + v.accessKey; principal != want {
				t.Fatalf("principal %q, want %q", principal, want)
			}
		} else if aerr.status != http.StatusBadRequest || aerr.code == "" {
			t.Fatalf("authenticate: %+v", aerr)
		}
		// Without a valid signature a server with credentials refuses
		// every header the fuzzer can make up.
		r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
		r.Header.Set("Authorization", header)
		r.Header.Set("X-Amz-Date", "20261122T120000Z")
		if _, aerr := checked.authenticate(r); aerr == nil {
			t.Fatalf("a server with credentials accepted %q", header)
		}
	})
}

// FuzzBlobHeader checks parseBlobHeader on arbitrary bytes, and that a sealed
// blob opens only unchanged, under its own context.
func FuzzBlobHeader(f *testing.F) {
	valid := sealBlob(fzMaterial(0), blobHeader{keyID: fzKeyID, backing: 0}, []byte("phi"), map[string]string{"purpose": "phi"})
	f.Add(valid, []byte("phi"), "purpose", "phi", uint16(0), byte(1), uint32(0))
	f.Add(valid[:blobMinLen], []byte{}, "", "", uint16(40), byte(0x80), uint32(7))
	f.Add([]byte{blobVersion}, bytes.Repeat([]byte{0xff}, 4096), "ab", "c", uint16(60), byte(0), uint32(1<<31))
	f.Add(append([]byte{blobVersion}, []byte(fzKeyID+"\x00\x00\x00\x01")...), []byte("x"), "k", "", uint16(1), byte(0xff), uint32(2))
	f.Fuzz(func(t *testing.T, blob, plaintext []byte, ctxKey, ctxValue string, pos uint16, flip byte, backing uint32) {
		material := fzMaterial(byte(backing % 3))
		if h, ok := parseBlobHeader(blob); ok {
			if len(blob) < blobMinLen || !isUUID([]byte(h.keyID)) || h.keyID != string(blob[1:1+blobIDLen]) {
				t.Fatalf("parseBlobHeader accepted %x as %+v", blob, h)
			}
			openBlob(material, blob, nil) // must not panic
		}

		var ctx map[string]string
		if ctxKey != "" {
			ctx = map[string]string{ctxKey: ctxValue}
		}
		h := blobHeader{keyID: fzKeyID, backing: backing}
		sealed := sealBlob(material, h, plaintext, ctx)
		if got, ok := parseBlobHeader(sealed); !ok || got != h {
			t.Fatalf("parseBlobHeader(sealed) = %+v, %v; want %+v", got, ok, h)
		}
		if len(sealed) != blobPrefixLen+len(plaintext)+16 {
			t.Fatalf("sealed %d bytes into %d", len(plaintext), len(sealed))
		}
		pt, ok := openBlob(material, sealed, ctx)
		if !ok || !bytes.Equal(pt, plaintext) {
			t.Fatalf("round trip failed: ok=%v", ok)
		}

		// Any single-byte change is refused (at the header or by GCM).
		if flip == 0 {
			flip = 1
		}
		changed := bytes.Clone(sealed)
		changed[int(pos)%len(changed)] ^= flip
		if _, ok := parseBlobHeader(changed); ok {
			if _, ok := openBlob(material, changed, ctx); ok {
				t.Fatalf("a blob with byte %d changed opened", int(pos)%len(changed))
			}
		}
		// So are a truncated or extended blob, another key's material and
		// any other context.
		if _, ok := openBlob(material, sealed[:len(sealed)-1], ctx); ok {
			t.Fatal("a truncated blob opened")
		}
		if _, ok := openBlob(material, append(bytes.Clone(sealed), 0), ctx); ok {
			t.Fatal("an extended blob opened")
		}
		if _, ok := openBlob(fzMaterial(byte(backing%3)+1), sealed, ctx); ok {
			t.Fatal("a blob opened under other material")
		}
		others := []map[string]string{nil, {ctxKey: ctxValue + "x"}, {ctxKey + "x": ctxValue}, {ctxKey: ctxValue, "z": ""}}
		if len(ctxKey) > 1 {
			// Moving the boundary between key and value must change the AAD.
			others = append(others, map[string]string{ctxKey[:len(ctxKey)-1]: ctxKey[len(ctxKey)-1:] + ctxValue})
		}
		for _, other := range others {
			if maps.Equal(other, ctx) {
				continue // the same context (nil and empty are the same AAD)
			}
			if _, ok := openBlob(material, sealed, other); ok {
				t.Fatalf("a blob sealed under %q opened under %q", ctx, other)
			}
		}
	})
}

// TestMalformedRequests checks the error shapes that do not depend on the
// SDK: every one is a JSON body with "__type" and "message".
func TestMalformedRequests(t *testing.T) {
	s := newFuzzServer(t, nil)
	big := func(n int) string { return b64(bytes.Repeat([]byte{'p'}, n)) }
	tokens := func(n int) string {
		return `["` + strings.TrimSuffix(strings.Repeat(`t","`, n), `","`) + `"]`
	}
	bigContext := func(n int) string { // n bytes of keys and values together
		return `{"k":"` + strings.Repeat("v", n-1) + `"}`
	}
	id := `"KeyId":"` + fzKeyID + `"`
	cases := []struct {
		name, target, auth, body string
		status                   int
		code                     string
	}{
		// Transport: operation and authentication.
		{"unknown operation", "TrentService.Frobnicate", fzAuth, `{}`, 400, codeUnknownOperation},
		{"no target", "", fzAuth, `{}`, 400, codeUnknownOperation},
		{"wrong target prefix", "KMS.Encrypt", fzAuth, `{}`, 400, codeUnknownOperation},
		{"target prefix only", "TrentService.", fzAuth, `{}`, 400, codeUnknownOperation},
		{"operation name in the wrong case", "TrentService.encrypt", fzAuth, `{}`, 400, codeUnknownOperation},
		{"missing Authorization", "TrentService.ListKeys", "", `{}`, 400, codeMissingAuth},
		{"malformed Authorization", "TrentService.ListKeys", "AWS4-HMAC-SHA256 garbage", `{}`, 400, codeIncompleteSig},
		{"other signature scheme", "TrentService.ListKeys", "Basic dXNlcjpwYXNz", `{}`, 400, codeIncompleteSig},
		{"wrong region", "TrentService.ListKeys", strings.Replace(fzAuth, "us-east-1", "eu-west-1", 1), `{}`, 400, codeInvalidSignature},
		{"wrong service", "TrentService.ListKeys", strings.Replace(fzAuth, "/kms/", "/s3/", 1), `{}`, 400, codeInvalidSignature},
		{"bad access key id", "TrentService.ListKeys", fzAuthAs("no:colons"), `{}`, 400, codeUnrecognized},

		// Body size.
		{"body over 256 KiB", "TrentService.ListKeys", fzAuth, `{}` + strings.Repeat(" ", maxRequestBytes-1), 400, codeValidation},
		{"body of exactly 256 KiB", "TrentService.ListKeys", fzAuth, `{}` + strings.Repeat(" ", maxRequestBytes-2), 200, ""},
		{"empty body is an empty object", "TrentService.ListKeys", fzAuth, ``, 200, ""},

		// JSON that does not parse, or does not fit the operation.
		{"malformed JSON", "TrentService.Encrypt", fzAuth, `{"KeyId":`, 400, codeSerialization},
		{"trailing data", "TrentService.DescribeKey", fzAuth, `{` + id + `} {}`, 400, codeSerialization},
		{"a JSON list", "TrentService.DescribeKey", fzAuth, `[]`, 400, codeSerialization},
		{"a JSON string", "TrentService.DescribeKey", fzAuth, `"` + fzKeyID + `"`, 400, codeSerialization},
		{"KeyId is a number", "TrentService.DescribeKey", fzAuth, `{"KeyId":5}`, 400, codeSerialization},
		{"KeyId is an object", "TrentService.Encrypt", fzAuth, `{"KeyId":{},"Plaintext":"AA=="}`, 400, codeSerialization},
		{"Plaintext is not base64", "TrentService.Encrypt", fzAuth, `{` + id + `,"Plaintext":"not base64!"}`, 400, codeSerialization},
		{"Plaintext is a number", "TrentService.Encrypt", fzAuth, `{` + id + `,"Plaintext":5}`, 400, codeSerialization},
		{"context value is a number", "TrentService.Encrypt", fzAuth, `{` + id + `,"Plaintext":"AA==","EncryptionContext":{"a":1}}`, 400, codeSerialization},
		{"context is a list", "TrentService.Encrypt", fzAuth, `{` + id + `,"Plaintext":"AA==","EncryptionContext":["a"]}`, 400, codeSerialization},
		{"GrantTokens is a string", "TrentService.Encrypt", fzAuth, `{` + id + `,"Plaintext":"AA==","GrantTokens":"t"}`, 400, codeSerialization},
		{"NumberOfBytes is a string", "TrentService.GenerateRandom", fzAuth, `{"NumberOfBytes":"32"}`, 400, codeSerialization},
		{"NumberOfBytes is a fraction", "TrentService.GenerateRandom", fzAuth, `{"NumberOfBytes":1.5}`, 400, codeSerialization},
		{"NumberOfBytes overflows", "TrentService.GenerateRandom", fzAuth, `{"NumberOfBytes":1e30}`, 400, codeSerialization},
		{"Limit is a string", "TrentService.ListKeys", fzAuth, `{"Limit":"10"}`, 400, codeSerialization},
		{"bool field is a string", "TrentService.CreateKey", fzAuth, `{"MultiRegion":"false"}`, 400, codeSerialization},
		{"CiphertextBlob is not base64", "TrentService.Decrypt", fzAuth, `{"CiphertextBlob":"%%%"}`, 400, codeSerialization},

		// Sizes and ranges.
		{"Plaintext of 4097 bytes", "TrentService.Encrypt", fzAuth, `{` + id + `,"Plaintext":"` + big(4097) + `"}`, 400, codeValidation},
		{"Plaintext of 4096 bytes", "TrentService.Encrypt", fzAuth, `{` + id + `,"Plaintext":"` + big(4096) + `"}`, 200, ""},
		{"empty Plaintext", "TrentService.Encrypt", fzAuth, `{` + id + `,"Plaintext":""}`, 400, codeValidation},
		{"context of 8193 bytes", "TrentService.Encrypt", fzAuth, `{` + id + `,"Plaintext":"AA==","EncryptionContext":` + bigContext(8193) + `}`, 400, codeValidation},
		{"context of 8192 bytes", "TrentService.Encrypt", fzAuth, `{` + id + `,"Plaintext":"AA==","EncryptionContext":` + bigContext(8192) + `}`, 200, ""},
		{"context with an empty key", "TrentService.Encrypt", fzAuth, `{` + id + `,"Plaintext":"AA==","EncryptionContext":{"":"v"}}`, 400, codeValidation},
		{"context of 8193 bytes on Decrypt", "TrentService.Decrypt", fzAuth, `{"CiphertextBlob":"AA==","EncryptionContext":` + bigContext(8193) + `}`, 400, codeValidation},
		{"context of 8193 bytes on GenerateDataKey", "TrentService.GenerateDataKey", fzAuth, `{` + id + `,"KeySpec":"AES_256","EncryptionContext":` + bigContext(8193) + `}`, 400, codeValidation},
		{"destination context of 8193 bytes", "TrentService.ReEncrypt", fzAuth, `{"CiphertextBlob":"AA==","DestinationKeyId":"x","DestinationEncryptionContext":` + bigContext(8193) + `}`, 400, codeValidation},
		{"11 grant tokens", "TrentService.Encrypt", fzAuth, `{` + id + `,"Plaintext":"AA==","GrantTokens":` + tokens(11) + `}`, 400, codeValidation},
		{"10 grant tokens", "TrentService.Encrypt", fzAuth, `{` + id + `,"Plaintext":"AA==","GrantTokens":` + tokens(10) + `}`, 200, ""},
		{"11 grant tokens on Decrypt", "TrentService.Decrypt", fzAuth, `{"CiphertextBlob":"AA==","GrantTokens":` + tokens(11) + `}`, 400, codeValidation},
		{"11 grant tokens on GenerateDataKey", "TrentService.GenerateDataKey", fzAuth, `{` + id + `,"KeySpec":"AES_256","GrantTokens":` + tokens(11) + `}`, 400, codeValidation},
		{"empty grant token", "TrentService.Encrypt", fzAuth, `{` + id + `,"Plaintext":"AA==","GrantTokens":[""]}`, 400, codeValidation},
		{"Description of 8193 bytes", "TrentService.CreateKey", fzAuth, `{"Description":"` + strings.Repeat("d", 8193) + `"}`, 400, codeValidation},
		{"Description of 8192 bytes", "TrentService.CreateKey", fzAuth, `{"Description":"` + strings.Repeat("d", 8192) + `"}`, 200, ""},
		{"ListKeys Limit 0", "TrentService.ListKeys", fzAuth, `{"Limit":0}`, 400, codeValidation},
		{"ListKeys Limit 1001", "TrentService.ListKeys", fzAuth, `{"Limit":1001}`, 400, codeValidation},
		{"ListKeys Limit -1", "TrentService.ListKeys", fzAuth, `{"Limit":-1}`, 400, codeValidation},
		{"ListKeys Limit 1000", "TrentService.ListKeys", fzAuth, `{"Limit":1000}`, 200, ""},
		{"ListAliases Limit 101", "TrentService.ListAliases", fzAuth, `{"Limit":101}`, 400, codeValidation},
		{"ListKeyRotations Limit 1001", "TrentService.ListKeyRotations", fzAuth, `{` + id + `,"Limit":1001}`, 400, codeValidation},
		{"GenerateRandom of 0 bytes", "TrentService.GenerateRandom", fzAuth, `{"NumberOfBytes":0}`, 400, codeValidation},
		{"GenerateRandom of 1025 bytes", "TrentService.GenerateRandom", fzAuth, `{"NumberOfBytes":1025}`, 400, codeValidation},
		{"GenerateRandom without a size", "TrentService.GenerateRandom", fzAuth, `{}`, 400, codeValidation},
		{"GenerateDataKey of 1025 bytes", "TrentService.GenerateDataKey", fzAuth, `{` + id + `,"NumberOfBytes":1025}`, 400, codeValidation},
		{"GenerateDataKey with KeySpec and NumberOfBytes", "TrentService.GenerateDataKey", fzAuth, `{` + id + `,"NumberOfBytes":32,"KeySpec":"AES_256"}`, 400, codeValidation},
		{"GenerateDataKey with neither", "TrentService.GenerateDataKey", fzAuth, `{` + id + `}`, 400, codeValidation},
		{"CiphertextBlob over 6144 bytes", "TrentService.Decrypt", fzAuth, `{"CiphertextBlob":"` + big(6145) + `"}`, 400, codeValidation},
		{"no CiphertextBlob", "TrentService.Decrypt", fzAuth, `{}`, 400, codeValidation},
		{"KeyId over 2048 characters", "TrentService.DescribeKey", fzAuth, `{"KeyId":"` + strings.Repeat("k", 2049) + `"}`, 400, codeValidation},
		{"no KeyId", "TrentService.DescribeKey", fzAuth, `{}`, 400, codeValidation},
		{"PendingWindowInDays 6", "TrentService.ScheduleKeyDeletion", fzAuth, `{` + id + `,"PendingWindowInDays":6}`, 400, codeValidation},
		{"RotationPeriodInDays 2561", "TrentService.EnableKeyRotation", fzAuth, `{` + id + `,"RotationPeriodInDays":2561}`, 400, codeValidation},
		{"unknown EncryptionAlgorithm", "TrentService.Encrypt", fzAuth, `{` + id + `,"Plaintext":"AA==","EncryptionAlgorithm":"AES_GCM"}`, 400, codeValidation},
		{"PutKeyPolicy without a policy", "TrentService.PutKeyPolicy", fzAuth, `{` + id + `}`, 400, codeValidation},
		{"policy that is not JSON", "TrentService.PutKeyPolicy", fzAuth, `{` + id + `,"Policy":"{"}`, 400, codeMalformedPolicy},
		{"policy over 32 KiB", "TrentService.CreateKey", fzAuth, `{"Policy":` + strconv.Quote(ptDoc(ptAllowAll)+strings.Repeat(" ", maxPolicyBytes)) + `}`, 400, codeMalformedPolicy},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := serveKMS(s, tc.target, tc.auth, []byte(tc.body))
			checkResponseShape(t, tc.name, w)
			require.Equal(t, tc.status, w.Code, "%.300s", w.Body.Bytes())
			if tc.code == "" {
				return
			}
			var e kmsErrorBody
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e))
			require.Equal(t, tc.code, e.Type, "message %q", e.Message)
		})
	}

	t.Run("GET is not an operation", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("X-Amz-Target", "TrentService.ListKeys")
		r.Header.Set("Authorization", fzAuth)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		checkResponseShape(t, "GET", w)
		var e kmsErrorBody
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e))
		require.Equal(t, http.StatusBadRequest, w.Code)
		require.Equal(t, codeUnknownOperation, e.Type)
	})
}

// TestMalformedRequestsCanary pushes an encryption-context value and a
// plaintext holding a canary through every error path it can reach, and
// checks that neither appears in an error body, the trail or the log.
func TestMalformedRequestsCanary(t *testing.T) {
	const canary = "CANARY-PHI-1234"
	var logBuf bytes.Buffer
	s := newFuzzServer(t, slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})))

	plaintext := []byte("record " + canary + " end")
	ctx := map[string]string{"purpose": canary}
	ctxJSON, _ := json.Marshal(ctx)
	wrongCtx := `{"purpose":"` + canary + `-wrong"}`
	pt := `"Plaintext":"` + b64(plaintext) + `"`
	ec := `"EncryptionContext":` + string(ctxJSON)
	id := `"KeyId":"` + fzKeyID + `"`

	// A good blob to decrypt under the wrong context and to tamper with.
	w := serveKMS(s, targetPrefix+"Encrypt", fzAuth, []byte(`{`+id+`,`+pt+`,`+ec+`}`))
	require.Equal(t, http.StatusOK, w.Code, "Encrypt: %s", w.Body.Bytes())
	var enc struct{ CiphertextBlob []byte }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &enc))
	tampered := bytes.Clone(enc.CiphertextBlob)
	tampered[len(tampered)-1] ^= 1
	blob := `"CiphertextBlob":"` + b64(enc.CiphertextBlob) + `"`

	requests := []struct {
		op, auth, body, code string
	}{
		{"Encrypt", fzAuth, `{"KeyId":"alias/missing",` + pt + `,` + ec + `}`, codeNotFound},
		{"Encrypt", fzAuth, `{"KeyId":"` + fzOtherKeyID + `",` + pt + `,` + ec + `}`, codeDisabled},
		{"Encrypt", fzAuthAs("intruder"), `{"KeyId":"` + fzOtherKeyID + `",` + pt + `,` + ec + `}`, codeAccessDenied},
		{"Encrypt", fzAuth, `{` + id + `,"Plaintext":"` + b64(bytes.Repeat(plaintext, 4096/len(plaintext)+1)) + `",` + ec + `}`, codeValidation},
		{"Encrypt", fzAuth, `{` + id + `,` + pt + `,"EncryptionContext":{"purpose":"` + strings.Repeat(canary, 8192/len(canary)+1) + `"}}`, codeValidation},
		{"Encrypt", fzAuth, `{` + id + `,` + pt + `,"EncryptionContext":{"":"` + canary + `"}}`, codeValidation},
		{"Encrypt", fzAuth, `{` + id + `,` + pt + `,` + ec + `,"EncryptionAlgorithm":"` + canary + `"}`, codeValidation},
		{"Encrypt", fzAuth, `{` + id + `,` + pt + `,` + ec + `,"GrantTokens":["` + strings.Repeat(canary, 600) + `"]}`, codeValidation},
		{"Encrypt", fzAuth, `{` + id + `,"Plaintext":"` + canary + `",` + ec + `}`, codeSerialization},
		{"Encrypt", fzAuth, `{` + id + `,` + pt + `,"EncryptionContext":{"purpose":"` + canary + `","n":5}}`, codeSerialization},
		{"Encrypt", fzAuth, `{` + id + `,` + pt + `,` + ec, codeSerialization},
		{"Encrypt", fzAuth, `{` + id + `,` + pt + `,` + ec + `}` + strings.Repeat(" ", maxRequestBytes), codeValidation},
		{"Encrypt", "", `{` + id + `,` + pt + `,` + ec + `}`, codeMissingAuth},
		{"Decrypt", fzAuth, `{` + blob + `,"EncryptionContext":` + wrongCtx + `}`, codeInvalidCiphertext},
		{"Decrypt", fzAuth, `{` + blob + `}`, codeInvalidCiphertext},
		{"Decrypt", fzAuth, `{"CiphertextBlob":"` + b64(tampered) + `",` + ec + `}`, codeInvalidCiphertext},
		{"Decrypt", fzAuth, `{"CiphertextBlob":"` + b64(plaintext) + `",` + ec + `}`, codeInvalidCiphertext},
		{"Decrypt", fzAuth, `{` + blob + `,` + ec + `,"KeyId":"` + fzOtherKeyID + `"}`, codeIncorrectKey},
		{"Decrypt", fzAuthAs("intruder"), `{"CiphertextBlob":"` + b64(sealBlob(fzMaterial(0), blobHeader{keyID: fzOtherKeyID}, plaintext, ctx)) + `",` + ec + `}`, codeAccessDenied},
		{"GenerateDataKey", fzAuth, `{` + id + `,"KeySpec":"` + canary + `",` + ec + `}`, codeValidation},
		{"GenerateDataKey", fzAuth, `{"KeyId":"` + fzOtherKeyID + `","KeySpec":"AES_256",` + ec + `}`, codeDisabled},
		{"GenerateDataKeyWithoutPlaintext", fzAuthAs("intruder"), `{"KeyId":"` + fzOtherKeyID + `","KeySpec":"AES_256",` + ec + `}`, codeAccessDenied},
		{"ReEncrypt", fzAuth, `{` + blob + `,"SourceEncryptionContext":` + string(ctxJSON) + `,"DestinationEncryptionContext":` + string(ctxJSON) + `}`, codeValidation},
		{"ReEncrypt", fzAuth, `{` + blob + `,"SourceEncryptionContext":` + wrongCtx + `,"DestinationKeyId":"` + fzKeyID + `"}`, codeInvalidCiphertext},
		{"ReEncrypt", fzAuth, `{` + blob + `,"SourceEncryptionContext":` + string(ctxJSON) + `,"DestinationKeyId":"` + fzOtherKeyID + `","DestinationEncryptionContext":` + string(ctxJSON) + `}`, codeDisabled},
		{"CreateKey", fzAuth, `{"Policy":"{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"` + canary + `\",\"Condition\":{\"StringEquals\":{\"kms:EncryptionContext:purpose\":\"` + canary + `\"}}}]}"}`, codeMalformedPolicy},
		{"PutKeyPolicy", fzAuth, `{` + id + `,"Policy":"{\"Statement\":{\"Effect\":\"` + canary + `\"}}"}`, codeMalformedPolicy},
	}
	for i, rq := range requests {
		w := serveKMS(s, targetPrefix+rq.op, rq.auth, []byte(rq.body))
		checkResponseShape(t, rq.op, w)
		var e kmsErrorBody
		json.Unmarshal(w.Body.Bytes(), &e)
		if e.Type != rq.code {
			t.Errorf("request %d (%s): __type %q, want %q (status %d, message %q)", i, rq.op, e.Type, rq.code, w.Code, e.Message)
		}
		assertNoCanary(t, "request "+strconv.Itoa(i)+" ("+rq.op+") error body", w.Body.Bytes(), canary, plaintext)
	}

	// A successful Decrypt returns the plaintext, but its trail entry holds
	// only a hash of the context value.
	w = serveKMS(s, targetPrefix+"Decrypt", fzAuth, []byte(`{`+blob+`,`+ec+`}`))
	require.Equal(t, http.StatusOK, w.Code, "Decrypt: %s", w.Body.Bytes())
	trail := s.Trail()
	trailJSON, err := json.Marshal(trail)
	require.NoError(t, err)
	assertNoCanary(t, "trail", trailJSON, canary, plaintext)
	assertNoCanary(t, "log", logBuf.Bytes(), canary, plaintext)
	last := trail[len(trail)-1]
	if last.Operation != "Decrypt" || last.Result != "Success" || !strings.HasPrefix(last.EncryptionContext["purpose"], "hmac-sha256:") {
		t.Errorf("last trail event %+v", last)
	}
	if first := trail[0]; first.EncryptionContext["purpose"] != last.EncryptionContext["purpose"] {
		t.Errorf("equal context values hash differently: %q, %q", first.EncryptionContext["purpose"], last.EncryptionContext["purpose"])
	}
	if logBuf.Len() == 0 {
		t.Error("the debug log is empty: the log check proved nothing")
	}
}

func assertNoCanary(t *testing.T, where string, b []byte, canary string, plaintext []byte) {
	t.Helper()
	for _, needle := range []string{canary, strings.ToLower(canary), b64(plaintext), b64([]byte(canary))[:12]} {
		if bytes.Contains(b, []byte(needle)) {
			t.Errorf("%s holds %q:\n%.500s", where, needle, b)
		}
	}
}
