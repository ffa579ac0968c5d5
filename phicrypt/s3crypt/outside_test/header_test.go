package outside_test

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/phicrypt/phicrypt/internal/s3test"
)

// TestLargeHeaderWithLyingMetadata: a header larger than the first fetch
// (a big encryption context), with the recorded header length removed,
// too small, or too large, is still opened and read right.
func TestLargeHeaderWithLyingMetadata(t *testing.T) {
	env := s3test.New(t)
	r := newRig(t, env, 4096)
	ctx := context.Background()
	// KMS caps its encryption context (8 KiB); a raw AES keyring does not.
	kr, _, _ := rawAES(t, "big")
	c := clientFor(t, r, kr)
	for _, ctxBytes := range []int{6000, 30000, 60000} {
		ec := map[string]string{}
		for i := 0; i < ctxBytes/1000; i++ {
			ec[fmt.Sprintf("k%02d", i)] = strings.Repeat("v", 990)
		}
		key := fmt.Sprintf("big/%d", ctxBytes)
		pt := rnd(20000)
		if _, err := c.Put(ctx, r.bucket, key, bytes.NewReader(pt), ec, nil); err != nil {
			t.Fatal(err)
		}
		body, meta, _ := r.rawGet(t, key)
		hl := atoi(t, meta["phicrypt-header-length"])
		if hl < ctxBytes*9/10 {
			t.Fatalf("header %d bytes for %d bytes of context", hl, ctxBytes)
		}
		for i, m := range []map[string]string{without(meta, "phicrypt-header-length"), with(meta, "phicrypt-header-length", "100"),
			with(meta, "phicrypt-header-length", strconv.Itoa(hl-1)), with(meta, "phicrypt-header-length", strconv.Itoa(hl+5000)),
			with(meta, "phicrypt-header-length", "2000000")} {
			k := fmt.Sprintf("%s/%d", key, i)
			r.rawPut(t, k, body, m)
			b, err := clientFor(t, r, kr).GetRange(ctx, r.bucket, k, 19990, 100, ec)
			if err != nil || !bytes.Equal(b, pt[19990:]) {
				t.Errorf("%s: %v", k, err)
			}
		}
	}
}
