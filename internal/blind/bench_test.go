package blind

import (
	"crypto/hmac"
	"crypto/sha256"
	"testing"
)

// BenchmarkIndexSum compares Sum with building a crypto/hmac HMAC per call,
// the straightforward alternative, on a 16-byte value.
func BenchmarkIndexSum(b *testing.B) {
	key := testKey(1)
	value := []byte("jane.doe@ex.org!")[:16]
	b.Run("blind", func(b *testing.B) {
		x := mustIndex(b, key, 16)
		dst := make([]byte, 0, 32)
		b.SetBytes(int64(len(value)))
		b.ReportAllocs()
		for b.Loop() {
			dst, _ = x.Sum(dst[:0], value)
		}
	})
	b.Run("hmac-new-per-call", func(b *testing.B) {
		dst := make([]byte, 0, 32)
		b.SetBytes(int64(len(value)))
		b.ReportAllocs()
		for b.Loop() {
			h := hmac.New(sha256.New, key)
			h.Write(value)
			dst = h.Sum(dst[:0])[:2]
		}
	})
	b.Run("blind-parallel", func(b *testing.B) {
		x := mustIndex(b, key, 16)
		b.SetBytes(int64(len(value)))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			dst := make([]byte, 0, 32)
			for pb.Next() {
				dst, _ = x.Sum(dst[:0], value)
			}
		})
	})
}

func BenchmarkIndexSumCompound(b *testing.B) {
	x := mustIndex(b, testKey(1), 16)
	values := [][]byte{[]byte("doe"), []byte("1970-01-01"), []byte("02139")}
	dst := make([]byte, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = x.SumCompound(dst[:0], values...)
	}
}

func BenchmarkToken(b *testing.B) {
	p := mustPseudonymizer(b, testKey(2))
	value := []byte("MRN-000123456789")
	dst := make([]byte, 0, TokenLen)
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	for b.Loop() {
		dst = p.Token(dst[:0], value)
	}
}

func BenchmarkNormalize(b *testing.B) {
	chain, _ := ParseNormalizer("trim+lower")
	value := []byte("  Jane.DOE@Example.ORG ")
	for _, c := range []struct {
		name string
		n    Normalizer
	}{{"lower", Lower}, {"trim", Trim}, {"digits", Digits}, {"last4", Last4}, {"trim+lower", chain}} {
		b.Run(c.name, func(b *testing.B) {
			dst := make([]byte, 0, 64)
			b.SetBytes(int64(len(value)))
			b.ReportAllocs()
			for b.Loop() {
				dst = c.n(dst[:0], value)
			}
		})
	}
}
