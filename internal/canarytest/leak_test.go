package canarytest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// leak reports the first canary found in out, and in which form, or "" if
// there is none. A canary is looked for as it is, in hex (either case, at
// any alignment), in base64 (standard or URL alphabet, padded or not, at
// any alignment within a longer encoding), and as fmt prints a []byte with
// %v, %d and %#v ("[99 110 ...]", "0x63, 0x6e, ...").
func leak(out string, canaries []string) string {
	for _, c := range canaries {
		if form := leakOf(out, c); form != "" {
			return fmt.Sprintf("canary %q (%s)", c, form)
		}
	}
	return ""
}

func leakOf(out, canary string) string {
	switch {
	case strings.Contains(out, canary):
		return "as is"
	case strings.Contains(out, byteList(canary, "%d", " ")):
		return "as decimal bytes"
	case strings.Contains(out, byteList(canary, "%#x", ", ")):
		return "as Go-syntax bytes"
	case inRuns(out, isHexChar, 2, decodeHex, canary):
		return "in hex"
	case inRuns(out, isBase64Char, 4, decodeBase64, canary):
		return "in base64"
	}
	return ""
}

func byteList(s, verb, sep string) string {
	parts := make([]string, len(s))
	for i := range len(s) {
		parts[i] = fmt.Sprintf(verb, s[i])
	}
	return strings.Join(parts, sep)
}

// inRuns decodes every maximal run of characters that isChar accepts,
// starting at each of the first align offsets, and reports whether canary
// appears in any decoding.
func inRuns(out string, isChar func(byte) bool, align int, decode func(string) []byte, canary string) bool {
	for i := 0; i < len(out); {
		if !isChar(out[i]) {
			i++
			continue
		}
		j := i
		for j < len(out) && isChar(out[j]) {
			j++
		}
		run := out[i:j]
		for k := 0; k < align && k < len(run); k++ {
			if bytes.Contains(decode(run[k:]), []byte(canary)) {
				return true
			}
		}
		i = j
	}
	return false
}

func isHexChar(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func decodeHex(s string) []byte {
	b, _ := hex.DecodeString(s[:len(s)/2*2])
	return b
}

func isBase64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '+' || c == '/' || c == '-' || c == '_'
}

func decodeBase64(s string) []byte {
	s = strings.NewReplacer("-", "+", "_", "/").Replace(s)
	if len(s)%4 == 1 {
		s = s[:len(s)-1] // a lone character encodes no whole byte
	}
	b, _ := base64.RawStdEncoding.DecodeString(s)
	return b
}
