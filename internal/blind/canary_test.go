package blind

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// canary is a recognisable stand-in for PHI and key bytes.
const canary = "CANARY-PHI-078-05-1120"

// TestErrorsOmitValues pushes the canary, as a value or as key bytes,
// through every error path and checks no error string contains it (or its
// hex form, or its digits).
func TestErrorsOmitValues(t *testing.T) {
	long := []byte(strings.Repeat(canary, MaxValueLen/len(canary)+1))
	key32 := []byte(canary + strings.Repeat("k", KeySize-len(canary)))
	x := mustIndex(t, key32, 16)
	var errs []error
	add := func(_ any, err error) {
		if err == nil {
			t.Fatal("expected an error")
		}
		errs = append(errs, err)
	}
	add(NewIndex([]byte(canary), 16))
	add(NewIndex(key32, 0))
	add(NewPseudonymizer([]byte(canary)))
	add(x.Sum(nil, long))
	add(x.SumCompound(nil, []byte(canary), long))
	add(x.SumCompound(nil, bytes.Split(bytes.Repeat([]byte(canary+","), 17), []byte(","))...))
	add(x.SumCompound(nil))
	add(Recommend(8))
	for _, spec := range []string{"", "trim+", "upper", strings.Repeat("lower+", 9)} {
		add(ParseNormalizer(spec))
	}
	for _, err := range errs {
		checkNoCanary(t, "error", err.Error())
	}
}

// TestFormatOmitsKeys: however an Index or Pseudonymizer is printed or
// logged, its key does not appear.
func TestFormatOmitsKeys(t *testing.T) {
	key := []byte(canary + strings.Repeat("k", KeySize-len(canary)))
	x := mustIndex(t, key, 16)
	x.Sum(nil, []byte(canary)) // leave a pooled state behind
	p := mustPseudonymizer(t, key)
	p.Token(nil, []byte(canary))
	// A struct holding them by value is printed field by field, without
	// their Format methods.
	type holder struct {
		idx Index
		p   Pseudonymizer
	}
	h := new(holder)
	if h.idx.mac.init(key) != nil || h.p.mac.init(key) != nil {
		t.Fatal("init")
	}
	for _, v := range []any{x, p, h} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
			checkNoCanary(t, verb, fmt.Sprintf(verb, v))
		}
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "v", v)
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "v", v)
		checkNoCanary(t, "slog", buf.String())
	}
}

func checkNoCanary(t *testing.T, what, s string) {
	t.Helper()
	for _, needle := range []string{canary, "078-05-1120", "0780511", hex.EncodeToString([]byte(canary))[:16], "CANARY", "43414e415259"} {
		if strings.Contains(strings.ToUpper(s), strings.ToUpper(needle)) {
			t.Errorf("%s %q contains %q", what, s, needle)
		}
	}
}
