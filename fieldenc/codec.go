package fieldenc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/phicrypt/phicrypt/internal/alias"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"unicode/utf8"
	"unsafe"
)

// Codec seals and opens the PHI fields of struct type T in place, under one
// Table. NewCodec compiles T's tags once per Table (as encoding/json
// compiles a type once); a bad tag or an unsupported field type is an
// error then, naming the field and the tag. A Codec is safe for concurrent
// use.
type Codec[T any] struct {
	b *bound
}

// bound is a plan bound to a table's columns and indexes.
type bound struct {
	t       *Table
	p       *plan
	cols    []*Column               // per p.fields
	indexes []*blindIndex           // per p.indexes
	scratch sync.Pool               // *[]byte plaintext buffers
	keys    atomic.Pointer[rowKeys] // cols' keys under the last version sealed with
}

// NewCodec returns the Codec of T under t, compiling T on first use.
func NewCodec[T any](t *Table) (*Codec[T], error) {
	b, err := t.bind(reflect.TypeFor[T]())
	if err != nil {
		return nil, err
	}
	return &Codec[T]{b: b}, nil
}

// Check compiles T's tags without keys, for tests and start-up checks.
func Check[T any]() error {
	_, err := compile(reflect.TypeFor[T]())
	return err
}

func (t *Table) bind(typ reflect.Type) (*bound, error) {
	if b, ok := t.codecs.Load(typ); ok {
		return b.(*bound), nil
	}
	p, err := compile(typ)
	if err != nil {
		return nil, err
	}
	b := &bound{t: t, p: p, scratch: sync.Pool{New: func() any { return new([]byte) }}}
	for _, f := range p.fields {
		c, err := t.Column(f.column, f.kind)
		if err != nil {
			return nil, wrap(fmt.Sprintf("%v field %s", typ, f.path), err)
		}
		b.cols = append(b.cols, c)
	}
	for _, x := range p.indexes {
		bi, err := t.blindIndex(x.name, x.bits)
		if err != nil {
			return nil, err
		}
		b.indexes = append(b.indexes, bi)
	}
	actual, _ := t.codecs.LoadOrStore(typ, b)
	return actual.(*bound), nil
}

// Seal seals v's PHI fields in place and fills its blind indexes, all
// under one branch key version. Randomized fields are bound to v's rowid
// field, which must be set.
//
// Seal is all or nothing: it seals every field into memory of its own
// before it writes anything to v, so on error v is exactly as it was, every
// field and blind index included. Since encrypted fields are Sealed values,
// which refuse to be written to a database while they hold a plaintext
// that was never sealed (ErrNotSealed from Value), an INSERT of v after a
// failed Seal fails too and stores no plaintext. Check Seal's error anyway.
// A field that already holds a sealed form and its plaintext (after Open,
// or an earlier Seal) keeps that sealed form on error.
func (c *Codec[T]) Seal(ctx context.Context, v *T) error {
	if v == nil {
		return errors.New("fieldenc: Seal of a nil pointer")
	}
	_, err := c.b.seal(ctx, reflect.ValueOf(v).Elem(), nil)
	return err
}

// SealAppend is Seal with the sealed forms appended to dst, as
// cipher.AEAD.Seal appends, instead of written to memory of their own: v's
// encrypted fields then point into the returned slice, so a caller sealing
// row after row into one buffer allocates nothing for them (blind indexes
// still allocate their values). On error it returns nil and leaves v's
// fields as they were. When dst's room holds one of v's plaintexts, the
// sealed forms go to new memory instead, so a plaintext is never
// overwritten before it is sealed.
//
// The sealed forms belong to v: reuse the buffer (buf[:0]) for another row
// only once v's sealed values are no longer needed (v is written to the
// database, say), since sealing into it again overwrites them, even when
// that SealAppend fails.
func (c *Codec[T]) SealAppend(ctx context.Context, dst []byte, v *T) ([]byte, error) {
	if v == nil {
		return nil, errors.New("fieldenc: SealAppend of a nil pointer")
	}
	return c.b.seal(ctx, reflect.ValueOf(v).Elem(), dst)
}

// Open opens v's sealed fields in place. NULL fields stay NULL; in
// Migration mode, legacy plaintext is taken as it is.
func (c *Codec[T]) Open(ctx context.Context, v *T) error {
	if v == nil {
		return errors.New("fieldenc: Open of a nil pointer")
	}
	return c.b.open(ctx, reflect.ValueOf(v).Elem())
}

// Seal seals the struct v points to, compiling its type on first use, all
// or nothing as Codec.Seal.
func (t *Table) Seal(ctx context.Context, v any) error {
	rv, b, err := t.bindValue(v)
	if err != nil {
		return err
	}
	_, err = b.seal(ctx, rv, nil)
	return err
}

// Open opens the struct v points to, compiling its type on first use.
func (t *Table) Open(ctx context.Context, v any) error {
	rv, b, err := t.bindValue(v)
	if err != nil {
		return err
	}
	return b.open(ctx, rv)
}

func (t *Table) bindValue(v any) (reflect.Value, *bound, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return rv, nil, fmt.Errorf("fieldenc: want a non-nil pointer to a struct, not %T", v)
	}
	b, err := t.bind(rv.Elem().Type())
	return rv.Elem(), b, err
}

// field returns the field f of struct value sv; ok is false when a nil
// pointer to a nested struct is on the way (the field is absent).
func field(sv reflect.Value, f *fieldPlan) (reflect.Value, bool) {
	if len(f.index) == 1 { // the common case, without FieldByIndexErr's walk
		return sv.Field(f.index[0]), true
	}
	fv, err := sv.FieldByIndexErr(f.index)
	return fv, err == nil
}

func (b *bound) rowID(sv reflect.Value, dst []byte) ([]byte, error) {
	if b.p.rowID == nil {
		return dst, nil
	}
	fv, ok := field(sv, b.p.rowID)
	if !ok || fv.IsZero() {
		return nil, &FieldError{Path: b.p.rowID.path, Err: errors.New("the row identity is not set; set it before Seal and Open (it is bound into every randomized field)")}
	}
	if (fv.Kind() == reflect.String || fv.Kind() == reflect.Slice) && fv.Len() > MaxRowIDLen {
		return nil, &FieldError{Path: b.p.rowID.path, Err: ErrTooLarge}
	}
	out := rowIDBytes(fv, dst)
	if len(out)-len(dst) > MaxRowIDLen {
		return nil, &FieldError{Path: b.p.rowID.path, Err: ErrTooLarge}
	}
	return out, nil
}

// sealing is one field's plaintext while a struct is sealed.
type sealing struct {
	fv   reflect.Value  // the field, when reached through reflect
	at   unsafe.Pointer // the field's address, when direct
	pt   []byte         // a view of the field, or of the scratch buffer
	null bool
}

// seal seals the struct sv, appending the sealed forms to dst (which the
// fields then point into) and returning it; nil on error.
func (b *bound) seal(ctx context.Context, sv reflect.Value, dst []byte) ([]byte, error) {
	bp := b.scratch.Get().(*[]byte)
	// Sized once for everything a row writes here (row id, encoded
	// plaintexts of non-string types, nonces, one AAD), so the buffer never
	// moves and leaves an uncleared copy behind.
	buf := slices.Grow((*bp)[:0], b.p.scratchNeed(len(b.t.cfg.Table)))
	var err error
	if b.p.randomized {
		if buf, err = b.rowID(sv, buf); err != nil {
			return nil, err
		}
	}
	// The scratch may hold row ids and encoded plaintexts: clear all of it,
	// and the array it outgrew, when done (fields' views point into them).
	var outgrown []byte
	used := 0 // how much of the scratch this call wrote
	defer func() {
		clear(buf[:max(len(buf), used)])
		clear(outgrown)
		*bp = buf[:0]
		b.scratch.Put(bp)
	}()
	if err != nil {
		return nil, err
	}
	rowEnd := len(buf)
	var fieldsArr [16]sealing
	fields := fieldsArr[:len(b.p.fields)]
	if len(b.p.fields) > len(fieldsArr) {
		fields = make([]sealing, len(b.p.fields))
	}
	count := int64(0)
	base := sv.Addr().UnsafePointer()
	for i, f := range b.p.fields {
		s := &fields[i]
		*s = sealing{}
		ok := true
		if f.direct {
			s.at = unsafe.Add(base, f.offset)
			s.pt, buf, s.null, err = f.plainAt(s.at, buf)
		} else if s.fv, ok = field(sv, f); ok {
			s.pt, buf, s.null, err = f.access.plain(s.fv, buf)
		}
		s.null = s.null || !ok
		if ok {
			if err != nil {
				return nil, &FieldError{Path: f.path, Err: err}
			}
			if len(s.pt) > MaxPlaintext {
				return nil, &FieldError{Path: f.path, Err: ErrTooLarge}
			}
		}
		if !s.null {
			count++
		}
	}
	vk, err := b.t.takeActive(ctx, max(count, 1))
	if err != nil {
		return nil, err
	}
	// Room in the scratch buffer for every nonce (one read of crypto/rand
	// for the row) and for the longest AAD, built in turn for each field.
	n0, maxAAD := len(buf), b.p.aadLen(len(b.t.cfg.Table), rowEnd)
	if need := nonceLen*len(fields) + maxAAD; cap(buf)-len(buf) < need {
		outgrown = buf[:cap(buf)]
		buf = slices.Grow(buf, need)
	}
	buf = buf[:n0+nonceLen*len(fields)]
	nonces := buf[n0:]
	rand.Read(nonces)
	used = len(buf) + maxAAD
	// Each randomized field's AAD is its column's prefix then the row part
	// (the row identity, length-prefixed). The row part is written once, at
	// the end of the AAD area; each field's prefix goes just before it.
	aadArea := buf[len(buf):used:used]
	rowPart := len(aadArea)
	if rowEnd > 0 {
		rowPart -= 2 + rowEnd
		appendLenPrefixed(aadArea[rowPart:rowPart], buf[:rowEnd])
	}
	keys, err := b.keysUnder(ctx, vk, fields)
	if err != nil {
		return nil, err
	}
	// Seal everything into one buffer (dst's spare room, or new memory)
	// before writing anything, so an error leaves v as it was (Seal is all
	// or nothing); each field keeps a capped slice of it.
	size := 0
	for i := range fields {
		if !fields[i].null {
			size += b.cols[i].Overhead() + len(fields[i].pt)
		}
	}
	out := dst
	if cap(dst)-len(dst) < size || holdsPlaintext(dst[len(dst):len(dst)+size], fields) {
		out = make([]byte, len(dst), len(dst)+size)
		copy(out, dst)
	}
	var sealedArr [16][]byte
	sealed := sealedArr[:0]
	if len(fields) > len(sealedArr) {
		sealed = make([][]byte, 0, len(fields))
	}
	for i := range fields {
		if fields[i].null {
			sealed = append(sealed, nil)
			continue
		}
		ck, pt, start := keys[i], fields[i].pt, len(out)
		if b.cols[i].kind == Deterministic {
			out = ck.sealDeterministic(out, pt)
		} else {
			aad := ck.aadBefore(aadArea, rowPart)
			out = ck.sealWith(out, pt, nonces[i*nonceLen:(i+1)*nonceLen], aad)
		}
		sealed = append(sealed, out[start:len(out):len(out)])
	}
	macs, err := b.sums(ctx, vk, fields)
	if err != nil {
		return nil, err
	}
	// Nothing below fails: v is written whole.
	for i, x := range b.p.indexes {
		tv, ok := field(sv, x.target)
		switch {
		case !ok: // inside a nil nested struct: nowhere to put it
		case macs[i] == nil:
			x.enc.zero(tv)
		default:
			x.enc.set(tv, macs[i], x.bits)
		}
	}
	for i := range fields {
		if sealed[i] != nil {
			if f := b.p.fields[i]; f.direct {
				f.setSealedAt(fields[i].at, sealed[i])
			} else {
				f.access.setSealed(fields[i].fv, sealed[i])
			}
		}
	}
	return out, nil
}

// holdsPlaintext reports whether room shares memory with a plaintext of
// fields: sealing into it would overwrite a plaintext not yet sealed.
func holdsPlaintext(room []byte, fields []sealing) bool {
	for i := range fields {
		if !fields[i].null && alias.Overlap(room, fields[i].pt) {
			return true
		}
	}
	return false
}

// sums computes every blind index of the row under vk; nil where a source
// is NULL.
func (b *bound) sums(ctx context.Context, vk *versionKeys, fields []sealing) ([][]byte, error) {
	if len(b.p.indexes) == 0 {
		return nil, nil
	}
	macs := make([][]byte, len(b.p.indexes))
	for i, x := range b.p.indexes {
		values := make([][]byte, 0, len(x.sources))
		for j, src := range x.sources {
			s := fields[x.at[j]]
			if s.null {
				values = nil
				break
			}
			values = append(values, normalize(src, s.pt))
		}
		if values == nil {
			continue
		}
		mac, err := b.indexes[i].sum(ctx, vk, values)
		if err != nil {
			return nil, err
		}
		macs[i] = mac
	}
	return macs, nil
}

func normalize(f *fieldPlan, pt []byte) []byte {
	if f.norm == nil {
		return pt
	}
	return f.norm(nil, pt)
}

// legacyError says why a value that is not sealed was refused: for binary
// values (not UTF-8 text), what parsing found (an unknown version, a short
// value).
func legacyError(bin []byte) error {
	if !utf8.Valid(bin) {
		if _, err := parse(bin); err != nil {
			return err
		}
	}
	return ErrMalformed
}

// sum is one index value over already-normalized source values.
func (x *blindIndex) sum(ctx context.Context, vk *versionKeys, values [][]byte) ([]byte, error) {
	idx, err := x.under(ctx, vk)
	if err != nil {
		return nil, err
	}
	if len(values) == 1 {
		return idx.Sum(nil, values[0])
	}
	return idx.SumCompound(nil, values...)
}

func (b *bound) open(ctx context.Context, sv reflect.Value) error {
	var rowBuf [64]byte
	var rowID []byte
	if b.p.randomized {
		var err error
		if rowID, err = b.rowID(sv, rowBuf[:0]); err != nil {
			return err
		}
	}
	opened := make([][]byte, len(b.p.fields))
	for i, f := range b.p.fields {
		fv, ok := field(sv, f)
		if !ok {
			continue
		}
		bin, legacy, null := f.access.stored(fv)
		if null {
			continue
		}
		if legacy {
			if !b.t.cfg.Migration {
				return &FieldError{Path: f.path, Err: legacyError(bin)}
			}
			if err := f.access.setLegacy(fv, bin); err != nil {
				return &FieldError{Path: f.path, Err: err}
			}
			continue
		}
		pt, err := b.cols[i].Open(ctx, []byte{}, bin, rowID)
		if err != nil {
			return &FieldError{Path: f.path, Err: err}
		}
		opened[i] = pt
	}
	for i, f := range b.p.fields {
		if opened[i] == nil {
			continue
		}
		fv, _ := field(sv, f)
		if err := f.access.setPlain(fv, opened[i]); err != nil {
			return &FieldError{Path: f.path, Err: err}
		}
	}
	return nil
}
