package phicrypt_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"sync"
	"testing"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// Frames sealed in place, out of order and on several goroutines, make a
// message that Decrypt reads, signed or not.
func TestFrameSealerMakesAMessage(t *testing.T) {
	kr, err := keyring.NewRawAES("sealer", "key", make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, suite := range []phicrypt.Suite{phicrypt.SuiteCommitted, phicrypt.SuiteCommittedSigned} {
		enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, FrameLength: 100, Suite: suite})
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range []int{0, 1, 99, 100, 101, 1000, 1234} {
			pt := make([]byte, size)
			_, _ = rand.Read(pt)
			f, err := enc.NewFrameSealer(ctx, map[string]string{"k": "v"})
			if err != nil {
				t.Fatal(err)
			}
			// Lay out: regular frames of 100, then the final frame.
			regular := size / 100
			if regular > 0 && size%100 == 0 {
				regular--
			}
			var frames [][]byte
			for i := range regular {
				fr := make([]byte, phicrypt.FramePrefix+100+phicrypt.FrameTagLength)
				copy(fr[phicrypt.FramePrefix:], pt[i*100:(i+1)*100])
				frames = append(frames, fr)
			}
			last := pt[regular*100:]
			fr := make([]byte, phicrypt.FinalFramePrefix+len(last)+phicrypt.FrameTagLength)
			copy(fr[phicrypt.FinalFramePrefix:], last)
			frames = append(frames, fr)
			var wg sync.WaitGroup
			errs := make([]error, len(frames))
			for i := len(frames) - 1; i >= 0; i-- {
				wg.Go(func() { errs[i] = f.SealFrame(frames[i], uint32(i+1), i == len(frames)-1) })
			}
			wg.Wait()
			msg := append([]byte(nil), f.Header()...)
			for i, fr := range frames {
				if errs[i] != nil {
					t.Fatal(errs[i])
				}
				f.Sign(fr)
				msg = append(msg, fr...)
			}
			footer, err := f.Footer()
			if err != nil || (footer != nil) != f.Signed() {
				t.Fatalf("footer %v, signed %v", err, f.Signed())
			}
			msg = append(msg, footer...)
			got, _, err := enc.Decrypt(ctx, msg, map[string]string{"k": "v"})
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("suite %v size %d: %v", suite, size, err)
			}
		}
	}
}

func TestFrameSealerRefusesBadFrames(t *testing.T) {
	kr, _ := keyring.NewRawAES("sealer", "key", make([]byte, 32))
	enc, _ := phicrypt.New(phicrypt.Config{Keyring: kr, FrameLength: 100})
	f, err := enc.NewFrameSealer(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n     int
		seq   uint32
		final bool
	}{{99, 1, false}, {101, 1, false}, {101, 1, true}, {100, 0, false}, {-1, 1, true}} {
		size := phicrypt.FramePrefix + c.n + phicrypt.FrameTagLength
		if c.final {
			size += phicrypt.FinalFramePrefix - phicrypt.FramePrefix
		}
		if err := f.SealFrame(make([]byte, max(size, 0)), c.seq, c.final); err == nil {
			t.Errorf("%+v: sealed", c)
		}
	}
}
