package siv_test

import (
	"bytes"
	"fmt"

	"github.com/phicrypt/phicrypt/internal/siv"
)

// Deterministic column encryption: the same value in the same column
// encrypts to the same ciphertext, so it can be looked up by equality; the
// associated data names the column, so a ciphertext copied into another
// column does not open.
func Example() {
	key := bytes.Repeat([]byte{0x42}, siv.KeySize) // in phicrypt: a derived per-column key
	s, err := siv.New(key)
	if err != nil {
		panic(err)
	}
	column := []byte("patients.ssn")

	a := s.Seal(nil, []byte("123-45-6789"), column)
	b := s.Seal(nil, []byte("123-45-6789"), column)
	fmt.Println("equal values, equal ciphertexts:", bytes.Equal(a, b))
	fmt.Println("ciphertext length:", len(a))

	ssn, err := s.Open(nil, a, column)
	fmt.Printf("%s %v\n", ssn, err)

	_, err = s.Open(nil, a, []byte("patients.mrn"))
	fmt.Println(err == siv.ErrOpen)
	// Output:
	// equal values, equal ciphertexts: true
	// ciphertext length: 27
	// 123-45-6789 <nil>
	// true
}
