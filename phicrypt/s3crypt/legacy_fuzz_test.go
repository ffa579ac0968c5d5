package s3crypt

import (
	"encoding/json"
	"errors"
	"testing"
)

// legacySentinels are the errors every failure of openLegacy wraps one of.
var legacySentinels = []error{ErrLegacyCBC, ErrLegacyFormat, ErrInstructionFileNotAllowed,
	ErrInstructionMismatch, ErrLegacyKey, ErrLegacyAuthentication, ErrLegacyTooLarge}

// FuzzLegacyMetadata feeds the envelope reader (everything openLegacy does
// before it calls KMS) metadata and instruction files of the fuzzer's
// choosing: it must never panic, every failure must wrap exactly one
// sentinel, and an envelope it accepts must hold what the KMS call and the
// content need, within the caps.
func FuzzLegacyMetadata(f *testing.F) {
	seeds := []string{
		`{"x-amz-key-v2":"AQID","x-amz-iv":"AAAAAAAAAAAAAAAA","x-amz-matdesc":"{\"aws:x-amz-cek-alg\":\"AES/GCM/NoPadding\"}","x-amz-wrap-alg":"kms+context","x-amz-cek-alg":"AES/GCM/NoPadding","x-amz-tag-len":"128"}`,
		`{"x-amz-key-v2":"AQID","x-amz-iv":"AAAAAAAAAAAAAAAA","x-amz-matdesc":"{\"kms_cmk_id\":\"alias/b\"}","x-amz-wrap-alg":"kms","x-amz-cek-alg":"AES/GCM/NoPadding","x-amz-tag-len":"128"}`,
		`{"x-amz-c":"115","x-amz-3":"AQID","x-amz-w":"12","x-amz-t":"{\"aws:x-amz-cek-alg\":\"115\"}","x-amz-d":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==","x-amz-i":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="}`,
		`{"x-amz-c":"115","x-amz-d":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==","x-amz-i":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="}`,
		`{"x-amz-key":"AQID","x-amz-iv":"AAAAAAAAAAAAAAAAAAAAAA==","x-amz-matdesc":"{}"}`,
		`{"x-amz-matdesc":"=?UTF-8?B?e30=?="}`,
		`{}`,
	}
	for _, s := range seeds {
		f.Add(s, `{"x-amz-3":"AQID","x-amz-w":"12","x-amz-t":"{\"aws:x-amz-cek-alg\":\"115\"}"}`, true, true)
		f.Add(s, `{"x-amz-key-v2":"AQID","x-amz-iv":"AAAAAAAAAAAAAAAA","x-amz-tag-len":128}`, false, false)
	}
	f.Fuzz(func(t *testing.T, metaJSON, instruction string, allowInstruction, allowV1 bool) {
		var meta map[string]string
		if json.Unmarshal([]byte(metaJSON), &meta) != nil {
			return
		}
		cfg := &LegacyConfig{KMS: struct{ KMSDecrypter }{}, KeyIDs: []string{"alias/b"},
			AllowInstructionFile: allowInstruction, AllowKMSv1: allowV1}
		if err := cfg.validate(); err != nil {
			t.Fatal(err)
		}
		var ins []byte
		if instruction != "" {
			ins = []byte(instruction)
		}
		isLegacy(meta)
		needsInstruction(meta)
		env, err := readLegacyEnvelope(cfg, meta, ins)
		if err != nil {
			n := 0
			for _, s := range legacySentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%v wraps %d sentinels, not one", err, n)
			}
			return
		}
		if len(env.edk) == 0 || len(env.edk) > legacyMaxEDK {
			t.Fatalf("an encrypted data key of %d bytes", len(env.edk))
		}
		if len(env.kmsContext) > legacyMaxContextEntries {
			t.Fatalf("%d context entries", len(env.kmsContext))
		}
		want := map[bool]int{false: legacyIVLen, true: legacyMessageIDLen}[env.v3]
		if len(env.iv) != want || (env.v3 && len(env.commitment) != legacyCommitmentLen) {
			t.Fatalf("v3=%v: an IV of %d bytes, a commitment of %d", env.v3, len(env.iv), len(env.commitment))
		}
		if env.keyHint == "" && !env.v3 && !allowV1 && env.kmsContext[s3ecContextCEKAlg] != s3ecCEKGCM {
			t.Fatalf("a kms+context envelope whose context does not name %s", s3ecCEKGCM)
		}
		if env.v3 && env.kmsContext[s3ecContextCEKAlg] != s3ecCEKV3 {
			t.Fatalf("a V3 envelope whose context does not name %s", s3ecCEKV3)
		}
		if needsInstruction(meta) && !allowInstruction {
			t.Fatal("an envelope from an instruction file that is not allowed")
		}
		if !needsInstruction(meta) && ins != nil && allowInstruction {
			t.Fatal("an instruction file accepted beside an envelope in the metadata")
		}
	})
}

// FuzzLegacyStringMap checks the JSON reader of material descriptions and
// instruction files against encoding/json: whatever it accepts,
// encoding/json reads the same way.
func FuzzLegacyStringMap(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":"b"}`, `{"a":1}`, `{"a":"b","a":"c"}`, `{"a":{}}`, `[]`, `{"a":"b"} x`, `{"a":-1}`, `{"a":1e3}`} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, numbers bool) {
		m, ok := parseLegacyStringMap([]byte(s), 8, numbers)
		if !ok {
			return
		}
		if len(m) > 8 {
			t.Fatalf("%d entries over a cap of 8", len(m))
		}
		var ref map[string]any
		if err := json.Unmarshal([]byte(s), &ref); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", s, err)
		}
		if len(ref) != len(m) {
			t.Fatalf("%q: %d entries, encoding/json sees %d", s, len(m), len(ref))
		}
		for k, v := range m {
			switch r := ref[k].(type) {
			case string:
				if r != v {
					t.Fatalf("%q: %q is %q, encoding/json says %q", s, k, v, r)
				}
			case float64:
				if !numbers {
					t.Fatalf("%q: a number accepted without numbers", s)
				}
			default:
				t.Fatalf("%q: %q is %T to encoding/json", s, k, r)
			}
		}
		decodeS3Value(s)
	})
}
