package audit

import (
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf8"
)

// recordVersion is the first byte of every record (see the package doc).
const recordVersion = 1

const (
	flagKey     = 1 << 0
	flagContext = 1 << 1
)

// MaxRecordSize bounds an encoded record: the fixed fields, two digests
// and every string at its cap.
const MaxRecordSize = 1 + 8 + 8 + 1 + 1 + 32 + 32 +
	2 + MaxActor + 2 + MaxOperation + 2 + MaxReason + 1 + MaxApprovers*(2+MaxActor)

// Record is an event with its position in the log.
type Record struct {
	Index int64
	Event
}

// encodeRecord appends the version 1 encoding of e at index to dst.
func encodeRecord(dst []byte, index int64, e Event) ([]byte, error) {
	if err := checkEvent(e); err != nil {
		return nil, err
	}
	dst = append(dst, recordVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(index))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Time.UnixNano()))
	dst = append(dst, byte(e.Kind))
	var flags byte
	if e.Key.set {
		flags |= flagKey
	}
	if e.Context.set {
		flags |= flagContext
	}
	dst = append(dst, flags)
	if e.Key.set {
		dst = append(dst, e.Key.sum[:]...)
	}
	if e.Context.set {
		dst = append(dst, e.Context.sum[:]...)
	}
	for _, s := range []string{e.Actor, e.Operation, e.Reason} {
		dst = appendString(dst, s)
	}
	dst = append(dst, byte(len(e.Approvers)))
	for _, a := range e.Approvers {
		dst = appendString(dst, a)
	}
	return dst, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// checkEvent enforces the caps and what the encoding can hold. The error
// names the field, never its value.
func checkEvent(e Event) error {
	if _, ok := kindNames[e.Kind]; !ok {
		return fmt.Errorf("audit: event kind %d is not a Kind constant", e.Kind)
	}
	if e.Time.IsZero() || !time.Unix(0, e.Time.UnixNano()).Equal(e.Time) {
		return fmt.Errorf("audit: the event's time is unset or outside the years 1678 to 2261")
	}
	fields := []struct {
		name string
		s    string
		max  int
	}{{"actor", e.Actor, MaxActor}, {"operation", e.Operation, MaxOperation}, {"reason", e.Reason, MaxReason}}
	for _, a := range e.Approvers {
		fields = append(fields, struct {
			name string
			s    string
			max  int
		}{"approver", a, MaxActor})
	}
	for _, f := range fields {
		if len(f.s) > f.max {
			return fmt.Errorf("%w: %s is %d bytes, the cap is %d", ErrFieldTooLarge, f.name, len(f.s), f.max)
		}
		if !utf8.ValidString(f.s) {
			return fmt.Errorf("audit: the %s is not valid UTF-8", f.name)
		}
	}
	if len(e.Approvers) > MaxApprovers {
		return fmt.Errorf("%w: %d approvers, the cap is %d", ErrFieldTooLarge, len(e.Approvers), MaxApprovers)
	}
	return nil
}

// ParseRecord decodes a version 1 record, refusing anything that is not
// the one canonical encoding of an event.
func ParseRecord(b []byte) (Record, error) {
	if len(b) > MaxRecordSize {
		return Record{}, fmt.Errorf("%w: %d bytes, the cap is %d", ErrMalformedRecord, len(b), MaxRecordSize)
	}
	d := decoder{b: b, ok: true}
	if v := d.byte(); v != recordVersion && d.ok {
		return Record{}, fmt.Errorf("%w: version %d, this package reads version %d", ErrMalformedRecord, v, recordVersion)
	}
	var r Record
	r.Index = int64(d.uint64())
	r.Time = time.Unix(0, int64(d.uint64())).UTC()
	r.Kind = Kind(d.byte())
	flags := d.byte()
	if flags&flagKey != 0 {
		r.Key = sumOf(d.take(32))
	}
	if flags&flagContext != 0 {
		r.Context = sumOf(d.take(32))
	}
	r.Actor, r.Operation, r.Reason = d.string(), d.string(), d.string()
	if n := int(d.byte()); n > 0 {
		r.Approvers = make([]string, 0, min(n, MaxApprovers))
		for range n {
			r.Approvers = append(r.Approvers, d.string())
		}
	}
	switch {
	case !d.ok:
		return Record{}, fmt.Errorf("%w: it ends early", ErrMalformedRecord)
	case len(d.b) != 0:
		return Record{}, fmt.Errorf("%w: %d trailing bytes", ErrMalformedRecord, len(d.b))
	case flags&^(flagKey|flagContext) != 0:
		return Record{}, fmt.Errorf("%w: unknown flags", ErrMalformedRecord)
	case r.Index < 0:
		return Record{}, fmt.Errorf("%w: negative index", ErrMalformedRecord)
	}
	if err := checkEvent(r.Event); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrMalformedRecord, err)
	}
	return r, nil
}

// decoder reads big-endian fields; ok turns false at the first short read
// and stays false.
type decoder struct {
	b  []byte
	ok bool
}

func (d *decoder) take(n int) []byte {
	if len(d.b) < n {
		d.ok, d.b = false, nil
		return make([]byte, n)
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) byte() byte     { return d.take(1)[0] }
func (d *decoder) uint64() uint64 { return binary.BigEndian.Uint64(d.take(8)) }
func (d *decoder) string() string { return string(d.take(int(binary.BigEndian.Uint16(d.take(2))))) }
