package keyring

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/phicrypt/phicrypt/internal/shamir"
)

// thresholdGroup is the shares of one group id found in a message.
type thresholdGroup struct {
	id     [thresholdGroupIDLen]byte
	m      int
	check  []byte
	shares []thresholdShare // sorted by x when recovered
	// inconsistent: shares of one group id disagree on the threshold or
	// the key check, or two have one index (an altered share)
	inconsistent string
}

// OnDecrypt collects the message's threshold EDKs written for a keyring
// of as many children as this one and groups them by their group id. If
// any of them is malformed, or the shares of a group disagree (on the
// threshold, the key check, or by repeating an index), it fails with
// ErrThresholdTampered before anything is unwrapped. Otherwise, for each
// group in turn, it asks child i to unwrap share i until the group's
// threshold of shares is unwrapped, combines them, and accepts the data key
// only if it passes the group's key check (else ErrThresholdTampered). A
// share its child cannot unwrap (a disabled key, denied access, or a
// wrapped key altered inside, which the child cannot tell apart) is only
// unavailable: the failure is ErrThresholdShares, or ErrThresholdMixed when
// the shares come from different messages, with the reason for every share
// that failed. ErrNoMatchingKey means the message holds no share for this
// keyring.
func (t *Threshold) OnDecrypt(ctx context.Context, m *DecryptionMaterials, edks []EncryptedDataKey) error {
	if m.DataKey != nil {
		return ErrDataKeyPresent
	}
	groups, malformed, err := t.collect(edks)
	if err != nil {
		return err
	}
	if len(groups) == 0 && len(malformed) == 0 {
		return ErrNoMatchingKey
	}
	// An altered share fails the call before anything is unwrapped, even
	// when the other shares would do: a header altered in transit or at
	// rest is worth an operator's attention (and the message's header
	// authentication would refuse it later anyway).
	for _, g := range groups {
		if g.inconsistent != "" {
			malformed = append(malformed, errors.New(g.inconsistent))
		}
	}
	if len(malformed) > 0 {
		return thresholdFailure(nil, malformed, nil)
	}
	var failures []groupFailure
	for _, g := range groups {
		dk, validFor, f := t.recover(ctx, m, g)
		if f.kind == nil {
			m.DataKey = dk
			for _, d := range validFor {
				m.LimitValidity(d)
			}
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("keyring: threshold unwrap: %w", err)
		}
		failures = append(failures, f)
	}
	return thresholdFailure(groups, malformed, failures)
}

// collect parses and groups the threshold EDKs (at most shamir.MaxShares
// of them); malformed ones are returned as errors.
func (t *Threshold) collect(edks []EncryptedDataKey) ([]*thresholdGroup, []error, error) {
	var groups []*thresholdGroup
	var malformed []error
	count := 0
	for _, edk := range edks {
		if edk.ProviderID != ThresholdProviderID {
			continue
		}
		if count++; count > shamir.MaxShares {
			return nil, nil, fmt.Errorf("%w: the message holds more than %d threshold shares", ErrThresholdTampered, shamir.MaxShares)
		}
		s, ok, err := parseThresholdShare(edk, len(t.children))
		if err != nil {
			malformed = append(malformed, err)
			continue
		}
		if !ok {
			continue // a threshold keyring of another size wrote it
		}
		i := slices.IndexFunc(groups, func(g *thresholdGroup) bool { return g.id == s.groupID })
		if i < 0 {
			groups = append(groups, &thresholdGroup{id: s.groupID, m: s.m, check: s.check})
			i = len(groups) - 1
		}
		g := groups[i]
		switch {
		case s.m != g.m || !hmac.Equal(s.check, g.check):
			g.inconsistent = "shares of one group disagree on the threshold or the key check"
		case slices.ContainsFunc(g.shares, func(o thresholdShare) bool { return o.x == s.x }):
			g.inconsistent = "two shares of one group have the same index"
		}
		g.shares = append(g.shares, s)
	}
	return groups, malformed, nil
}

// groupFailure is why one group gave no data key: kind is one of the
// ErrThreshold sentinels.
type groupFailure struct {
	kind     error
	what     string
	attempts []error
	usable   int // shares of the group unwrapped, or held for a group too short to try
}

// recover unwraps the group's shares through the children until it has m
// of them, combines them and checks the result.
func (t *Threshold) recover(ctx context.Context, m *DecryptionMaterials, g *thresholdGroup) (Secret, []time.Duration, groupFailure) {
	switch {
	case len(g.shares) < g.m:
		return nil, nil, groupFailure{kind: ErrThresholdShares, usable: len(g.shares),
			what: fmt.Sprintf("the message holds %d of the %d shares a group needs", len(g.shares), g.m)}
	}
	slices.SortFunc(g.shares, func(a, b thresholdShare) int { return a.x - b.x })
	var got []shamir.Share
	defer func() {
		for _, s := range got {
			clear(s.Y)
		}
	}()
	var attempts []error
	var validFor []time.Duration
	for _, s := range g.shares {
		if len(got) == g.m || ctx.Err() != nil {
			break
		}
		y, d, err := unwrapShare(ctx, t.children[s.x-1], m, s)
		if err != nil {
			attempts = append(attempts, &shareError{x: s.x, err: err})
			continue
		}
		got = append(got, shamir.Share{X: byte(s.x), Y: y})
		if d > 0 {
			validFor = append(validFor, d)
		}
	}
	if len(got) < g.m {
		return nil, nil, groupFailure{kind: ErrThresholdShares, attempts: attempts, usable: len(got),
			what: fmt.Sprintf("%d of the %d shares needed were unwrapped", len(got), g.m)}
	}
	dk, err := shamir.Combine(got)
	if err != nil { // unreachable: indexes and lengths were checked
		return nil, nil, groupFailure{kind: ErrThresholdTampered, what: err.Error()}
	}
	if !hmac.Equal(thresholdKeyCheck(dk, thresholdInfo(g.id, g.m, len(t.children), 0)), g.check) {
		clear(dk)
		return nil, nil, groupFailure{kind: ErrThresholdTampered, attempts: attempts,
			what: fmt.Sprintf("shares %s combine to a key that fails the message's key check", shareList(got))}
	}
	return dk, validFor, groupFailure{}
}

// unwrapShare asks child to unwrap share s as the data key of materials
// like m's.
func unwrapShare(ctx context.Context, child Keyring, m *DecryptionMaterials, s thresholdShare) ([]byte, time.Duration, error) {
	dm := &DecryptionMaterials{SuiteID: m.SuiteID, DataKeyLength: m.DataKeyLength, EncryptionContext: m.EncryptionContext}
	if err := child.OnDecrypt(ctx, dm, s.children); err != nil {
		return nil, 0, err
	}
	if len(dm.DataKey) != m.DataKeyLength {
		dm.DataKey.Wipe()
		return nil, 0, fmt.Errorf("the child keyring returned a %d-byte share; want %d", len(dm.DataKey), m.DataKeyLength)
	}
	return dm.DataKey, dm.ValidFor, nil
}

func shareList(shares []shamir.Share) string {
	parts := make([]string, len(shares))
	for i, s := range shares {
		parts[i] = fmt.Sprint(s.X)
	}
	return strings.Join(parts, ", ")
}

// thresholdFailure picks the error for a message none of whose groups gave
// a data key. A malformed or altered share (one that does not parse,
// shares of one group id that disagree, a combined key that fails its
// check) makes it ErrThresholdTampered. Otherwise, when the shares are of
// two or more groups and the shares usable across them (unwrapped, or held
// by a group too short to try) would have met the threshold had they been
// of one message, it is ErrThresholdMixed; else ErrThresholdShares.
func thresholdFailure(groups []*thresholdGroup, malformed []error, failures []groupFailure) error {
	e := &thresholdError{}
	for _, err := range malformed {
		e.add(ErrThresholdTampered, err.Error(), nil)
	}
	total, minM := 0, shamir.MaxShares+1
	for i, f := range failures {
		e.add(f.kind, f.what, f.attempts)
		total += f.usable
		minM = min(minM, groups[i].m)
	}
	if e.kind == ErrThresholdShares && len(groups) > 1 && total >= minM {
		e.kind = ErrThresholdMixed
		e.whats = append([]string{fmt.Sprintf("shares of %d messages, none with enough of its own", len(groups))}, e.whats...)
	}
	return e
}

// thresholdError is one of the ErrThreshold sentinels with what happened
// and each share's failure.
type thresholdError struct {
	kind     error
	whats    []string
	attempts []error
}

// add records a failure, keeping the most telling kind: tampered, then
// mixed, then too few shares.
func (e *thresholdError) add(kind error, what string, attempts []error) {
	rank := func(k error) int {
		switch k {
		case ErrThresholdTampered:
			return 3
		case ErrThresholdMixed:
			return 2
		case ErrThresholdShares:
			return 1
		}
		return 0
	}
	if rank(kind) > rank(e.kind) {
		e.kind = kind
	}
	if !slices.Contains(e.whats, what) {
		e.whats = append(e.whats, what)
	}
	e.attempts = append(e.attempts, attempts...)
}

func (e *thresholdError) Error() string {
	s := e.kind.Error() + ": " + strings.Join(e.whats, "; ")
	if len(e.attempts) > 0 {
		s += " (" + errors.Join(e.attempts...).Error() + ")"
	}
	return strings.ReplaceAll(s, "\n", "; ")
}

func (e *thresholdError) Unwrap() []error { return append([]error{e.kind}, e.attempts...) }

// shareError is one share's unwrap failure, naming the share.
type shareError struct {
	x   int
	err error
}

func (e *shareError) Error() string {
	return "share " + fmt.Sprint(e.x) + ": " + strings.TrimPrefix(e.err.Error(), "keyring: ")
}

func (e *shareError) Unwrap() error { return e.err }
