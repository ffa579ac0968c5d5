package blind

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalizers(t *testing.T) {
	cases := []struct {
		name     string
		n        Normalizer
		in, want string
	}{
		{"lower", Lower, "ÉCOLE", "école"},
		{"lower", Lower, "Smith-JONES", "smith-jones"},
		{"lower", Lower, "ΣΊΣΥΦΟΣ", "σίσυφοσ"}, // simple mapping: no final sigma
		{"lower", Lower, "Ⱥb", "ⱥb"},           // grows from 2 to 3 bytes
		{"lower", Lower, "A\xffB\xc3", "a\xffb\xc3"},
		{"lower", Lower, "", ""},
		{"trim", Trim, "  a b  ", "a b"},
		{"trim", Trim, "\u00a0\t\nx\u2003", "x"},
		{"trim", Trim, "a  b", "a  b"},
		{"trim", Trim, " \xff ", "\xff"},
		{"trim", Trim, "   ", ""},
		{"digits", Digits, "123-45-6789", "123456789"},
		{"digits", Digits, "(555) 010 ٣", "555010"}, // Arabic-Indic digit dropped
		{"digits", Digits, "none", ""},
		{"last4", Last4, "123456789", "6789"},
		{"last4", Last4, "123-45-6789", "6789"},
		{"last4", Last4, "ab", "ab"},
		{"last4", Last4, "abcd", "abcd"},
		{"last4", Last4, "zürich", "rich"},
		{"last4", Last4, "xÉcol", "Écol"},
		{"last4", Last4, "ab\xff\xfec", "b\xff\xfec"},
		{"last4", Last4, "", ""},
	}
	for _, c := range cases {
		got := c.n([]byte("dst:"), []byte(c.in))
		if string(got) != "dst:"+c.want {
			t.Errorf("%s(%q) = %q, want %q", c.name, c.in, got[4:], c.want)
		}
	}
}

func TestParseNormalizer(t *testing.T) {
	cases := []struct{ spec, in, want string }{
		{"lower", "ÉCOLE", "école"},
		{"trim+lower", "  Jane DOE \n", "jane doe"},
		{"lower+trim", "  Jane DOE \n", "jane doe"},
		{"digits", "123-45-6789", "123456789"},
		{"digits+last4", "123-45-6789", "6789"},
		{"last4+digits", "123-45-678x", "678"},
		{"trim+digits+last4", " 4111 1111 1111 1234 ", "1234"},
		{"trim+lower+digits+last4", "a1B2c3D4e5", "2345"},
		{"trim+trim+trim+trim+trim+trim+trim+lower", "  X  ", "x"},
	}
	for _, c := range cases {
		n, err := ParseNormalizer(c.spec)
		if err != nil {
			t.Fatalf("%q: %v", c.spec, err)
		}
		// Twice: the second run uses the pooled (and cleared) buffers.
		for range 2 {
			if got := n(nil, []byte(c.in)); string(got) != c.want {
				t.Errorf("%s(%q) = %q, want %q", c.spec, c.in, got, c.want)
			}
		}
	}
}

func TestParseNormalizerErrors(t *testing.T) {
	cases := []struct{ spec, mention string }{
		{"", "empty"},
		{"upper", `"upper"`},
		{"trim+Lower", `"Lower"`},
		{"trim+", "empty"},
		{"+trim", "empty"},
		{"trim++lower", "empty"},
		{" trim", `" trim"`},
		{strings.Repeat("trim+", 8) + "trim", "more than 8"},
	}
	for _, c := range cases {
		n, err := ParseNormalizer(c.spec)
		if !errors.Is(err, ErrUnknownNormalizer) || n != nil {
			t.Errorf("%q: %v", c.spec, err)
			continue
		}
		if !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%q: error %q does not mention %s", c.spec, err, c.mention)
		}
	}
}

func TestChain(t *testing.T) {
	if got := Chain()(nil, []byte("As Is ")); string(got) != "As Is " {
		t.Errorf("empty chain = %q", got)
	}
	if got := Chain(Digits)(nil, []byte("a1")); string(got) != "1" {
		t.Errorf("one-stage chain = %q", got)
	}
	// Values far above the stack-sized case, and growth between stages.
	long := strings.Repeat("Ⱥ", 70000)
	got := Chain(Trim, Lower, Lower, Trim)(nil, []byte(long))
	if string(got) != strings.Repeat("ⱥ", 70000) {
		t.Error("long chain output wrong")
	}
	defer func() {
		if recover() == nil {
			t.Error("Chain with a nil normalizer did not panic")
		}
	}()
	Chain(Trim, nil)
}

// FuzzParseNormalizer: any spec parses or fails cleanly, and any parsed
// chain normalizes any value without panicking, deterministically, into
// output no longer than its input allows.
func FuzzParseNormalizer(f *testing.F) {
	f.Add("trim+lower", []byte("  Jane DOE "))
	f.Add("digits+last4", []byte("123-45-6789"))
	f.Add("last4+lower+trim", []byte("\xff\xfeÉ \u2003"))
	f.Add("++", []byte{})
	f.Fuzz(func(t *testing.T, spec string, value []byte) {
		n, err := ParseNormalizer(spec)
		if err != nil {
			if n != nil || !errors.Is(err, ErrUnknownNormalizer) {
				t.Fatalf("%q: %v with a normalizer", spec, err)
			}
			return
		}
		a := n([]byte("dst"), value)
		b := n(nil, value)
		if string(a) != "dst"+string(b) {
			t.Fatalf("%q: not deterministic or overwrote dst", spec)
		}
		// Lower grows a rune by at most half; the others never grow.
		if len(b) > len(value)*2 {
			t.Fatalf("%q: %d bytes out of %d", spec, len(b), len(value))
		}
		if utf8.Valid(value) && !utf8.Valid(b) {
			t.Fatalf("%q: valid UTF-8 in, invalid out", spec)
		}
	})
}
