// Package suite holds phibench's cases: phicrypt's fields, messages,
// streams and ranged reads, each beside raw AES-256-GCM, Tink for Go and
// the AWS Encryption SDK for Go at the same sizes. A case is a plain
// function of a *testing.B, so it runs under `go test -bench` (see
// suite_test.go) and under testing.Benchmark in the phibench command.
package suite

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/keyring"
)

// The implementations a case measures, as the JSON records name them.
const (
	ImplPhicrypt = "phicrypt"
	ImplRawGCM   = "raw-gcm"
	ImplTink     = "tink"
	ImplAWS      = "aws-esdk-go"
)

// Message sizes.
const (
	KiB = 1 << 10
	MiB = 1 << 20
)

// Case is one benchmark.
type Case struct {
	// Name is unique within a list: impl/op/size and any variant.
	Name string
	// Impl, Op and Suite are the JSON record's fields ("" Suite for cases
	// that have none).
	Impl, Op, Suite string
	// Size is the plaintext bytes one operation handles (the basis of
	// MB/s); Count is how many operations of Size one iteration makes (10
	// for ten raw seals beside a ten-field struct), default 1.
	Size  int64
	Count int
	// Workers is the stream's workers (0 where it does not apply).
	Workers int
	// FrameLength and Segment are the phicrypt frame length and the Tink
	// segment size, when not the default.
	FrameLength, Segment int
	// Streaming cases run in a child process so their peak RSS is theirs.
	Streaming bool
	// NoJSON keeps the case in the table only (the record schema has no
	// slot for it).
	NoJSON bool
	// KMSLatency is what the case's kmsmock adds to every call (0: none).
	// A case that waits for it has no counterpart measured under the same
	// latency, so the table gives it no ratios.
	KMSLatency time.Duration
	// Bench runs the case; it reports "kms-calls/op" through
	// b.ReportMetric where KMS calls apply.
	Bench func(b *testing.B)
}

// KMSCallsMetric is the unit under which cases report KMS calls per op.
const KMSCallsMetric = "kms-calls/op"

// Options choose the cases.
type Options struct {
	// Quick keeps the sizes that the goals name (64 B, 1 KiB, 1 MiB,
	// 64 MiB) and drops 64 KiB and the second signed size.
	Quick bool
	// FrameLengths and Workers, when set, make a tuning sweep: phicrypt's
	// streams at each value, with 1 MiB messages for frame lengths and the
	// 64 MiB in-memory message for workers, beside raw GCM, instead of the
	// usual list.
	FrameLengths []int
	Workers      []int
}

// MessageSizes are the message sizes of the list o makes.
func (o Options) MessageSizes() []int64 {
	if o.Quick {
		return []int64{64, KiB, MiB, 64 * MiB}
	}
	return []int64{64, KiB, 64 * KiB, MiB, 64 * MiB}
}

// StreamSize is the size of every streaming case.
const StreamSize = 64 * MiB

// ParallelWorkers is the N of the N-worker stream cases: the CPUs, at
// least 2.
func ParallelWorkers() int { return max(2, runtime.NumCPU()) }

// Cases returns the list o asks for, every case over env.
func Cases(env *Env, o Options) []Case {
	if len(o.FrameLengths) > 0 || len(o.Workers) > 0 {
		return sweepCases(env, o)
	}
	var cs []Case
	cs = append(cs, fieldCases(env)...)
	cs = append(cs, messageCases(env, o)...)
	cs = append(cs, streamCases(env)...)
	cs = append(cs, storeCases(env)...)
	cs = append(cs, s3Cases(env)...)
	return dedup(cs)
}

// dedup keeps the first case of each name (the field and message lists
// share raw baselines).
func dedup(cs []Case) []Case {
	seen := map[string]bool{}
	out := cs[:0]
	for _, c := range cs {
		if !seen[c.Name] {
			seen[c.Name] = true
			out = append(out, c)
		}
	}
	return out
}

func sweepCases(env *Env, o Options) []Case {
	cs := []Case{rawSeal(env, MiB, 1), rawOpen(env, MiB), rawSeal(env, StreamSize, 1), rawOpen(env, StreamSize)}
	for _, fl := range o.FrameLengths {
		cs = append(cs, phiEncrypt(env, MiB, fl, 1), phiDecrypt(env, MiB, fl))
		cs = append(cs, phiStreamEncrypt(env, 1, fl), phiStreamDecrypt(env, fl))
	}
	for _, w := range o.Workers {
		cs = append(cs, phiStreamEncrypt(env, w, 0), phiEncrypt(env, 64*MiB, 0, w))
	}
	return dedup(cs)
}

// measure runs op b.N times on size bytes each, reporting allocations,
// and the KMS calls counting saw per op when counting is not nil. The
// cases of phicrypt and its peers loop through it; raw GCM's, which take
// tens of nanoseconds at 64 bytes and are the baseline of every ratio,
// keep their own loops without the call through op.
func measure(b *testing.B, size int64, counting *keyring.CountingKMS, op func() error) {
	before := totalCalls(counting)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	reportKMS(b, counting, before)
}

// SizeName writes n as 64B, 1KiB, 64MiB...
func SizeName(n int64) string {
	switch {
	case n >= MiB && n%MiB == 0:
		return fmt.Sprintf("%dMiB", n/MiB)
	case n >= KiB && n%KiB == 0:
		return fmt.Sprintf("%dKiB", n/KiB)
	}
	return fmt.Sprintf("%dB", n)
}

// Find returns the case named name in cs.
func Find(cs []Case, name string) (Case, error) {
	for _, c := range cs {
		if c.Name == name {
			return c, nil
		}
	}
	return Case{}, fmt.Errorf("%w: %q", errNoCase, name)
}

func name(impl, op string, size int64, variant ...string) string {
	s := impl + "/" + op + "/" + SizeName(size)
	for _, v := range variant {
		if v != "" {
			s += "/" + v
		}
	}
	return s
}
