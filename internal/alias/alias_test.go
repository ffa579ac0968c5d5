package alias

import "testing"

func TestOverlap(t *testing.T) {
	buf := make([]byte, 10, 20)
	for _, c := range []struct {
		x, y []byte
		want bool
	}{
		{buf[0:5], buf[4:6], true},
		{buf[0:5], buf[5:10], false},
		{buf[5:10], buf[0:5], false},
		{buf[2:3], buf[0:10], true},
		{buf[0:0], buf[0:10], false},
		{Room(buf), buf[:10], false},
		{Room(buf[:0]), buf[:10], true},
		{Room(buf[:5]), buf[6:8], true},
		{make([]byte, 4), buf, false},
	} {
		if got := Overlap(c.x, c.y); got != c.want {
			t.Errorf("Overlap(%p+%d, %p+%d) = %t, want %t", c.x, len(c.x), c.y, len(c.y), got, c.want)
		}
	}
}
