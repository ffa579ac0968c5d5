package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/stretchr/testify/require"
)

// RunRecords checks keystore.Records on the store b opens, which must
// implement it and keystore.RecordKindLister (without which Export could
// not carry its records): create, get, compare-and-swap and each way it
// fails, list order, kinds (the per-version ones too), caps on kinds,
// names and values, copies, errors that name no record, records beside
// branch keys, reopening, context cancellation, and races of many
// goroutines and (when childTest is not empty) of two OS processes on
// one record. childTest is the caller's child test, as for
// RunTwoProcesses. The cap of MaxListedRecords is the store's own to test
// (filling a kind past it is cheap only with raw writes).
func RunRecords(t *testing.T, b Backend, childTest string) {
	newRecords := func(t *testing.T) (keystore.Store, keystore.Records) {
		s := b.open(t, b.Fresh(t))
		return s, asRecords(t, s)
	}
	t.Run("PutGet", func(t *testing.T) { _, r := newRecords(t); testPutGetRecord(t, r) })
	t.Run("CompareAndSwap", func(t *testing.T) { _, r := newRecords(t); testRecordCAS(t, r) })
	t.Run("List", func(t *testing.T) { _, r := newRecords(t); testListRecords(t, r) })
	t.Run("Kinds", func(t *testing.T) { s, r := newRecords(t); testRecordKinds(t, s, r) })
	t.Run("VersionKinds", func(t *testing.T) { testVersionRecordKinds(t, b) })
	t.Run("Caps", func(t *testing.T) { _, r := newRecords(t); testRecordCaps(t, r) })
	t.Run("Copies", func(t *testing.T) { _, r := newRecords(t); testRecordCopies(t, r) })
	t.Run("ErrorsLeakNothing", func(t *testing.T) { _, r := newRecords(t); testRecordErrorsLeakNothing(t, r) })
	t.Run("BesideBranchKeys", func(t *testing.T) { s, r := newRecords(t); testRecordsBesideBranchKeys(t, s, r) })
	t.Run("Reopen", func(t *testing.T) { testReopenRecords(t, b) })
	t.Run("ContextCanceled", func(t *testing.T) { _, r := newRecords(t); testRecordContextCanceled(t, r) })
	t.Run("ConcurrentPut", func(t *testing.T) {
		loc := b.Fresh(t)
		testConcurrentPutRecord(t, asRecords(t, b.open(t, loc)), asRecords(t, b.open(t, loc)))
	})
	if childTest != "" {
		t.Run("TwoProcesses", func(t *testing.T) { runTwoProcessRecords(t, b, childTest, b.Fresh(t)) })
	}
}

func asRecords(t *testing.T, s keystore.Store) keystore.Records {
	t.Helper()
	r, ok := s.(keystore.Records)
	require.True(t, ok, "%T does not implement keystore.Records", s)
	return r
}

// RequireRecord checks that got is the record kind/name with value at
// revision, written between from and to (each truncated to the
// microsecond, as stores keep it).
func RequireRecord(t *testing.T, got keystore.Record, kind, name string, value []byte, revision uint64, from, to time.Time) {
	t.Helper()
	require.Equal(t, kind, got.Kind)
	require.Equal(t, name, got.Name)
	require.Equal(t, value, got.Value)
	require.Equal(t, revision, got.Revision)
	require.Equal(t, time.UTC, got.UpdatedAt.Location())
	require.Zero(t, got.UpdatedAt.Nanosecond()%1000, "kept to the microsecond")
	require.False(t, got.UpdatedAt.Before(from.UTC().Truncate(time.Microsecond)), "updated %v, before the put began at %v", got.UpdatedAt, from)
	require.False(t, got.UpdatedAt.After(to), "updated %v, after the put ended at %v", got.UpdatedAt, to)
}

func testPutGetRecord(t *testing.T, r keystore.Records) {
	ctx := t.Context()
	_, err := r.GetRecord(ctx, "policy", "current")
	require.ErrorIs(t, err, keystore.ErrNotFound)

	// Names that would be unsafe as file names or that look like the
	// store's own keys.
	names := []string{"current", "../../etc/passwd", "a/b\\c", "Ünïcødé 患者", "branch:ACTIVE", "beacon:ACTIVE",
		"phicrypt:version:x", ".lock", strings.Repeat("é", keystore.MaxRecordNameLen/2)}
	for i, name := range names {
		value := []byte("value " + strconv.Itoa(i))
		from := time.Now()
		rev, err := r.PutRecord(ctx, "policy", name, value, 0)
		to := time.Now()
		require.NoError(t, err, "name %d", i)
		require.EqualValues(t, 1, rev)
		got, err := r.GetRecord(ctx, "policy", name)
		require.NoError(t, err)
		RequireRecord(t, got, "policy", name, value, 1, from, to)
	}
	// The same name in another kind is another record.
	_, err = r.GetRecord(ctx, "applied-change", "current")
	require.ErrorIs(t, err, keystore.ErrNotFound)
	rev, err := r.PutRecord(ctx, "applied-change", "current", []byte("other kind"), 0)
	require.NoError(t, err)
	require.EqualValues(t, 1, rev)
	got, err := r.GetRecord(ctx, "policy", "current")
	require.NoError(t, err)
	require.Equal(t, []byte("value 0"), got.Value)
	got, err = r.GetRecord(ctx, "applied-change", "current")
	require.NoError(t, err)
	require.Equal(t, []byte("other kind"), got.Value)
}

func testRecordCAS(t *testing.T, r keystore.Records) {
	ctx := t.Context()
	rev, err := r.PutRecord(ctx, "policy", "p", []byte("one"), 0)
	require.NoError(t, err)
	require.EqualValues(t, 1, rev)
	for want := uint64(2); want <= 5; want++ {
		from := time.Now()
		rev, err = r.PutRecord(ctx, "policy", "p", []byte("rev "+strconv.FormatUint(want, 10)), want-1)
		to := time.Now()
		require.NoError(t, err)
		require.Equal(t, want, rev)
		got, err := r.GetRecord(ctx, "policy", "p")
		require.NoError(t, err)
		RequireRecord(t, got, "policy", "p", []byte("rev "+strconv.FormatUint(want, 10)), want, from, to)
	}
	before, err := r.GetRecord(ctx, "policy", "p")
	require.NoError(t, err)

	// Each failure changes nothing.
	_, err = r.PutRecord(ctx, "policy", "p", []byte("again"), 0)
	require.ErrorIs(t, err, keystore.ErrExists, "expected 0 on a record that exists")
	for _, stale := range []uint64{1, 4, 6, 1 << 40} {
		_, err = r.PutRecord(ctx, "policy", "p", []byte("stale"), stale)
		require.ErrorIs(t, err, keystore.ErrConflict, "expected %d, stored 5", stale)
	}
	_, err = r.PutRecord(ctx, "policy", "absent", []byte("x"), 1)
	require.ErrorIs(t, err, keystore.ErrNotFound, "a nonzero expected on a record that does not exist")
	_, err = r.GetRecord(ctx, "policy", "absent")
	require.ErrorIs(t, err, keystore.ErrNotFound, "a refused put creates nothing")
	after, err := r.GetRecord(ctx, "policy", "p")
	require.NoError(t, err)
	require.Equal(t, before, after, "a refused put changes nothing")
}

func testListRecords(t *testing.T, r keystore.Records) {
	ctx := t.Context()
	list, err := r.ListRecords(ctx, "policy")
	require.NoError(t, err)
	require.Empty(t, list, "a kind with no records lists none")

	names := []string{"tenant-b", "tenant-a", "Z", "Ünïcødé 患者", "a/b\\c", "../x", strings.Repeat("x", keystore.MaxRecordNameLen), "tenant-a2"}
	for i, name := range names {
		_, err := r.PutRecord(ctx, "policy", name, []byte{byte(i + 1)}, 0)
		require.NoError(t, err)
	}
	_, err = r.PutRecord(ctx, "policy", "tenant-b", []byte("second"), 1)
	require.NoError(t, err)
	_, err = r.PutRecord(ctx, "policy-other", "in another kind", []byte("o"), 0)
	require.NoError(t, err)
	_, err = r.PutRecord(ctx, "polic", "a prefix of the kind", []byte("o"), 0)
	require.NoError(t, err)

	list, err = r.ListRecords(ctx, "policy")
	require.NoError(t, err)
	want := []string{"../x", "Z", "a/b\\c", "tenant-a", "tenant-a2", "tenant-b", strings.Repeat("x", keystore.MaxRecordNameLen), "Ünïcødé 患者"}
	var got []string
	for _, rec := range list {
		got = append(got, rec.Name)
		require.Equal(t, "policy", rec.Kind)
		single, err := r.GetRecord(ctx, "policy", rec.Name)
		require.NoError(t, err)
		require.Equal(t, single, rec, "ListRecords and GetRecord agree")
	}
	require.Equal(t, want, got, "bytewise order, one kind only")
	require.Equal(t, []byte("second"), list[5].Value)
	require.EqualValues(t, 2, list[5].Revision)
	require.EqualValues(t, 1, list[0].Revision)
}

// testRecordKinds: RecordKinds lists every kind that has records, once,
// sorted, and nothing else (not branch keys).
func testRecordKinds(t *testing.T, s keystore.Store, r keystore.Records) {
	ctx := t.Context()
	l, ok := s.(keystore.RecordKindLister)
	require.True(t, ok, "%T does not implement keystore.RecordKindLister", s)
	kinds, err := l.RecordKinds(ctx)
	require.NoError(t, err)
	require.Empty(t, kinds)
	require.NoError(t, s.Create(ctx, NewVersion("tenant", keystore.StateActive)))
	for i, k := range []string{"policy", "applied-change", "policy", "a", "policy-2", "9", "policy"} {
		_, err := r.PutRecord(ctx, k, "name-"+strconv.Itoa(i), []byte("v"), 0)
		require.NoError(t, err)
	}
	got, err := l.RecordKinds(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"9", "a", "applied-change", "policy", "policy-2"}, got)
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = l.RecordKinds(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

func testRecordCaps(t *testing.T, r keystore.Records) {
	ctx := t.Context()
	kind := strings.Repeat("k", keystore.MaxRecordKindLen)
	name := strings.Repeat("é", keystore.MaxRecordNameLen/2)
	value := wrappedKey(keystore.MaxRecordValueLen)
	rev, err := r.PutRecord(ctx, kind, name, value, 0)
	require.NoError(t, err, "the largest kind, name and value")
	require.EqualValues(t, 1, rev)
	got, err := r.GetRecord(ctx, kind, name)
	require.NoError(t, err)
	require.Equal(t, value, got.Value)
	_, err = r.PutRecord(ctx, "a-0-9", "x", []byte{0}, 0)
	require.NoError(t, err, "digits, hyphens and a zero byte of value")

	badKinds := map[string]string{
		"empty": "", "too long": strings.Repeat("k", keystore.MaxRecordKindLen+1), "upper case": "Policy",
		"underscore": "a_b", "space": "a b", "slash": "a/b", "dot": ".", "non-ASCII": "pölicy", "NUL": "a\x00",
	}
	for what, k := range badKinds {
		_, err := r.PutRecord(ctx, k, "x", []byte("v"), 0)
		require.ErrorIs(t, err, keystore.ErrInvalid, "PutRecord: kind %s", what)
		_, err = r.GetRecord(ctx, k, "x")
		require.ErrorIs(t, err, keystore.ErrInvalid, "GetRecord: kind %s", what)
		_, err = r.ListRecords(ctx, k)
		require.ErrorIs(t, err, keystore.ErrInvalid, "ListRecords: kind %s", what)
	}
	badNames := map[string]string{
		"empty": "", "too long": strings.Repeat("x", keystore.MaxRecordNameLen+1), "not UTF-8": "name\xff", "NUL": "na\x00me",
	}
	for what, n := range badNames {
		_, err := r.PutRecord(ctx, "policy", n, []byte("v"), 0)
		require.ErrorIs(t, err, keystore.ErrInvalid, "PutRecord: name %s", what)
		_, err = r.GetRecord(ctx, "policy", n)
		require.ErrorIs(t, err, keystore.ErrInvalid, "GetRecord: name %s", what)
	}
	for what, v := range map[string][]byte{"nil": nil, "empty": {}, "too long": wrappedKey(keystore.MaxRecordValueLen + 1)} {
		_, err := r.PutRecord(ctx, "policy", "x", v, 0)
		require.ErrorIs(t, err, keystore.ErrInvalid, "value %s", what)
	}
	for _, expected := range []uint64{math.MaxInt64, math.MaxUint64} {
		_, err := r.PutRecord(ctx, "policy", "x", []byte("v"), expected)
		require.ErrorIs(t, err, keystore.ErrInvalid, "expected %d", expected)
	}
	list, err := r.ListRecords(ctx, "policy")
	require.NoError(t, err)
	require.Empty(t, list, "no refused put stored anything")
}

// testRecordCopies: a store keeps its own copy of a value and returns
// copies.
func testRecordCopies(t *testing.T, r keystore.Records) {
	ctx := t.Context()
	value := []byte("signed policy bytes")
	want := bytes.Clone(value)
	_, err := r.PutRecord(ctx, "policy", "p", value, 0)
	require.NoError(t, err)
	clear(value)
	got, err := r.GetRecord(ctx, "policy", "p")
	require.NoError(t, err)
	require.Equal(t, want, got.Value)
	clear(got.Value)
	list, err := r.ListRecords(ctx, "policy")
	require.NoError(t, err)
	require.Equal(t, want, list[0].Value)
	clear(list[0].Value)
	again, err := r.GetRecord(ctx, "policy", "p")
	require.NoError(t, err)
	require.Equal(t, want, again.Value)
}

// testRecordErrorsLeakNothing pushes a recognizable name and value through
// the error paths and the record's printed forms: none may contain either.
func testRecordErrorsLeakNothing(t *testing.T, r keystore.Records) {
	ctx := t.Context()
	const name = "patient-MRN-CANARY-0042"
	canary := []byte("POLICY-CANARY-POLICY-CANARY")
	_, err := r.PutRecord(ctx, "policy", name, canary, 0)
	require.NoError(t, err)
	var errs []error
	put := func(name string, value []byte, expected uint64) {
		_, err := r.PutRecord(ctx, "policy", name, value, expected)
		errs = append(errs, err)
	}
	put(name, canary, 0)
	put(name, canary, 7)
	put(name+"-missing", canary, 3)
	put(name, bytes.Repeat(canary, keystore.MaxRecordValueLen/len(canary)+1), 1)
	put(name+strings.Repeat("-CANARY", keystore.MaxRecordNameLen), canary, 0)
	put(name+"\x00", canary, 0)
	_, err = r.GetRecord(ctx, "policy", name+"-missing")
	errs = append(errs, err)
	_, err = r.GetRecord(ctx, "CANARY", name)
	errs = append(errs, err)
	for i, err := range errs {
		require.Error(t, err, "case %d", i)
		msg := fmt.Sprintf("%v %+v %#v", err, err, err.Error())
		require.NotContains(t, msg, "CANARY", "case %d: %s", i, msg)
	}
	rec, err := r.GetRecord(ctx, "policy", name)
	require.NoError(t, err)
	for _, s := range []string{fmt.Sprint(rec), fmt.Sprintf("%+v %#v %s %q %x", rec, rec, rec, rec, rec), rec.String()} {
		require.NotContains(t, s, "CANARY")
		require.NotContains(t, s, "MRN")
	}
}

// testRecordsBesideBranchKeys: records and branch keys share the store but
// not a namespace: a record named like a branch key id is no branch key,
// and IDs lists none.
func testRecordsBesideBranchKeys(t *testing.T, s keystore.Store, r keystore.Records) {
	ctx := t.Context()
	v := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Create(ctx, v))
	for _, kind := range []string{"policy", "branch-key"} {
		for _, name := range []string{"tenant", "other", "branch:ACTIVE"} {
			_, err := r.PutRecord(ctx, kind, name, []byte(kind+"/"+name), 0)
			require.NoError(t, err)
		}
	}
	ids, err := s.IDs(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"tenant"}, ids)
	_, err = s.Active(ctx, "other")
	require.ErrorIs(t, err, keystore.ErrNotFound)
	vs := RequireOneActive(t, s, "tenant")
	require.Len(t, vs, 1)
	RequireVersion(t, v, vs[0])
	next := NewVersion("tenant", keystore.StateActive)
	require.NoError(t, s.Rotate(ctx, "tenant", v.Version, next))
	got, err := r.GetRecord(ctx, "policy", "tenant")
	require.NoError(t, err)
	require.Equal(t, []byte("policy/tenant"), got.Value)
	list, err := r.ListRecords(ctx, "branch-key")
	require.NoError(t, err)
	require.Len(t, list, 3)
}

func testReopenRecords(t *testing.T, b Backend) {
	ctx := t.Context()
	loc := b.Fresh(t)
	s, err := b.Open(ctx, loc)
	require.NoError(t, err)
	r := asRecords(t, s)
	_, err = r.PutRecord(ctx, "policy", "p", []byte("one"), 0)
	require.NoError(t, err)
	_, err = r.PutRecord(ctx, "policy", "p", []byte("two"), 1)
	require.NoError(t, err)
	_, err = r.PutRecord(ctx, "applied-change", "c1", []byte("applied"), 0)
	require.NoError(t, err)
	before, err := r.GetRecord(ctx, "policy", "p")
	require.NoError(t, err)
	require.NoError(t, s.Close())

	r = asRecords(t, b.open(t, loc))
	after, err := r.GetRecord(ctx, "policy", "p")
	require.NoError(t, err)
	require.Equal(t, before, after)
	list, err := r.ListRecords(ctx, "applied-change")
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, []byte("applied"), list[0].Value)
	// And it still works.
	rev, err := r.PutRecord(ctx, "policy", "p", []byte("three"), 2)
	require.NoError(t, err)
	require.EqualValues(t, 3, rev)
}

func testRecordContextCanceled(t *testing.T, r keystore.Records) {
	_, err := r.PutRecord(t.Context(), "policy", "p", []byte("one"), 0)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = r.PutRecord(ctx, "policy", "p", []byte("two"), 1)
	require.ErrorIs(t, err, context.Canceled)
	_, err = r.GetRecord(ctx, "policy", "p")
	require.ErrorIs(t, err, context.Canceled)
	_, err = r.ListRecords(ctx, "policy")
	require.ErrorIs(t, err, context.Canceled)
	got, err := r.GetRecord(t.Context(), "policy", "p")
	require.NoError(t, err)
	require.EqualValues(t, 1, got.Revision)
}

// testConcurrentPutRecord races 16 goroutines over two handles on one
// store: all create one record (exactly one wins, the others get
// ErrExists), then, round after round, all put from its revision (exactly
// one wins, the others get ErrConflict).
func testConcurrentPutRecord(t *testing.T, r1, r2 keystore.Records) {
	ctx := t.Context()
	const n = 16
	race := func(expected uint64) (winner int, errs []error) {
		errs = make([]error, n)
		revs := make([]uint64, n)
		var start, done sync.WaitGroup
		start.Add(1)
		for i := range n {
			r := r1
			if i%2 == 1 {
				r = r2
			}
			done.Go(func() {
				start.Wait()
				revs[i], errs[i] = r.PutRecord(ctx, "policy", "contended", []byte("writer "+strconv.Itoa(i)), expected)
			})
		}
		start.Done()
		done.Wait()
		winner = -1
		for i, err := range errs {
			if err == nil {
				require.Equal(t, -1, winner, "expected %d: two puts won", expected)
				require.Equal(t, expected+1, revs[i])
				winner = i
			}
		}
		require.NotEqual(t, -1, winner, "expected %d: no put won", expected)
		return winner, errs
	}
	winner, errs := race(0)
	for i, err := range errs {
		if i != winner {
			require.ErrorIs(t, err, keystore.ErrExists)
		}
	}
	for expected := uint64(1); expected <= 3; expected++ {
		winner, errs = race(expected)
		for i, err := range errs {
			if i != winner {
				require.ErrorIs(t, err, keystore.ErrConflict)
			}
		}
		got, err := r2.GetRecord(ctx, "policy", "contended")
		require.NoError(t, err)
		require.Equal(t, expected+1, got.Revision)
		require.Equal(t, []byte("writer "+strconv.Itoa(winner)), got.Value, "the winner's value is stored")
	}
}

// Child processes of runTwoProcessRecords: both wait at a barrier, create
// one record (exactly one of the two wins), then keep putting from the
// revision they last read as fast as they can.
const (
	recordsChildRounds = 100
	recordsChildName   = "shared-policy"
)

var recordsChildResult = regexp.MustCompile(`(?m)^records-child created=([01]) wins=(\d+) conflicts=(\d+)$`)

// runTwoProcessRecords has two OS processes race PutRecord on one record:
// exactly one creates it, and its final revision counts every successful
// put, and nothing else.
func runTwoProcessRecords(t *testing.T, b Backend, childTest, loc string) {
	ctx := t.Context()
	barrier := t.TempDir()
	outs := make([][]byte, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range outs {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+childTest+"$", "-test.count=1")
		cmd.Env = append(os.Environ(),
			childModeEnv+"=records", childLocEnv+"="+loc, childBarrierEnv+"="+barrier,
			"GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
		wg.Go(func() { outs[i], errs[i] = cmd.CombinedOutput() })
	}
	wg.Wait()
	created, wins, conflicts := 0, 0, 0
	for i := range outs {
		require.NoError(t, errs[i], "child %d:\n%s", i, outs[i])
		m := recordsChildResult.FindSubmatch(outs[i])
		require.NotNil(t, m, "child %d printed no result:\n%s", i, outs[i])
		c, _ := strconv.Atoi(string(m[1]))
		w, _ := strconv.Atoi(string(m[2]))
		l, _ := strconv.Atoi(string(m[3]))
		require.Equal(t, recordsChildRounds, w+l, "child %d", i)
		created += c
		wins += w
		conflicts += l
	}
	t.Logf("%s: two processes made %d puts and lost %d races", b.Name, wins, conflicts)
	require.Equal(t, 1, created, "exactly one process created the record")
	r := asRecords(t, b.open(t, loc))
	got, err := r.GetRecord(ctx, "policy", recordsChildName)
	require.NoError(t, err)
	require.EqualValues(t, 1+wins, got.Revision, "every winning put, and no other, advanced the revision")
}

func recordsChild(t *testing.T, b Backend) {
	ctx := t.Context()
	s, err := b.Open(ctx, os.Getenv(childLocEnv))
	require.NoError(t, err)
	defer s.Close()
	r := asRecords(t, s)
	waitAtBarrier(t, os.Getenv(childBarrierEnv), 2)

	created := 0
	switch _, err := r.PutRecord(ctx, "policy", recordsChildName, []byte(strconv.Itoa(os.Getpid())), 0); {
	case err == nil:
		created = 1
	case !errors.Is(err, keystore.ErrExists):
		t.Fatal(err)
	}
	wins, conflicts := 0, 0
	for i := range recordsChildRounds {
		cur, err := r.GetRecord(ctx, "policy", recordsChildName)
		require.NoError(t, err)
		_, err = r.PutRecord(ctx, "policy", recordsChildName, []byte(strconv.Itoa(os.Getpid())+"/"+strconv.Itoa(i)), cur.Revision)
		switch {
		case err == nil:
			wins++
		case errors.Is(err, keystore.ErrConflict):
			conflicts++
		default:
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // as in rotationChild: the other gets its turn
	}
	fmt.Printf("records-child created=%d wins=%d conflicts=%d\n", created, wins, conflicts)
}
