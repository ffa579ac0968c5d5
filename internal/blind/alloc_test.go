package blind

import "testing"

// TestAllocs: the hot paths allocate nothing once dst has room (and pools
// are warm).
func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates; scripts/test.sh runs this without -race")
	}
	x := mustIndex(t, testKey(1), 16)
	p := mustPseudonymizer(t, testKey(2))
	chain, err := ParseNormalizer("trim+lower+digits+last4")
	if err != nil {
		t.Fatal(err)
	}
	value := []byte("  Jane DOE 555-0100 École ")
	values := [][]byte{[]byte("Doe"), []byte("1970-01-01"), value}
	long := make([]byte, MaxValueLen+1)
	dst := make([]byte, 0, 256)
	cases := []struct {
		name string
		f    func()
	}{
		{"Sum", func() { _, _ = x.Sum(dst[:0], value) }},
		{"SumCompound", func() { _, _ = x.SumCompound(dst[:0], values...) }},
		{"Sum too large", func() { _, _ = x.Sum(dst[:0], long) }},
		{"Token", func() { _ = p.Token(dst[:0], value) }},
		{"Lower", func() { _ = Lower(dst[:0], value) }},
		{"Trim", func() { _ = Trim(dst[:0], value) }},
		{"Digits", func() { _ = Digits(dst[:0], value) }},
		{"Last4", func() { _ = Last4(dst[:0], value) }},
		{"Chain", func() { _ = chain(dst[:0], value) }},
	}
	for _, c := range cases {
		c.f() // warm the pools
		if n := testing.AllocsPerRun(100, c.f); n != 0 {
			t.Errorf("%s: %v allocations per call", c.name, n)
		}
	}
}
