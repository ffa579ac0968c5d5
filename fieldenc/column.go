package fieldenc

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"github.com/phicrypt/phicrypt/internal/alias"
	"sync"
	"sync/atomic"

	"github.com/phicrypt/phicrypt/internal/siv"
)

// Kind is how a column is sealed. The zero value is not a kind.
type Kind uint8

const (
	// Randomized: AES-256-GCM with a random nonce; equal plaintexts give
	// unrelated ciphertexts. The default, and the only kind bound to a row.
	Randomized Kind = iota + 1
	// Deterministic: AES-SIV (RFC 5297); equal plaintexts give equal
	// ciphertexts within one column and key version, so the column can be
	// searched for equality (and its equal values are visible as such).
	Deterministic
)

// Column seals and opens one column's values. Get one with Table.Column;
// it is safe for concurrent use and allocation-free on the hot path.
type Column struct {
	t    *Table
	name string
	kind Kind

	active atomic.Pointer[colKeys] // the active version's keys: the fast path
	keys   versionCache[*colKeys]  // every version in use
}

// colKeys are one column's keys under one branch key version.
type colKeys struct {
	vk   *versionKeys
	gcm  cipher.AEAD
	det  *siv.Bound // AES-SIV bound to aad (Deterministic columns)
	aad  []byte     // version byte || ref || table || column: the AAD prefix
	pool *sync.Pool
}

// Column returns the column called name (bound into its key and AAD; keep
// it stable) sealed as kind.
func (t *Table) Column(name string, kind Kind) (*Column, error) {
	if err := checkName("column", name); err != nil {
		return nil, err
	}
	if kind != Randomized && kind != Deterministic {
		return nil, fmt.Errorf("fieldenc: column %s: no such Kind %d", name, kind)
	}
	key := string(rune('0'+kind)) + name
	if c, ok := t.columns.Load(key); ok {
		return c.(*Column), nil
	}
	c, _ := t.columns.LoadOrStore(key, &Column{t: t, name: name, kind: kind})
	return c.(*Column), nil
}

// Name returns the column's name.
func (c *Column) Name() string { return c.name }

// Overhead is how many bytes the binary form adds to a plaintext.
func (c *Column) Overhead() int {
	if c.kind == Deterministic {
		return determined
	}
	return randomized
}

// Seal appends the binary sealed form of plaintext to dst, bound to rowID
// (ignored by Deterministic columns; nil when the row has no identity).
// A dst whose spare capacity holds plaintext (the crypto/cipher idiom
// plaintext[:0]) is not written over, since the header comes first: the
// sealed form then goes to a new array, after a copy of dst.
func (c *Column) Seal(ctx context.Context, dst, plaintext, rowID []byte) ([]byte, error) {
	if alias.Overlap(alias.Room(dst), plaintext) {
		dst = dst[:len(dst):len(dst)] // the first append moves it
	}
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("%w: a field plaintext is at most %d bytes", ErrTooLarge, MaxPlaintext)
	}
	if len(rowID) > MaxRowIDLen {
		return nil, fmt.Errorf("%w: a row identity is at most %d bytes", ErrTooLarge, MaxRowIDLen)
	}
	ck := c.active.Load()
	if ck == nil || ck.vk.expired.Load() || ck.vk.remaining.Add(-1) < 0 {
		var err error
		if ck, err = c.refreshActive(ctx); err != nil {
			return nil, err
		}
	}
	if c.kind == Deterministic {
		return ck.sealDeterministic(dst, plaintext), nil
	}
	return ck.sealRandomized(dst, plaintext, rowID), nil
}

func (ck *colKeys) sealRandomized(dst, plaintext, rowID []byte) []byte {
	var nonce [nonceLen]byte
	rand.Read(nonce[:])
	aad, bp := ck.aadFor(rowID)
	dst = ck.sealWith(dst, plaintext, nonce[:], aad)
	ck.putAAD(bp)
	return dst
}

// sealWith appends the randomized form of plaintext under the given nonce
// (fresh from crypto/rand) and AAD.
func (ck *colKeys) sealWith(dst, plaintext, nonce, aad []byte) []byte {
	ret, out := grow(dst, randomized+len(plaintext))
	// Copies of fixed size compile to a few moves, not calls of memmove
	// (twenty calls in a row of ten fields).
	*(*[headerLen]byte)(out) = [headerLen]byte(ck.aad)
	*(*[nonceLen]byte)(out[headerLen:]) = [nonceLen]byte(nonce)
	ck.gcm.Seal(out[:headerLen+nonceLen], out[headerLen:headerLen+nonceLen], plaintext, aad)
	return ret
}

// appendAAD appends the AAD for rowID to dst.
func (ck *colKeys) appendAAD(dst, rowID []byte) []byte {
	dst = append(dst, ck.aad...)
	if len(rowID) == 0 {
		return dst
	}
	return appendLenPrefixed(dst, rowID)
}

func (ck *colKeys) sealDeterministic(dst, plaintext []byte) []byte {
	ret, out := grow(dst, determined+len(plaintext))
	*(*[headerLen]byte)(out) = [headerLen]byte(ck.aad)
	ck.det.Seal(out[:headerLen], plaintext)
	return ret
}

// aadFor returns the AAD for rowID: the column's prefix, then the row
// identity length-prefixed. Without a row the prefix itself serves; with
// one, a pooled buffer does (returned with putAAD), so the hot path
// allocates nothing.
func (ck *colKeys) aadFor(rowID []byte) ([]byte, *[]byte) {
	if len(rowID) == 0 {
		return ck.aad, nil
	}
	bp := ck.pool.Get().(*[]byte)
	*bp = appendLenPrefixed(append((*bp)[:0], ck.aad...), rowID)
	return *bp, bp
}

func (ck *colKeys) putAAD(bp *[]byte) {
	if bp != nil {
		clear(*bp) // the row id
		ck.pool.Put(bp)
	}
}

// Open appends the plaintext of the sealed binary value to dst; rowID must
// be what it was sealed with.
func (c *Column) Open(ctx context.Context, dst, sealed, rowID []byte) ([]byte, error) {
	// The fast path: a well-formed value under the active version.
	if ck := c.active.Load(); ck != nil && len(sealed) >= c.Overhead() && len(sealed) <= maxSealed &&
		len(rowID) <= MaxRowIDLen && sealed[0] == c.version() && keyRef(sealed[1:headerLen]) == ck.vk.ref && !ck.vk.expired.Load() {
		// The kind settles the version: no parsed value to build and pass.
		if out, err := ck.openBody(dst, c.kind == Deterministic, sealed[headerLen:], rowID); err == nil {
			return out, nil
		}
	}
	p, err := parse(sealed)
	if err != nil {
		return nil, err
	}
	if want := c.version(); p.version != want {
		return nil, fmt.Errorf("%w: the column is %s, the value is not", ErrWrongField, c.kind)
	}
	if len(rowID) > MaxRowIDLen {
		return nil, ErrWrongField
	}
	return c.openSlow(ctx, dst, p, rowID)
}

func (c *Column) version() byte {
	if c.kind == Deterministic {
		return versionDeterministic
	}
	return versionRandomized
}

func (ck *colKeys) open(dst []byte, p parsed, rowID []byte) ([]byte, error) {
	return ck.openBody(dst, p.version == versionDeterministic, p.body, rowID)
}

// openBody opens a value's body (all after the header), deterministic or
// randomized.
func (ck *colKeys) openBody(dst []byte, deterministic bool, body, rowID []byte) ([]byte, error) {
	if deterministic {
		out, err := ck.det.Open(dst, body)
		if err != nil {
			return nil, ErrWrongField
		}
		return out, nil
	}
	aad, bp := ck.aadFor(rowID)
	out, err := ck.gcm.Open(dst, body[:nonceLen], body[nonceLen:], aad)
	ck.putAAD(bp)
	if err != nil {
		return nil, ErrWrongField
	}
	return out, nil
}

// openSlow tries every live version whose key reference matches, reading
// the live versions again (rate-limited) when none does.
func (c *Column) openSlow(ctx context.Context, dst []byte, p parsed, rowID []byte) ([]byte, error) {
	ls, err := c.t.liveVersions(ctx)
	if err != nil {
		return nil, err
	}
	for {
		out, found, err := c.openUnder(ctx, ls, dst, p, rowID)
		if found || err != nil {
			return out, err
		}
		if err := ls.destroyedError(p.ref); err != nil {
			return nil, err
		}
		var again bool
		if ls, again, err = c.t.rereadLive(ctx, ls); err != nil {
			return nil, err
		}
		if !again {
			return nil, ErrUnknownKey
		}
	}
}

// openUnder tries the versions of ls that match p's key reference; found
// reports whether any did.
func (c *Column) openUnder(ctx context.Context, ls *liveSet, dst []byte, p parsed, rowID []byte) (out []byte, found bool, err error) {
	for _, lv := range ls.versions {
		if lv.ref != p.ref {
			continue
		}
		found = true
		ck, err := c.decryptKeys(ctx, lv.version)
		if err != nil {
			return nil, true, err
		}
		if out, err := ck.open(dst, p, rowID); err == nil {
			return out, true, nil
		}
	}
	if found {
		return nil, true, ErrWrongField
	}
	return nil, false, nil
}

// decryptKeys returns the column's keys under version, deriving them once
// per keyring cache lifetime.
func (c *Column) decryptKeys(ctx context.Context, version string) (*colKeys, error) {
	if ck, ok := c.keys.lookupVersion(version); ok {
		return ck, nil
	}
	vk, err := c.t.openVersion(ctx, version)
	if err != nil {
		return nil, err
	}
	return c.keysFor(ctx, vk)
}

// keysFor returns the column's keys under vk, derived once per vk.
func (c *Column) keysFor(ctx context.Context, vk *versionKeys) (*colKeys, error) {
	if ck := c.active.Load(); ck != nil && ck.vk == vk {
		return ck, nil
	}
	// A hit returns before the closure below is made: it escapes, and
	// would cost an allocation per field sealed.
	if ck, ok := c.keys.lookup(vk); ok {
		return ck, nil
	}
	return c.keys.get(ctx, vk, func(ctx context.Context) (*colKeys, error) { return c.derive(ctx, vk) })
}

// refreshActive moves the column to the table's active version, with one
// encryption reserved.
func (c *Column) refreshActive(ctx context.Context) (*colKeys, error) {
	vk, err := c.t.takeActive(ctx, 1)
	if err != nil {
		return nil, err
	}
	ck, err := c.keysFor(ctx, vk)
	if err != nil {
		return nil, err
	}
	c.active.Store(ck)
	return ck, nil
}

// derive makes the column's keys under vk.
func (c *Column) derive(ctx context.Context, vk *versionKeys) (*colKeys, error) {
	ck, err := newColKeys(c.kind, vk.ref, c.t.cfg.Table, c.name, func(out []byte, purpose byte) error {
		return c.t.deriveKey(ctx, vk.version, out, purpose, c.name)
	})
	if err != nil {
		return nil, err
	}
	ck.vk = vk
	return ck, nil
}

// newColKeys builds a column's keys and AAD prefix (docs/FORMAT.md §4);
// derive fills a key for a purpose from the branch key version.
func newColKeys(kind Kind, ref keyRef, table, column string, derive func(out []byte, purpose byte) error) (*colKeys, error) {
	ck := &colKeys{}
	version := versionRandomized
	if kind == Deterministic {
		version = versionDeterministic
	}
	ck.aad = append([]byte{version}, ref[:]...)
	ck.aad = appendLenPrefixed(ck.aad, []byte(table))
	ck.aad = appendLenPrefixed(ck.aad, []byte(column))
	if kind == Deterministic {
		var key [64]byte
		defer clear(key[:])
		if err := derive(key[:], purposeDeterministic); err != nil {
			return nil, err
		}
		s, err := siv.New(key[:])
		if err != nil {
			return nil, err
		}
		// The AAD is fixed per column and key version: S2V's share of it
		// is computed here once, not for every value.
		ck.det = s.Bind(ck.aad)
		return ck, nil
	}
	var key [32]byte
	defer clear(key[:])
	if err := derive(key[:], purposeRandomized); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	if ck.gcm, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	size := len(ck.aad) + 2 + MaxRowIDLen
	ck.pool = &sync.Pool{New: func() any { b := make([]byte, 0, size); return &b }}
	return ck, nil
}

// String names the kind.
func (k Kind) String() string {
	switch k {
	case Randomized:
		return "randomized"
	case Deterministic:
		return "deterministic"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// grow returns dst extended by n bytes, and those n bytes.
func grow(dst []byte, n int) (ret, out []byte) {
	total := len(dst) + n
	if cap(dst) >= total {
		ret = dst[:total]
	} else {
		ret = make([]byte, total)
		copy(ret, dst)
	}
	return ret, ret[len(dst):]
}
