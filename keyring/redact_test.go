package keyring_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/stretchr/testify/require"
)

// fingerprint is how errors and printed values name a branch key.
func fingerprint(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "branch key #" + hex.EncodeToString(sum[:4])
}

// printings returns v under a few fmt verbs, JSON and both slog handlers.
func printings(t *testing.T, v any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x"} {
		out[verb] = fmt.Sprintf(verb, v)
	}
	b, err := json.Marshal(v)
	require.NoError(t, err)
	out["json"] = string(b)
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("m", "v", v)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("m", "v", v)
	out["slog text"], out["slog json"] = text.String(), js.String()
	return out
}

// TestBranchKeyVersionPrintsAView checks what a printed BranchKeyVersion
// shows: the id's fingerprint, version, state, usage, creation time, KMS
// key ARN and the wrapped key's length, never the id or the wrapped bytes;
// while code still reads every field.
func TestBranchKeyVersionPrintsAView(t *testing.T) {
	const id = "patient-0012345"
	created := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	v := keystore.BranchKeyVersion{BranchKeyID: id, Version: keystore.NewBranchKeyVersion(),
		KMSKeyARN: "arn:aws:kms:us-east-1:111122223333:key/k1", Ciphertext: []byte("wrapped-key-bytes"),
		CreatedAt: created, State: keystore.StateDecryptOnly, Usage: 42}
	require.Equal(t, id, v.BranchKeyID) // the fields stay the caller's to read
	for how, out := range printings(t, v) {
		if how == "%x" {
			continue // hex of the same text
		}
		require.NotContains(t, out, id, how)
		require.NotContains(t, out, "wrapped-key-bytes", how)
		for _, want := range []string{fingerprint(id), v.Version, "decrypt_only", "42", "2026-12-06T10:00:00", v.KMSKeyARN, "17"} {
			require.Contains(t, out, want, how)
		}
	}
	var view map[string]any
	b, err := json.Marshal(&v)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &view))
	require.Equal(t, map[string]any{"branch_key": fingerprint(id), "version": v.Version, "state": "decrypt_only",
		"usage": 42.0, "created_at": "2026-12-06T10:00:00Z", "kms_key_arn": v.KMSKeyARN, "ciphertext_len": 17.0}, view)
}

// TestRedactedPrintings checks the other redacted types for what they do
// show, and that the secret they hold does not.
func TestRedactedPrintings(t *testing.T) {
	const id, ctxValue = "patient-0012345", "mrn-99887766"
	ec := map[string]string{"patient": ctxValue}
	dk := keyring.Secret(bytes.Repeat([]byte("K"), 32))
	hierEDK := keyring.EncryptedDataKey{ProviderID: "aws-kms-hierarchy", ProviderInfo: []byte(id), Ciphertext: make([]byte, 80)}
	kmsEDK := keyring.EncryptedDataKey{ProviderID: "aws-kms", ProviderInfo: []byte("arn:aws:kms:us-east-1:111122223333:key/k1"), Ciphertext: bytes.Repeat([]byte("W"), 184)}
	for _, tc := range []struct {
		name   string
		v      any
		secret string
		shows  []string
	}{
		{"hierarchical EDK", hierEDK, id, []string{"aws-kms-hierarchy", fingerprint(id), "80"}},
		{"KMS EDK", kmsEDK, "WWWWWWWW", []string{"arn:aws:kms:us-east-1:111122223333:key/k1", "184"}},
		{"encryption materials", &keyring.EncryptionMaterials{SuiteID: 0x0478, DataKeyLength: 32, EncryptionContext: ec,
			DataKey: dk, EncryptedDataKeys: []keyring.EncryptedDataKey{hierEDK}}, ctxValue, []string{"0x0478", "[REDACTED]"}},
		{"decryption materials", keyring.DecryptionMaterials{SuiteID: 0x0478, DataKeyLength: 32, EncryptionContext: ec, DataKey: dk},
			ctxValue, []string{"0x0478", "[REDACTED]"}},
		{"rewrap position", custody.RewrapPosition{BranchKeyID: id, Version: "v1"}, id, []string{fingerprint(id), "v1"}},
		{"hierarchical config", keyring.HierarchicalConfig{BranchKeyID: id, CacheTTL: time.Minute}, id, []string{fingerprint(id), "1m0s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for how, out := range printings(t, tc.v) {
				require.NotContains(t, out, tc.secret, how)
				require.NotContains(t, out, "KKKKKKKK", how)
				if how == "%x" {
					continue
				}
				for _, want := range tc.shows {
					require.Contains(t, out, want, how)
				}
			}
		})
	}
}

// TestStoresKeepWhatPrintingsRedact checks that redacted printing does not
// reach what is stored: a backup still carries each version's id.
func TestStoresKeepWhatPrintingsRedact(t *testing.T) {
	e := newWrappedStoreEnv(t, fileBackend(), "")
	e.populate(1, "tenant-redact")
	backup := string(exportBackup(t, e.store))
	require.True(t, strings.Contains(backup, `"branch_key_id": "tenant-redact"`), backup)
}
