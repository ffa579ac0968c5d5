package fieldenc

import (
	"context"
	"fmt"
	"reflect"
	"time"
)

// Search that survives rotation: while several branch key versions are
// live, rows sealed under each are in the table, so an equality search
// asks for the value under every live version: WHERE col IN (...).

// IndexValues returns the values of blind index name for the given source
// values (one per source field, in declaration order, typed as the fields'
// plaintexts) under every live version, active first: use them in
// WHERE index_column IN (...). Each value has the index field's Go type.
func (c *Codec[T]) IndexValues(ctx context.Context, name string, values ...any) ([]any, error) {
	b := c.b
	for i, x := range b.p.indexes {
		if x.name != name {
			continue
		}
		if len(values) != len(x.sources) {
			return nil, fmt.Errorf("fieldenc: blind index %s covers %d fields, not %d", name, len(x.sources), len(values))
		}
		enc := make([][]byte, len(values))
		for j, src := range x.sources {
			pt, err := encodeQuery(src, values[j])
			if err != nil {
				return nil, err
			}
			enc[j] = normalize(src, pt)
		}
		return b.eachLive(ctx, func(vk *versionKeys) (any, error) {
			mac, err := b.indexes[i].sum(ctx, vk, enc)
			if err != nil {
				return nil, err
			}
			return x.enc.value(mac, x.bits), nil
		})
	}
	return nil, fmt.Errorf("fieldenc: %v has no blind index %s", b.p.typ, name)
}

// EqualValues returns what deterministic field path (its Go path, for
// example "MRN") holds for value under every live version, active first,
// in the text form a Sealed value writes: use them in WHERE column IN (...).
func (c *Codec[T]) EqualValues(ctx context.Context, path string, value any) ([]any, error) {
	b := c.b
	for i, f := range b.p.fields {
		if f.path != path {
			continue
		}
		if f.kind != Deterministic {
			return nil, fmt.Errorf("fieldenc: field %s is not deterministic; search it through a blind index", path)
		}
		pt, err := encodeQuery(f, value)
		if err != nil {
			return nil, err
		}
		return b.eachLive(ctx, func(vk *versionKeys) (any, error) {
			ck, err := b.cols[i].keysFor(ctx, vk)
			if err != nil {
				return nil, err
			}
			return string(appendText(nil, ck.sealDeterministic(nil, pt))), nil
		})
	}
	return nil, fmt.Errorf("fieldenc: %v has no encrypted field %s", b.p.typ, path)
}

// eachLive calls f under every live version, active first.
func (b *bound) eachLive(ctx context.Context, f func(*versionKeys) (any, error)) ([]any, error) {
	ls, err := b.t.liveVersions(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(ls.versions))
	for _, lv := range ls.versions {
		vk, err := b.t.openVersion(ctx, lv.version)
		if err != nil {
			return nil, err
		}
		v, err := f(vk)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// encodeQuery encodes a query value as field f's plaintext.
func encodeQuery(f *fieldPlan, v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	if rv.IsValid() && (rv.Kind() == reflect.String || rv.Kind() == reflect.Slice) && rv.Len() > MaxPlaintext {
		return nil, fmt.Errorf("%w: a field plaintext is at most %d bytes", ErrTooLarge, MaxPlaintext)
	}
	if !rv.IsValid() || rv.Type().Kind() != f.typ.Kind() || (f.typ == timeType) != (rv.Type() == timeType) {
		return nil, fmt.Errorf("fieldenc: field %s holds %v; the query value is a %T", f.path, f.typ, v)
	}
	if t, ok := v.(time.Time); ok {
		return appendEncoded(nil, &t), nil
	}
	switch rv.Kind() {
	case reflect.String:
		s := rv.String()
		return appendEncoded(nil, &s), nil
	case reflect.Slice:
		b := rv.Bytes()
		return appendEncoded(nil, &b), nil
	case reflect.Bool:
		x := rv.Bool()
		return appendEncoded(nil, &x), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		x := rv.Int()
		return appendEncoded(nil, &x), nil
	}
	x := rv.Uint()
	return appendEncoded(nil, &x), nil
}
