package s3crypt

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	mrand "math/rand/v2"
	"testing"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

// randomReads reads r with buffers of random sizes, as the transfer
// manager does (small ones while it grows its first part, whole parts
// after).
func randomReads(r io.Reader, rng *mrand.Rand) ([]byte, error) {
	var out []byte
	for {
		p := make([]byte, 1+rng.IntN(5000))
		n, err := r.Read(p)
		out = append(out, p[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestSealingReaderMakesTheMessage(t *testing.T) {
	kr, err := keyring.NewRawAES("seal", "key", make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rng := mrand.New(mrand.NewPCG(3, 4))
	for _, suite := range []phicrypt.Suite{phicrypt.SuiteCommitted, phicrypt.SuiteCommittedSigned} {
		enc, err := phicrypt.New(phicrypt.Config{Keyring: kr, FrameLength: 300, Suite: suite})
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range []int{0, 1, 299, 300, 301, 900, 12_345} {
			for _, workers := range []int{1, 3} {
				pt := make([]byte, size)
				_, _ = rand.Read(pt)
				fs, err := enc.NewFrameSealer(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				msg, err := randomReads(newSealingReader(bytes.NewReader(pt), fs, workers, int64(size)), rng)
				if err != nil {
					t.Fatal(err)
				}
				got, _, err := enc.Decrypt(ctx, msg, nil)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("suite %v, %d bytes, %d workers: %v", suite, size, workers, err)
				}
			}
		}
	}
	// A body longer or shorter than promised fails.
	enc, _ := phicrypt.New(phicrypt.Config{Keyring: kr, FrameLength: 300})
	for _, want := range []int64{999, 1001} {
		fs, err := enc.NewFrameSealer(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := randomReads(newSealingReader(bytes.NewReader(make([]byte, 1000)), fs, 2, want), rng); !errors.Is(err, ErrSizeMismatch) {
			t.Fatalf("want %d: %v", want, err)
		}
	}
}
