package blind

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"sync"
)

// KeySize is the length in bytes of index and pseudonym keys.
const KeySize = 32

// keyedMAC is HMAC-SHA-256 under one key, usable from many goroutines at
// once without allocating. Each pooled state is a crypto/hmac HMAC: after
// its first Reset it saves the SHA-256 states that follow the inner and
// outer padded key blocks, so a MAC costs no key blocks, only the message's
// and the outer hash's blocks (two compressions for a short value). Using
// crypto/hmac rather than a home-made HMAC keeps the computation inside the
// standard library's FIPS 140-3 module.
//
// The key sits behind a pointer so that fmt, printing a struct that holds an
// Index by value, shows an address rather than key bytes.
type keyedMAC struct {
	key  *[KeySize]byte
	pool sync.Pool // of *macState
}

// macState is one goroutine's HMAC, with room for its output and for a
// length prefix (pooled so that neither escapes to the heap per call).
type macState struct {
	h      hash.Hash
	sum    [sha256.Size]byte
	prefix [4]byte
}

func (m *keyedMAC) init(key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("%w (got %d bytes)", ErrKeySize, len(key))
	}
	m.key = new([KeySize]byte)
	copy(m.key[:], key)
	m.pool.New = func() any {
		st := &macState{h: hmac.New(sha256.New, m.key[:])}
		st.h.Reset() // saves the padded-key states
		return st
	}
	return nil
}

// get returns a state ready for the message.
func (m *keyedMAC) get() *macState { return m.pool.Get().(*macState) }

// finish returns the MAC of what was written to st. The result is valid
// until st is put back.
func (st *macState) finish() []byte { return st.h.Sum(st.sum[:0]) }

// put rewinds st to the padded key, which also overwrites the buffered tail
// of the last message, and returns it to the pool.
func (m *keyedMAC) put(st *macState) {
	st.h.Reset()
	clear(st.sum[:])
	m.pool.Put(st)
}
