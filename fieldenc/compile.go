package fieldenc

import (
	"fmt"
	"reflect"
	"time"
	"unsafe"

	"github.com/phicrypt/phicrypt/internal/blind"
)

// plan is a struct type compiled from its tags, independent of any keys.
type plan struct {
	typ     reflect.Type
	fields  []*fieldPlan // encrypted fields, in declaration order
	rowID   *fieldPlan
	indexes []*indexPlan
	// randomized: some field is Randomized, so Seal and Open need the row
	// identity (when the struct names one).
	randomized bool
	// longestColumn is the longest column name (it sizes the AAD).
	longestColumn int
}

// fieldPlan is one tagged field.
type fieldPlan struct {
	path   string // Go path, for example "Address.Street"
	index  []int  // reflect index path (nested structs, possibly through pointers)
	column string
	kind   Kind
	access access
	norm   blind.Normalizer
	typ    reflect.Type // the plaintext type: the T of Sealed[T]
	// direct: the field is reached from the struct without a pointer, at
	// offset; Seal then reads and writes it without reflect.
	direct bool
	offset uintptr
	at     func(unsafe.Pointer) sealedField // the field's Sealed at its address (after the pointer, if any)
}

// indexPlan is one blind index: its sources in declaration order and the
// field that receives it.
type indexPlan struct {
	name    string
	bits    int
	sources []*fieldPlan
	at      []int // each source's position in plan.fields
	target  *fieldPlan
	enc     indexEncoding
}

var (
	timeType        = reflect.TypeFor[time.Time]()
	sealedFieldType = reflect.TypeFor[sealedField]()
)

// compile builds the plan of struct type typ. Errors name the field and
// its tag.
func compile(typ reflect.Type) (*plan, error) {
	if typ.Kind() != reflect.Struct {
		return nil, fmt.Errorf("fieldenc: %v is not a struct type", typ)
	}
	p := &plan{typ: typ}
	targets := map[string]*fieldPlan{}
	if err := p.walk(typ, nil, "", targets, 0); err != nil {
		return nil, err
	}
	return p, p.linkIndexes(targets)
}

// maxDepth bounds nested structs (and recursive pointer types).
const maxDepth = 8

func (p *plan) walk(typ reflect.Type, index []int, prefix string, targets map[string]*fieldPlan, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("fieldenc: %v: structs nested deeper than %d", p.typ, maxDepth)
	}
	for i := range typ.NumField() {
		sf := typ.Field(i)
		path := prefix + sf.Name
		idx := append(append([]int(nil), index...), i)
		tag, tagged := sf.Tag.Lookup("phi")
		if !sf.IsExported() {
			if tagged {
				return fieldErr(p.typ, path, tag, "the field is not exported")
			}
			continue
		}
		if !tagged {
			if st := structOf(sf.Type); st != nil && st != timeType && !reflect.PointerTo(st).Implements(sealedFieldType) {
				if err := p.walk(st, idx, path+".", targets, depth+1); err != nil {
					return err
				}
			}
			continue
		}
		spec, err := parseTag(tag)
		if err != nil {
			return fieldErr(p.typ, path, tag, err.Error())
		}
		if err := p.add(sf, idx, path, tag, spec, targets); err != nil {
			return err
		}
	}
	return nil
}

// structOf is the struct type t or *t names, if any.
func structOf(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct {
		return t
	}
	return nil
}

func (p *plan) add(sf reflect.StructField, idx []int, path, tag string, spec tagSpec, targets map[string]*fieldPlan) error {
	switch {
	case spec.skip:
		return nil
	case spec.rowID:
		if p.rowID != nil {
			return fieldErr(p.typ, path, tag, "a second rowid (the row identity is "+p.rowID.path+")")
		}
		if !rowIDType(sf.Type) {
			return fieldErr(p.typ, path, tag, fmt.Sprintf("a rowid is a string, []byte or integer, not %v", sf.Type))
		}
		p.rowID = &fieldPlan{path: path, index: idx}
		return nil
	case spec.target != "":
		enc, ok := indexEncodingOf(sf.Type)
		if !ok {
			return fieldErr(p.typ, path, tag, fmt.Sprintf("a blind index field is []byte, string (hex) or int64, not %v", sf.Type))
		}
		if targets[spec.target] != nil {
			return fieldErr(p.typ, path, tag, "a second field receives blind index "+spec.target)
		}
		targets[spec.target] = &fieldPlan{path: path, index: idx, access: access{enc: enc}}
		return nil
	}
	acc, pt, err := accessOf(sf.Type)
	if err != nil {
		return fieldErr(p.typ, path, tag, err.Error())
	}
	f := &fieldPlan{path: path, index: idx, column: path, kind: Randomized, access: acc, norm: spec.normalize, typ: pt}
	if spec.column != "" {
		f.column = spec.column
	}
	if spec.deterministic {
		f.kind = Deterministic
	}
	if spec.normalize != nil && pt.Kind() != reflect.String && pt != bytesType {
		return fieldErr(p.typ, path, tag, fmt.Sprintf("normalize applies to strings and bytes, not %v", pt))
	}
	for _, other := range p.fields {
		if other.column == f.column {
			return fieldErr(p.typ, path, tag, "column "+f.column+" is also field "+other.path)
		}
	}
	if len(p.fields) == MaxFieldsPerSeal {
		return fieldErr(p.typ, path, tag, fmt.Sprintf("a struct seals at most %d fields", MaxFieldsPerSeal))
	}
	f.offset, f.direct = directOffset(p.typ, idx)
	st := sf.Type
	if acc.ptr {
		st = st.Elem()
	}
	f.at = reflect.New(st).Interface().(sealedField).at()
	p.fields = append(p.fields, f)
	p.randomized = p.randomized || f.kind == Randomized
	p.longestColumn = max(p.longestColumn, len(f.column))
	for _, ref := range spec.indexes {
		if err := p.addSource(ref, f, tag); err != nil {
			return err
		}
	}
	return nil
}

func (p *plan) addSource(ref indexRef, f *fieldPlan, tag string) error {
	for _, x := range p.indexes {
		if x.name != ref.name {
			continue
		}
		if x.bits != ref.bits {
			return fieldErr(p.typ, f.path, tag, fmt.Sprintf("blind index %s has %d bits elsewhere", ref.name, x.bits))
		}
		if len(x.sources) == MaxIndexSources {
			return fieldErr(p.typ, f.path, tag, fmt.Sprintf("blind index %s covers at most %d fields", ref.name, MaxIndexSources))
		}
		x.sources, x.at = append(x.sources, f), append(x.at, len(p.fields)-1)
		return nil
	}
	p.indexes = append(p.indexes, &indexPlan{name: ref.name, bits: ref.bits, sources: []*fieldPlan{f}, at: []int{len(p.fields) - 1}})
	return nil
}

func (p *plan) linkIndexes(targets map[string]*fieldPlan) error {
	for _, x := range p.indexes {
		t := targets[x.name]
		if t == nil {
			return fmt.Errorf("fieldenc: %v: blind index %s has no field tagged phi:\"index=%s\" to receive it", p.typ, x.name, x.name)
		}
		if t.access.enc == indexInt64 && x.bits > 63 {
			return fieldErr(p.typ, t.path, "index="+x.name, fmt.Sprintf("an int64 holds at most 63 bits of index, not %d", x.bits))
		}
		x.target, x.enc = t, t.access.enc
		delete(targets, x.name)
	}
	for name, t := range targets {
		return fieldErr(p.typ, t.path, "index="+name, "no encrypted field names blind index "+name)
	}
	return nil
}

// directOffset is the offset of the field at index from the start of a
// typ, if no pointer lies on the way.
func directOffset(typ reflect.Type, index []int) (uintptr, bool) {
	var off uintptr
	for n, i := range index {
		sf := typ.Field(i)
		off += sf.Offset
		typ = sf.Type
		if n < len(index)-1 && typ.Kind() != reflect.Struct {
			return 0, false
		}
	}
	return off, true
}

// scratchNeed bounds what one Seal writes to its scratch buffer: the row
// id, each field's encoded plaintext when it is not read in place (at most
// 12 bytes: a time), a nonce per field and the longest AAD.
func (p *plan) scratchNeed(tableLen int) int {
	return MaxRowIDLen + len(p.fields)*(12+nonceLen) + p.aadLen(tableLen, MaxRowIDLen)
}

// aadLen bounds the AAD of any field of the plan.
func (p *plan) aadLen(tableLen, rowIDLen int) int {
	return headerLen + 2 + tableLen + 2 + p.longestColumn + 2 + rowIDLen
}

func fieldErr(typ reflect.Type, path, tag, problem string) error {
	return fmt.Errorf("fieldenc: %v field %s, tag phi:%q: %s", typ, path, tag, problem)
}

func rowIDType(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return t == bytesType
}
