package siv

import "testing"

// TestAllocs guards the dst-append contract: with room in dst, neither
// Seal nor Open allocates, at any plaintext length.
func TestAllocs(t *testing.T) {
	s := mustNew(t, randBytes(KeySize))
	ad := randBytes(32)
	ads := [][]byte{ad, ad[:5], nil}
	for _, n := range []int{0, 1, 15, 16, 17, 64, 129, 300} {
		pt := randBytes(n)
		ct := s.Seal(nil, pt, ad)
		ctv := s.SealVector(nil, pt, ads)
		b := s.Bind(ad)
		out := make([]byte, 0, Overhead+n)
		var openErr error
		for name, f := range map[string]func(){
			"Seal":       func() { s.Seal(out[:0], pt, ad) },
			"SealVector": func() { s.SealVector(out[:0], pt, ads) },
			"Open":       func() { _, openErr = s.Open(out[:0], ct, ad) },
			"OpenVector": func() { _, openErr = s.OpenVector(out[:0], ctv, ads) },
			"Open fails": func() { s.Open(out[:0], ct, ad[1:]) },
			"Bound.Seal": func() { b.Seal(out[:0], pt) },
			"Bound.Open": func() { _, openErr = b.Open(out[:0], ct) },
		} {
			allocs := testing.AllocsPerRun(100, f)
			if openErr != nil {
				t.Fatalf("%s, len %d: %v", name, n, openErr)
			}
			if raceEnabled {
				continue
			}
			if allocs != 0 {
				t.Errorf("%s, len %d: %v allocations, want 0", name, n, allocs)
			}
		}
	}
}
