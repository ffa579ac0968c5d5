package s3crypt

import "testing"

func TestCopyRangesMeetS3Limits(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		start, end, part int64
		want             int // parts
	}{
		{5 * mib, 17 * mib, 5 * mib, 2},           // 5 + 7: the 2 MiB tail joins the part before it
		{5 * mib, 20 * mib, 5 * mib, 3},           // exact multiples
		{5 * mib, 9 * mib, 5 * mib, 1},            // one short last part is allowed
		{8 * mib, 5 << 40, 8 * mib, maxParts - 1}, // 5 TiB: parts grow to fit 9999
		{1, 2*maxPartSize + 2, maxPartSize, 3},    // a tail that cannot join a 5 GiB part splits it
	} {
		rs, err := copyRanges(c.start, c.end, c.part)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) > c.want || (c.want < 100 && len(rs) != c.want) {
			t.Errorf("%+v: %d parts, want %d", c, len(rs), c.want)
		}
		next := c.start
		for i, r := range rs {
			n := r.end - r.start
			if r.start != next || n <= 0 || n > maxPartSize || (i < len(rs)-1 && n < minPartSize) {
				t.Fatalf("%+v: part %d is [%d, %d)", c, i, r.start, r.end)
			}
			next = r.end
		}
		if next != c.end {
			t.Errorf("%+v: the parts end at %d", c, next)
		}
	}
	if rs, err := copyRanges(10, 10, 5<<20); err != nil || len(rs) != 0 {
		t.Errorf("empty range: %v %v", rs, err)
	}
}
