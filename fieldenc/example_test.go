package fieldenc_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/phicrypt/phicrypt/fieldenc"
)

// A Sealed value never prints its plaintext, and refuses to be written to a
// database before it is sealed.
func ExampleSealed() {
	type Patient struct {
		Name fieldenc.Sealed[string]
		DOB  fieldenc.Sealed[time.Time]
	}
	p := Patient{Name: fieldenc.Of("Ada Lovelace"), DOB: fieldenc.Of(time.Date(1815, 12, 10, 0, 0, 0, 0, time.UTC))}
	js, _ := json.Marshal(p)
	fmt.Printf("%v\n%+v\n%s\n", p, p, js)
	name, _ := p.Name.Get()
	fmt.Println(len(name), "characters, opened explicitly")
	_, err := p.Name.Value() // what database/sql calls for an INSERT
	fmt.Println(err)
	// Output:
	// {[REDACTED] [REDACTED]}
	// {Name:[REDACTED] DOB:[REDACTED]}
	// {"Name":"[REDACTED]","DOB":"[REDACTED]"}
	// 12 characters, opened explicitly
	// fieldenc: the value is not sealed; call Seal first
}

// Encrypted fields are Sealed values: a plain string tagged encrypt would
// still hold its plaintext after a failed Seal, ready for an INSERT, so it
// is refused.
func ExampleCheck() {
	type Visit struct {
		ID  string `phi:"rowid"`
		MRN string `phi:"encrypt,deterministic"`
	}
	fmt.Println(fieldenc.Check[Visit]())
	type SealedVisit struct {
		ID  string                  `phi:"rowid"`
		MRN fieldenc.Sealed[string] `phi:"encrypt,deterministic"`
	}
	fmt.Println(fieldenc.Check[SealedVisit]())
	// Output:
	// fieldenc: fieldenc_test.Visit field MRN, tag phi:"encrypt,deterministic": a plain string would still hold its plaintext after a failed Seal, and an INSERT would store it; declare it fieldenc.Sealed[string], which refuses to be written unsealed
	// <nil>
}

// Size a blind index for a column of about a million distinct SSNs.
func ExampleRecommendIndexBits() {
	bits, _ := fieldenc.RecommendIndexBits(1_000_000)
	a := fieldenc.AssessIndexBits(1_000_000, bits)
	fmt.Printf("%d bits, about %.0f SSNs per index value, %d warnings\n", bits, a.ExpectedPerBucket, len(a.Warnings))
	fmt.Println(fieldenc.AssessIndexBits(1_000_000, 24).Warnings[0][:6])
	// Output:
	// 14 bits, about 61 SSNs per index value, 0 warnings
	// leaks:
}
