package fieldenc

import "context"

// rowKeys are a struct's column keys under one branch key version,
// resolved once and shared by every row sealed under that version, so a
// row costs one lookup rather than one per field.
type rowKeys struct {
	vk   *versionKeys
	cols []*colKeys // per bound.cols; nil for a column no row needed yet
}

// keysUnder returns the column keys under vk of every field of the row
// that is not NULL (nil for the NULL ones not resolved before).
func (b *bound) keysUnder(ctx context.Context, vk *versionKeys, fields []sealing) ([]*colKeys, error) {
	rk := b.keys.Load()
	if rk != nil && rk.vk == vk && rk.covers(fields) {
		return rk.cols, nil
	}
	// Resolve the missing ones into a copy: the published one is shared.
	cols := make([]*colKeys, len(b.cols))
	if rk != nil && rk.vk == vk {
		copy(cols, rk.cols)
	}
	for i := range fields {
		if fields[i].null || cols[i] != nil {
			continue
		}
		ck, err := b.cols[i].keysFor(ctx, vk)
		if err != nil {
			return nil, err
		}
		cols[i] = ck
	}
	b.keys.Store(&rowKeys{vk: vk, cols: cols})
	return cols, nil
}

// covers reports whether rk holds the keys of every field that is not NULL.
func (rk *rowKeys) covers(fields []sealing) bool {
	for i := range fields {
		if !fields[i].null && rk.cols[i] == nil {
			return false
		}
	}
	return true
}

// aadBefore writes the column's AAD prefix into area just before at, where
// the row part of the AAD (docs/FORMAT.md §4: the row identity, length
// prefixed, or nothing) already ends area, and returns the whole AAD.
// Building the row part once per row leaves one short copy per field.
func (ck *colKeys) aadBefore(area []byte, at int) []byte {
	start := at - len(ck.aad)
	copy(area[start:], ck.aad)
	return area[start:]
}
