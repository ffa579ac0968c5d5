package blind

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// A Normalizer appends a canonical form of value to dst and returns the
// result, so that values a person would call equal ("  Smith", "smith")
// index equal. dst and value must not overlap. The normalizers here
// allocate nothing when dst has room.
type Normalizer func(dst, value []byte) []byte

// maxChain caps the stages of a parsed normalizer chain.
const maxChain = 8

// maxPooledChain is the most scratch memory, in bytes, a chain keeps
// between calls; a buffer grown past it by a huge value is dropped.
const maxPooledChain = 2 * MaxValueLen

// Lower lower-cases value rune by rune with [unicode.ToLower] (simple case
// mapping, no locale rules). Bytes that are not valid UTF-8 are kept as is.
func Lower(dst, value []byte) []byte {
	for len(value) > 0 {
		if c := value[0]; c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			value = value[1:]
			continue
		}
		r, size := utf8.DecodeRune(value)
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, value[0])
		} else {
			dst = utf8.AppendRune(dst, unicode.ToLower(r))
		}
		value = value[size:]
	}
	return dst
}

// Trim removes leading and trailing Unicode white space ([unicode.IsSpace])
// and leaves the inside of the value alone.
func Trim(dst, value []byte) []byte {
	return append(dst, bytes.TrimFunc(value, unicode.IsSpace)...)
}

// Digits keeps only the ASCII digits '0' to '9' ("123-45-6789" becomes
// "123456789").
func Digits(dst, value []byte) []byte {
	for _, c := range value {
		if '0' <= c && c <= '9' {
			dst = append(dst, c)
		}
	}
	return dst
}

// Last4 keeps the last four runes of value, or all of it if it is shorter.
// Each byte that is not valid UTF-8 counts as one rune. Put it last in a
// chain, after the normalizers that define what counts ("digits+last4").
func Last4(dst, value []byte) []byte {
	start := len(value)
	for n := 0; n < 4 && start > 0; n++ {
		_, size := utf8.DecodeLastRune(value[:start])
		start -= size
	}
	return append(dst, value[start:]...)
}

// Chain returns a normalizer that applies n in order, each to the previous
// one's output. With no normalizers it copies the value unchanged. Its
// scratch buffers are pooled, so it allocates nothing once warm. Chain
// panics if a normalizer is nil.
func Chain(n ...Normalizer) Normalizer {
	stages := make([]Normalizer, len(n))
	for i, s := range n {
		if s == nil {
			panic("blind: Chain of a nil Normalizer")
		}
		stages[i] = s
	}
	switch len(stages) {
	case 0:
		return identity
	case 1:
		return stages[0]
	}
	c := &chain{stages: stages}
	c.pool.New = func() any { return new(chainBuffers) }
	return c.apply
}

func identity(dst, value []byte) []byte { return append(dst, value...) }

type chain struct {
	stages []Normalizer
	pool   sync.Pool // of *chainBuffers
}

// chainBuffers hold the intermediate values, stage to stage in turn.
type chainBuffers struct{ a, b []byte }

func (c *chain) apply(dst, value []byte) []byte {
	bufs := c.pool.Get().(*chainBuffers)
	last := len(c.stages) - 1
	cur := value
	for i, stage := range c.stages[:last] {
		if i%2 == 0 {
			bufs.a = stage(bufs.a[:0], cur)
			cur = bufs.a
		} else {
			bufs.b = stage(bufs.b[:0], cur)
			cur = bufs.b
		}
	}
	dst = c.stages[last](dst, cur)
	// The buffers held a value, which may be PHI: clear before pooling.
	clear(bufs.a)
	clear(bufs.b)
	if cap(bufs.a)+cap(bufs.b) <= maxPooledChain {
		c.pool.Put(bufs)
	}
	return dst
}

// ParseNormalizer returns the normalizer a spec names: "lower", "trim",
// "digits" or "last4", or several of them joined with "+" and applied left
// to right ("trim+lower", "digits+last4"), at most 8. This is the syntax of
// fieldenc's normalize= tag option. Errors quote the spec's bad part.
func ParseNormalizer(spec string) (Normalizer, error) {
	names := strings.Split(spec, "+")
	if len(names) > maxChain {
		return nil, fmt.Errorf("%w: more than %d in a chain", ErrUnknownNormalizer, maxChain)
	}
	stages := make([]Normalizer, len(names))
	for i, name := range names {
		n, err := normalizerNamed(name)
		if err != nil {
			return nil, err
		}
		stages[i] = n
	}
	return Chain(stages...), nil
}

func normalizerNamed(name string) (Normalizer, error) {
	switch name {
	case "lower":
		return Lower, nil
	case "trim":
		return Trim, nil
	case "digits":
		return Digits, nil
	case "last4":
		return Last4, nil
	case "":
		return nil, fmt.Errorf("%w: empty name in chain", ErrUnknownNormalizer)
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownNormalizer, name)
}
