package blind_test

import (
	"encoding/hex"
	"fmt"

	"github.com/phicrypt/phicrypt/internal/blind"
)

func Example() {
	// In fieldenc the key comes from HKDF over the branch key, per index.
	key := make([]byte, blind.KeySize)

	bits, _ := blind.Recommend(1_000_000) // distinct e-mail addresses expected
	idx, _ := blind.NewIndex(key, bits)
	norm, _ := blind.ParseNormalizer("trim+lower")

	var buf, term []byte
	for _, email := range []string{"Jane.Doe@Example.org", "  jane.doe@example.ORG "} {
		buf = norm(buf[:0], []byte(email))
		term, _ = idx.Sum(term[:0], buf)
		fmt.Println(idx.Bits(), hex.EncodeToString(term))
	}
	// Output:
	// 14 3244
	// 14 3244
}

func ExampleIndex_SumCompound() {
	idx, _ := blind.NewIndex(make([]byte, blind.KeySize), 20)
	term, _ := idx.SumCompound(nil, []byte("doe"), []byte("1970-01-01"))
	fmt.Println(hex.EncodeToString(term))
	// Output: e9d530
}

func ExamplePseudonymizer_Token() {
	p, _ := blind.NewPseudonymizer(make([]byte, blind.KeySize)) // one key per purpose
	fmt.Println(string(p.Token(nil, []byte("MRN-0012345"))))
	// Output: i4tbaxv6trvyh4qsi6riyxb2pe2bh3ey
}

func ExampleAssess() {
	a := blind.Assess(1_000_000, 20)
	fmt.Printf("%.2f values per index value\n", a.ExpectedPerBucket)
	for _, w := range a.Warnings {
		fmt.Println(w)
	}
	// Output:
	// 0.95 values per index value
	// leaks: 2^20 ≥ 1000000/2 distinct values, so most index values identify a single plaintext; use fewer bits
}
