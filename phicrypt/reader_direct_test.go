package phicrypt_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/stretchr/testify/require"
)

// Reader.WriteTo and the direct paths of Read and ReadAt (whole frames
// decrypted straight into the caller's buffer) keep the guarantees of the
// buffered path: nothing of a frame is released before it authenticates,
// nothing of the final frame before the end of the message checks out, and
// a failed frame leaves none of its plaintext in the caller's buffer.

const directFrame = 100

func directEncryptor(t *testing.T, suite phicrypt.Suite) *phicrypt.Encryptor {
	t.Helper()
	enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(t), Suite: suite, FrameLength: directFrame})
	require.NoError(t, err)
	return enc
}

// seal encrypts pt in frames of directFrame bytes and returns the message
// and its header's length.
func seal(t *testing.T, enc *phicrypt.Encryptor, pt []byte) ([]byte, int) {
	t.Helper()
	msg, err := enc.Encrypt(context.Background(), pt, nil)
	require.NoError(t, err)
	regular := len(pt) / directFrame
	body := regular*(directFrame+32) + 40 + len(pt)%directFrame
	footer := 0
	if n := len(msg); n > 2 {
		// A signed message ends with a 2-byte length and a DER signature
		// of 100 to 104 bytes.
		for s := 100; s <= 104; s++ {
			if int(binary.BigEndian.Uint16(msg[n-2-s:])) == s {
				footer = 2 + s
			}
		}
	}
	return msg, len(msg) - body - footer
}

// flipTag flips the last byte of regular frame k's tag (0-based): its
// ciphertext still decrypts to the true plaintext, which an implementation
// that released unauthenticated bytes would leave behind.
func flipTag(msg []byte, headerLen, k int) []byte {
	bad := bytes.Clone(msg)
	bad[headerLen+(k+1)*(directFrame+32)-1] ^= 1
	return bad
}

// recorder is a writer that keeps what it is given and can fail after a
// number of bytes.
type recorder struct {
	got     bytes.Buffer
	failAt  int // fail once got holds this many bytes; 0: never
	errFail error
	short   bool // report a short write without an error
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.failAt > 0 && w.got.Len()+len(p) > w.failAt {
		k := w.failAt - w.got.Len()
		w.got.Write(p[:k])
		w.failAt = 0
		if w.short {
			return k, nil
		}
		return k, w.errFail
	}
	return w.got.Write(p)
}

func TestReaderWriteToRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, suite := range []phicrypt.Suite{phicrypt.SuiteCommitted, phicrypt.SuiteCommittedSigned} {
		enc := directEncryptor(t, suite)
		for _, size := range []int{0, 1, 99, 100, 101, 250, 300, 1234} {
			pt := randomBytes(size)
			msg, _ := seal(t, enc, pt)
			r, err := enc.NewReader(ctx, bytes.NewReader(msg), nil)
			require.NoError(t, err)
			var _ io.WriterTo = r
			var got bytes.Buffer
			n, err := io.Copy(&got, r)
			require.NoError(t, err, "suite %v size %d", suite, size)
			require.Equal(t, int64(size), n)
			require.Equal(t, pt, nonNil(got.Bytes()))
			// The end stays the end.
			k, err := r.Read(make([]byte, 10))
			require.Equal(t, 0, k)
			require.Equal(t, io.EOF, err)
			m, err := r.WriteTo(&got)
			require.NoError(t, err)
			require.Zero(t, m)

			// Read a little, then hand the rest to WriteTo.
			r, err = enc.NewReader(ctx, bytes.NewReader(msg), nil)
			require.NoError(t, err)
			head := make([]byte, min(size, 37))
			_, err = io.ReadFull(r, head)
			require.NoError(t, err)
			var rest bytes.Buffer
			_, err = r.WriteTo(&rest)
			require.NoError(t, err)
			require.Equal(t, pt, nonNil(append(head, rest.Bytes()...)))
		}
	}
}

func TestReaderWriteToTamperedFrameWritesOnlyAuthenticatedFrames(t *testing.T) {
	ctx := context.Background()
	enc := directEncryptor(t, phicrypt.SuiteCommitted)
	pt := randomBytes(5*directFrame + 42)
	msg, headerLen := seal(t, enc, pt)
	for k := range 5 {
		r, err := enc.NewReader(ctx, bytes.NewReader(flipTag(msg, headerLen, k)), nil)
		require.NoError(t, err)
		var w recorder
		n, err := r.WriteTo(&w)
		require.ErrorIs(t, err, phicrypt.ErrAuthentication)
		require.Equal(t, int64(k*directFrame), n)
		require.Equal(t, pt[:k*directFrame], nonNil(w.got.Bytes()), "frame %d", k)
		// The failure sticks.
		_, err = r.WriteTo(&w)
		require.ErrorIs(t, err, phicrypt.ErrAuthentication)
		_, err = r.Read(make([]byte, 1000))
		require.ErrorIs(t, err, phicrypt.ErrAuthentication)
	}
	// The final frame is written only once the end checks out.
	for _, bad := range [][]byte{append(bytes.Clone(msg), 0), flipLast(msg)} {
		r, err := enc.NewReader(ctx, bytes.NewReader(bad), nil)
		require.NoError(t, err)
		var w recorder
		n, err := r.WriteTo(&w)
		require.Error(t, err)
		require.Equal(t, int64(5*directFrame), n)
		require.Equal(t, pt[:5*directFrame], w.got.Bytes())
	}
}

func flipLast(msg []byte) []byte {
	bad := bytes.Clone(msg)
	bad[len(bad)-1] ^= 1
	return bad
}

// A signed message's final frame reaches the writer only after the
// signature verifies: a bad signature stops it, and WriteTo fails.
func TestReaderWriteToSignedChecksTheSignatureFirst(t *testing.T) {
	ctx := context.Background()
	enc := directEncryptor(t, phicrypt.SuiteCommittedSigned)
	pt := randomBytes(3*directFrame + 7)
	msg, _ := seal(t, enc, pt)

	r, err := enc.NewReader(ctx, bytes.NewReader(msg), nil)
	require.NoError(t, err)
	var w recorder
	_, err = r.WriteTo(&w)
	require.NoError(t, err)
	require.Equal(t, pt, w.got.Bytes())

	r, err = enc.NewReader(ctx, bytes.NewReader(flipLast(msg)), nil)
	require.NoError(t, err)
	w = recorder{}
	n, err := r.WriteTo(&w)
	require.ErrorIs(t, err, phicrypt.ErrAuthentication)
	var me *phicrypt.MessageError
	require.ErrorAs(t, err, &me)
	require.Equal(t, phicrypt.StageSignature, me.Stage)
	require.Equal(t, int64(3*directFrame), n)
	require.Equal(t, pt[:3*directFrame], w.got.Bytes())
}

// A writer that fails stops WriteTo with its error; the Reader keeps what
// the writer did not take, so a later Read resumes from there.
func TestReaderWriteToFailingWriter(t *testing.T) {
	ctx := context.Background()
	errDisk := errors.New("disk full")
	for _, suite := range []phicrypt.Suite{phicrypt.SuiteCommitted, phicrypt.SuiteCommittedSigned} {
		enc := directEncryptor(t, suite)
		pt := randomBytes(4*directFrame + 55)
		msg, _ := seal(t, enc, pt)
		for _, failAt := range []int{1, 150, 200, 420} {
			for _, short := range []bool{false, true} {
				r, err := enc.NewReader(ctx, bytes.NewReader(msg), nil)
				require.NoError(t, err)
				w := recorder{failAt: failAt, errFail: errDisk, short: short}
				n, err := r.WriteTo(&w)
				if short {
					require.ErrorIs(t, err, io.ErrShortWrite)
				} else {
					require.ErrorIs(t, err, errDisk)
				}
				require.Equal(t, int64(failAt), n)
				require.Equal(t, pt[:failAt], w.got.Bytes())
				rest, err := io.ReadAll(r)
				require.NoError(t, err)
				require.Equal(t, pt, append(w.got.Bytes(), rest...), "suite %v fail at %d", suite, failAt)
			}
		}
	}
}

// sentinel fills a buffer before each Read, so bytes the Read wrote are
// told apart from bytes it left.
const sentinel = 0xA5

// Reads into buffers larger than a frame decrypt straight into them; when
// a frame fails, the buffer holds none of its plaintext (its ciphertext is
// intact, so a careless implementation would leave the true plaintext).
func TestReaderReadIntoLargeBufferTamperedFrame(t *testing.T) {
	ctx := context.Background()
	enc := directEncryptor(t, phicrypt.SuiteCommitted)
	pt := randomBytes(5*directFrame + 42)
	msg, headerLen := seal(t, enc, pt)
	for _, bufSize := range []int{directFrame, directFrame + 1, 1000} {
		for k := range 5 {
			r, err := enc.NewReader(ctx, bytes.NewReader(flipTag(msg, headerLen, k)), nil)
			require.NoError(t, err)
			p := make([]byte, bufSize)
			var got []byte
			for {
				fill(p)
				n, err := r.Read(p)
				got = append(got, p[:n]...)
				if err != nil {
					require.ErrorIs(t, err, phicrypt.ErrAuthentication)
					requireNoPlaintext(t, p[n:], pt[k*directFrame:(k+1)*directFrame])
					break
				}
			}
			require.Equal(t, pt[:k*directFrame], nonNil(got))
		}
	}
	// The final frame, decrypted straight into p, is cleared when the end
	// of the message does not check out.
	for _, suite := range []phicrypt.Suite{phicrypt.SuiteCommitted, phicrypt.SuiteCommittedSigned} {
		enc := directEncryptor(t, suite)
		msg, _ := seal(t, enc, pt)
		bad := append(bytes.Clone(msg), 0)
		if suite == phicrypt.SuiteCommittedSigned {
			bad = flipLast(msg)
		}
		r, err := enc.NewReader(ctx, bytes.NewReader(bad), nil)
		require.NoError(t, err)
		p := make([]byte, 1000)
		for range 5 {
			n, err := r.Read(p)
			require.NoError(t, err)
			require.Equal(t, directFrame, n)
		}
		fill(p)
		n, err := r.Read(p)
		require.Error(t, err)
		require.Zero(t, n)
		requireNoPlaintext(t, p, pt[5*directFrame:])
	}
}

func fill(p []byte) {
	for i := range p {
		p[i] = sentinel
	}
}

// requireNoPlaintext checks that p holds only the sentinel or zeros, and
// none of frame.
func requireNoPlaintext(t *testing.T, p, frame []byte) {
	t.Helper()
	for i, c := range p {
		if c != sentinel && c != 0 {
			t.Fatalf("byte %d of the buffer past what was returned was written: %#x", i, c)
		}
	}
	require.False(t, bytes.Contains(p, frame[:min(len(frame), 16)]))
}

// ReadAt decrypts frames that p holds whole straight into p; a frame that
// fails leaves none of its plaintext there.
func TestReaderAtReadIntoLargeBufferTamperedFrame(t *testing.T) {
	ctx := context.Background()
	enc := directEncryptor(t, phicrypt.SuiteCommitted)
	pt := randomBytes(5*directFrame + 42)
	msg, headerLen := seal(t, enc, pt)
	for k := range 5 {
		ra, err := enc.NewReaderAt(ctx, bytes.NewReader(flipTag(msg, headerLen, k)), int64(len(msg)), nil)
		require.NoError(t, err)
		for _, off := range []int{0, 30} {
			if off > k*directFrame {
				continue
			}
			p := make([]byte, len(pt)-off)
			fill(p)
			n, err := ra.ReadAt(p, int64(off))
			require.ErrorIs(t, err, phicrypt.ErrAuthentication)
			require.Equal(t, k*directFrame-off, n)
			require.Equal(t, pt[off:k*directFrame], p[:n])
			requireNoPlaintext(t, p[n:], pt[k*directFrame:(k+1)*directFrame])
		}
	}
}

// ReaderAts share their scratch: many of them, over messages under
// different keys and frame lengths, read concurrently and each gets its
// own plaintext.
func TestReaderAtsShareScratchConcurrently(t *testing.T) {
	ctx := context.Background()
	type opened struct {
		ra *phicrypt.ReaderAt
		pt []byte
	}
	var all []opened
	for i, frame := range []int{100, 128, 4096, 100, 65536} {
		enc, err := phicrypt.New(phicrypt.Config{Keyring: rawKeyring(t), FrameLength: frame})
		require.NoError(t, err)
		pt := randomBytes(3*frame + i*17 + 5)
		msg, err := enc.Encrypt(ctx, pt, nil)
		require.NoError(t, err)
		ra, err := enc.NewReaderAt(ctx, bytes.NewReader(msg), int64(len(msg)), nil)
		require.NoError(t, err)
		all = append(all, opened{ra, pt})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				o := all[(g+i)%len(all)]
				off := (g * 31 * (i + 1)) % len(o.pt)
				p := make([]byte, min(len(o.pt)-off, 1+(i*97)%(len(o.pt)/2)))
				n, err := o.ra.ReadAt(p, int64(off))
				if err != nil && !(err == io.EOF && off+n == len(o.pt)) {
					errs <- err
					return
				}
				if !bytes.Equal(p[:n], o.pt[off:off+n]) {
					errs <- errors.New("a ReadAt returned another message's bytes")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
