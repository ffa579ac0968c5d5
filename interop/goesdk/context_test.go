package goesdk

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"unicode/utf16"

	"github.com/phicrypt/phicrypt/phicrypt"
)

// Keys of contexts[2] that the required-context tests require: one above
// U+FFFF and one in U+E000..U+FFFF, so the authenticated-only pairs'
// serialization depends on the sort order too.
var requiredKeys = []string{"\U0001F3E5 ward", "\uFB01le"}

// withValue returns a copy of ec with key set to value.
func withValue(ec map[string]string, key, value string) map[string]string {
	out := maps.Clone(ec)
	out[key] = value
	return out
}

// Both sides check the pairs a caller expects on decrypt against a message
// the other made: the same pairs, or a subset, pass; a different value or a
// pair the message does not carry is refused.
func TestExpectedContextOnDecrypt(t *testing.T) {
	key := randomBytes(32)
	p := newGoESDK(t)
	m := withKeyring(p.rawAES(t, key))
	ec := contexts[2]
	pt := randomBytes(300)
	subset := map[string]string{requiredKeys[0]: ec[requiredKeys[0]]}
	wrong := withValue(ec, requiredKeys[0], "cardiologia") // the same word without its accent
	extra := withValue(ec, "ward-\u00e9", "absent")
	for _, suite := range suites {
		t.Run(suite.String(), func(t *testing.T) {
			fromESDK, err := p.encrypt(m, suite, 128, pt, ec)
			if err != nil {
				t.Fatalf("ESDK encrypt: %v", err)
			}
			enc := newEncryptor(t, phicrypt.Config{Keyring: phicryptRawAES(t, key), Suite: suite, FrameLength: 128})
			fromPhicrypt, err := enc.Encrypt(t.Context(), pt, ec)
			if err != nil {
				t.Fatalf("phicrypt encrypt: %v", err)
			}

			if got, gotEC, err := enc.Decrypt(t.Context(), fromESDK, subset); err != nil || !bytes.Equal(got, pt) || !sameContext(gotEC, ec) {
				t.Fatalf("phicrypt, expecting a subset of the ESDK's context, did not read it whole: %v", err)
			}
			crossChecked()
			if _, _, err := enc.Decrypt(t.Context(), fromESDK, wrong); !errors.Is(err, phicrypt.ErrContext) {
				t.Fatalf("phicrypt, expecting another value than the ESDK wrote: got %v, want ErrContext", err)
			}
			crossChecked()
			// The pair is taken as authenticated-only, and the raw AES
			// keyring's wrapping AAD is the whole context: the data key
			// does not open.
			if _, _, err := enc.Decrypt(t.Context(), fromESDK, extra); !errors.Is(err, phicrypt.ErrNoKey) {
				t.Fatalf("phicrypt, expecting a pair the ESDK did not write: got %v, want ErrNoKey", err)
			}
			crossChecked()

			out, err := p.decrypt(m, fromPhicrypt, subset)
			if err != nil || !bytes.Equal(out.Plaintext, pt) || !sameContext(withoutKey(out.EncryptionContext, publicKeyContextKey), ec) {
				t.Fatalf("the ESDK, expecting a subset of phicrypt's context, did not read it whole: %v", err)
			}
			crossChecked()
			if _, err := p.decrypt(m, fromPhicrypt, wrong); err == nil {
				t.Fatal("the ESDK read phicrypt's message expecting another value than phicrypt wrote")
			}
			crossChecked()
			if _, err := p.decrypt(m, fromPhicrypt, extra); err == nil {
				t.Fatal("the ESDK read phicrypt's message expecting a pair phicrypt did not write")
			}
			crossChecked()
		})
	}
}

// The ESDK's required-encryption-context CMM authenticates the required
// pairs without storing them; phicrypt reads such a message only when the
// caller supplies those pairs, with the right values.
func TestGoESDKRequiredContextCMMPhicryptDecrypts(t *testing.T) {
	key := randomBytes(32)
	p := newGoESDK(t)
	cmm := materials{cmm: p.requiredCMM(t, p.rawAES(t, key), requiredKeys...)}
	ec := contexts[2]
	stored := maps.Clone(ec)
	for _, k := range requiredKeys {
		delete(stored, k)
	}
	for _, suite := range suites {
		for _, frame := range []int{1, 4096} {
			v := vector{suite: suite, frame: frame, pt: randomBytes(3*frame + 1), ec: ec, authOnly: requiredKeys}
			t.Run(fmt.Sprintf("%v/frame%d", suite, frame), func(t *testing.T) {
				msg, err := p.encrypt(cmm, suite, frame, v.pt, ec)
				if err != nil {
					t.Fatalf("ESDK encrypt through the required context CMM: %v", err)
				}
				phicryptReads(t, newEncryptor(t, phicrypt.Config{Keyring: phicryptRawAES(t, key)}), msg, v)

				strict := newEncryptor(t, phicrypt.Config{Keyring: phicryptRawAES(t, key), RequiredContextKeys: requiredKeys})
				if got, _, err := strict.Decrypt(t.Context(), msg, ec); err != nil || len(got) != len(v.pt) {
					t.Fatalf("phicrypt requiring the keys, given them: %v", err)
				}
				crossChecked()
				if _, _, err := strict.Decrypt(t.Context(), msg, stored); !errors.Is(err, phicrypt.ErrContext) {
					t.Fatalf("phicrypt requiring the keys, not given them: got %v, want ErrContext", err)
				}
				crossChecked()
				// The raw AES wrapping AAD is the whole context, the
				// authenticated-only pairs included: without them, or with
				// another value, the data key does not open.
				lenient := newEncryptor(t, phicrypt.Config{Keyring: phicryptRawAES(t, key)})
				if _, _, err := lenient.Decrypt(t.Context(), msg, nil); !errors.Is(err, phicrypt.ErrNoKey) {
					t.Fatalf("phicrypt without the authenticated-only pairs: got %v, want ErrNoKey", err)
				}
				crossChecked()
				if _, _, err := lenient.Decrypt(t.Context(), msg, withValue(ec, requiredKeys[1], "other")); !errors.Is(err, phicrypt.ErrNoKey) {
					t.Fatalf("phicrypt with a wrong authenticated-only value: got %v, want ErrNoKey", err)
				}
				crossChecked()
			})
		}
	}
}

// phicrypt's RequiredContextKeys stores every pair; the ESDK's required
// context CMM reads the message only when its caller reproduces the
// required pairs with the values phicrypt wrote.
func TestPhicryptRequiredContextGoESDKDecrypts(t *testing.T) {
	key := randomBytes(32)
	p := newGoESDK(t)
	cmm := materials{cmm: p.requiredCMM(t, p.rawAES(t, key), requiredKeys...)}
	ec := contexts[2]
	missing := maps.Clone(ec)
	delete(missing, requiredKeys[0])
	for _, suite := range suites {
		t.Run(suite.String(), func(t *testing.T) {
			v := vector{suite: suite, frame: 4096, pt: randomBytes(5000), ec: ec}
			enc := newEncryptor(t, phicrypt.Config{Keyring: phicryptRawAES(t, key), Suite: suite, FrameLength: v.frame, RequiredContextKeys: requiredKeys})
			msg, err := enc.Encrypt(t.Context(), v.pt, ec)
			if err != nil {
				t.Fatalf("phicrypt encrypt: %v", err)
			}
			esdkReads(t, p, cmm, msg, v)
			if _, err := p.decrypt(cmm, msg, missing); err == nil {
				t.Fatal("the ESDK's required context CMM read the message without a required pair")
			}
			crossChecked()
			if _, err := p.decrypt(cmm, msg, withValue(ec, requiredKeys[0], "other")); err == nil {
				t.Fatal("the ESDK's required context CMM read the message with a wrong required value")
			}
			crossChecked()

			// A message without a required key is refused by both.
			plain := newEncryptor(t, phicrypt.Config{Keyring: phicryptRawAES(t, key), Suite: suite})
			lacking, err := plain.Encrypt(t.Context(), v.pt, missing)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.decrypt(cmm, lacking, nil); err == nil {
				t.Fatal("the ESDK's required context CMM read a phicrypt message lacking a required key")
			}
			crossChecked()
			fromESDK, err := p.encrypt(withKeyring(p.rawAES(t, key)), suite, 4096, v.pt, missing)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := enc.Decrypt(t.Context(), fromESDK, nil); !errors.Is(err, phicrypt.ErrContext) {
				t.Fatalf("phicrypt requiring a key the ESDK's message lacks: got %v, want ErrContext", err)
			}
			crossChecked()
		})
	}
}

// The premise of contexts[2]: sorting its keys by UTF-16 code units (as
// JavaScript's default sort or Java's String.compareTo would) gives
// another order than sorting by UTF-8 bytes, the order the ESDK
// specification requires. Otherwise the matrix would not tell them apart.
func TestNonASCIIContextOrdersDiffer(t *testing.T) {
	keys := slices.Collect(maps.Keys(contexts[2]))
	byUTF8 := slices.Clone(keys)
	slices.SortFunc(byUTF8, func(a, b string) int { return bytes.Compare([]byte(a), []byte(b)) })
	byUTF16 := slices.Clone(keys)
	slices.SortFunc(byUTF16, func(a, b string) int {
		return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
	})
	if slices.Equal(byUTF8, byUTF16) {
		t.Fatalf("the keys of contexts[2] sort the same in UTF-8 and UTF-16: %q", byUTF8)
	}
}
