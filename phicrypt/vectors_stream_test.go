package phicrypt_test

// TestVectorsStreaming replays testdata/vectors through NewReader and
// NewReaderAt. Positives must give the plaintext; negatives
// must fail somewhere (the stage may differ from Decrypt's: ReaderAt finds
// some errors from the layout). A 5 s guard turns a hang into a failure.

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

func TestVectorsStreaming(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			key, msg := v.decode(t)
			kr, err := keyring.NewRawAES(v.KeyNamespace, v.KeyName, key)
			require.NoError(t, err)
			enc, err := phicrypt.New(phicrypt.Config{Keyring: kr})
			require.NoError(t, err)
			readAll := func() ([]byte, error) {
				r, err := enc.NewReader(context.Background(), bytes.NewReader(msg), nil)
				if err != nil {
					return nil, err
				}
				return io.ReadAll(r)
			}
			readAt := func() ([]byte, error) {
				ra, err := enc.NewReaderAt(context.Background(), bytes.NewReader(msg), int64(len(msg)), nil)
				if err != nil {
					return nil, err
				}
				p := make([]byte, ra.Size()+1)
				n, err := ra.ReadAt(p, 0)
				if err == io.EOF && int64(n) == ra.Size() {
					err = nil
				}
				return p[:n], err
			}
			for name, read := range map[string]func() ([]byte, error){"Reader": readAll, "ReaderAt": readAt} {
				var got []byte
				var err error
				done := make(chan struct{})
				go func() { defer close(done); got, err = read() }()
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					t.Fatalf("%s: hangs", name)
				}
				if v.Failure != nil {
					require.Error(t, err, "%s accepted a negative vector", name)
					continue
				}
				require.NoError(t, err, name)
				want, _ := hex.DecodeString(*v.Plaintext)
				require.Equal(t, want, append([]byte{}, got...), name)
			}
		})
	}
}
