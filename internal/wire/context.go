// Package wire holds the AWS Encryption SDK's serializations that both the
// keyrings and the message format need: the encryption context and encrypted
// data keys. Parsing is bounded and never panics on attacker input.
package wire

import (
	"encoding/binary"
	"errors"
	"slices"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
)

// Errors name what is wrong with the structure, never the values in it,
// which may be PHI.
var (
	ErrContextTooLarge = errors.New("encryption context serializes to more than 65535 bytes")
	ErrContextInvalid  = errors.New("encryption context is malformed (empty or non-UTF-8 key, non-UTF-8 value, or duplicate key)")
)

// AppendContext appends the ESDK serialization of ctx (data-format
// message-header "Key Value Pairs"): a 2-byte pair count, then for each pair,
// sorted by key bytes, 2-byte length + key and 2-byte length + value. An
// empty context serializes to nothing at all.
func AppendContext(dst []byte, ctx map[string]string) ([]byte, error) {
	if len(ctx) == 0 {
		return dst, nil
	}
	if len(ctx) > 0xffff {
		return nil, ErrContextTooLarge
	}
	var small [8]string
	keys := small[:0]
	size := 2
	for k, v := range ctx {
		if k == "" || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, ErrContextInvalid
		}
		if len(k) > 0xffff || len(v) > 0xffff {
			return nil, ErrContextTooLarge
		}
		size += 4 + len(k) + len(v)
		keys = append(keys, k)
	}
	if size > 0xffff {
		return nil, ErrContextTooLarge
	}
	slices.Sort(keys) // Go compares strings bytewise: UTF-8 byte order.
	dst = slices.Grow(dst, size)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(keys)))
	for _, k := range keys {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(k)))
		dst = append(dst, k...)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(ctx[k])))
		dst = append(dst, ctx[k]...)
	}
	return dst, nil
}

// ParseContext reads a serialized encryption context (without the outer
// length). Empty input is the empty context. Duplicate keys are refused; the
// order is not checked, because the bytes are authenticated as they stand.
func ParseContext(data []byte) (map[string]string, error) {
	ctx := map[string]string{}
	if len(data) == 0 {
		return ctx, nil
	}
	s := cryptobyte.String(data)
	var count uint16
	if !s.ReadUint16(&count) {
		return nil, ErrContextInvalid
	}
	if count == 0 && s.Empty() {
		// Some older SDKs wrote an empty context as a zero pair count.
		return ctx, nil
	}
	if count == 0 {
		return nil, ErrContextInvalid
	}
	for range count {
		var k, v cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&k) || !s.ReadUint16LengthPrefixed(&v) {
			return nil, ErrContextInvalid
		}
		key := string(k)
		if _, dup := ctx[key]; dup || key == "" || !utf8.Valid(k) || !utf8.Valid(v) {
			return nil, ErrContextInvalid
		}
		ctx[key] = string(v)
	}
	if !s.Empty() {
		return nil, ErrContextInvalid
	}
	return ctx, nil
}
