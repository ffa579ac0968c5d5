package phicrypt

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// A serialized encryption context (internal/wire) read in place, so that
// decrypting with a cached data key needs no map: the cache entry keeps the
// parsed one. wire.ParseContext stays the reference; a differential fuzz
// test holds these to it.

// scanContext checks raw as wire.ParseContext would, without building a
// map. It can do so only while keys ascend strictly (as every ESDK writes
// them, since it sorts them), which also rules out duplicates; at the first
// key out of order it stops and reports sorted false, and the caller must
// ask wire.ParseContext instead.
func scanContext(raw []byte) (valid, sorted bool) {
	if len(raw) == 0 {
		return true, true
	}
	if len(raw) < 2 {
		return false, true
	}
	count := binary.BigEndian.Uint16(raw)
	rest := raw[2:]
	if count == 0 {
		return len(rest) == 0, true // some older SDKs wrote an empty context so
	}
	var prev []byte
	for i := range int(count) {
		var k, v []byte
		var ok bool
		if k, rest, ok = cutShort(rest); !ok {
			return false, true
		}
		if v, rest, ok = cutShort(rest); !ok {
			return false, true
		}
		if i > 0 && bytes.Compare(prev, k) >= 0 {
			return false, false
		}
		if len(k) == 0 || !utf8.Valid(k) || !utf8.Valid(v) {
			return false, true
		}
		prev = k
	}
	return len(rest) == 0, true
}

// contextValue finds key in a context that scanContext or wire.ParseContext
// has accepted (so keys are unique).
func contextValue(raw []byte, key string) ([]byte, bool) {
	if len(raw) < 2 {
		return nil, false
	}
	rest := raw[2:]
	for range int(binary.BigEndian.Uint16(raw)) {
		k, r, _ := cutShort(rest)
		v, r, _ := cutShort(r)
		if string(k) == key {
			return v, true
		}
		rest = r
	}
	return nil, false
}

// cutShort splits a uint16-length-prefixed string off b.
func cutShort(b []byte) (s, rest []byte, ok bool) {
	if len(b) < 2 {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b)-2 < n {
		return nil, nil, false
	}
	return b[2 : 2+n], b[2+n:], true
}
