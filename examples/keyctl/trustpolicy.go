package main

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keystore"
)

// trustPolicyFlags describe a custody.Policy for propose set-policy.
type trustPolicyFlags struct {
	scope                          string
	custodians, services, auditors []string
	quorum                         int
	quorumFor                      []string
	rotateByUsage, rotateByAge     bool
}

func (f *trustPolicyFlags) add(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.scope, "scope", "*", "set-policy: the keys the policy governs: `ID`, a prefix ending in *, or *")
	fl.StringArrayVar(&f.custodians, "custodian", nil, "set-policy: a custodian, `NAME=PUBLIC_KEY[@IAM_ARN]` (repeat; the key from init identity)")
	fl.StringArrayVar(&f.services, "service", nil, "set-policy: a service, `NAME=PUBLIC_KEY[@IAM_ARN]` (repeat)")
	fl.StringArrayVar(&f.auditors, "auditor", nil, "set-policy: an auditor, `NAME=PUBLIC_KEY[@IAM_ARN]` (repeat)")
	fl.IntVar(&f.quorum, "quorum", 0, "set-policy: how many custodians approve a change of the policy, and every change not named by --quorum-for (except create: 1)")
	fl.StringArrayVar(&f.quorumFor, "quorum-for", nil, "set-policy: `ACTION=N`, the quorum of one kind of change (create, rotate, retire, disable, enable, destroy-version, destroy-key, rewrap, recover; repeat)")
	fl.BoolVar(&f.rotateByUsage, "services-rotate-by-usage", false, "set-policy: services may rotate a key whose active version reached its usage cap")
	fl.BoolVar(&f.rotateByAge, "services-rotate-by-age", false, "set-policy: services may rotate a key whose active version reached its age")
}

// given reports whether any set-policy flag was set.
func (f *trustPolicyFlags) given() bool {
	return f.scope != "" && f.scope != "*" || len(f.custodians)+len(f.services)+len(f.auditors)+len(f.quorumFor) > 0 || f.quorum != 0 || f.rotateByUsage || f.rotateByAge
}

// policy builds and validates the policy.
func (f *trustPolicyFlags) policy() (*custody.Policy, error) {
	if len(f.custodians) == 0 || f.quorum < 1 {
		return nil, usagef("set-policy needs --custodian NAME=PUBLIC_KEY (at least one) and --quorum N")
	}
	// Revision 1 passes Validate; Propose sets the real one.
	p := &custody.Policy{Scope: f.scope, Revision: 1, Quorum: map[custody.Action]int{custody.ActionSetPolicy: f.quorum},
		ServiceMayRotate: custody.ServiceRotation{ByUsage: f.rotateByUsage, ByAge: f.rotateByAge}}
	for _, l := range []struct {
		flags []string
		into  *[]custody.Principal
	}{{f.custodians, &p.Custodians}, {f.services, &p.Services}, {f.auditors, &p.Auditors}} {
		for _, s := range l.flags {
			pr, err := parsePrincipal(s)
			if err != nil {
				return nil, err
			}
			*l.into = append(*l.into, pr)
		}
	}
	for _, s := range f.quorumFor {
		name, n, ok := strings.Cut(s, "=")
		q, err := strconv.Atoi(n)
		act, known := actionByName(name)
		if !ok || err != nil || !known || !act.IsChange() {
			return nil, usagef("--quorum-for %q: want ACTION=N with a change action", s)
		}
		p.Quorum[act] = q
	}
	if err := p.Validate(); err != nil {
		return nil, usageError{err.Error()}
	}
	return p, nil
}

// parsePrincipal reads NAME=PUBLIC_KEY[@IAM_ARN].
func parsePrincipal(s string) (custody.Principal, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok {
		return custody.Principal{}, usagef("principal %q: want NAME=PUBLIC_KEY[@IAM_ARN]", s)
	}
	key, arn, _ := strings.Cut(rest, "@")
	pub, err := parsePublicKey(key)
	if err != nil {
		return custody.Principal{}, usagef("principal %s: %v", name, err)
	}
	return custody.Principal{Name: name, PublicKey: pub, AWSPrincipal: arn}, nil
}

// actionByName finds an action by its String.
func actionByName(name string) (custody.Action, bool) {
	for a := custody.Action(1); a.String() != "invalid"; a++ {
		if a.String() == name {
			return a, true
		}
	}
	return 0, false
}

// policyJSON is a trust policy as policy show prints it.
type policyJSON struct {
	Scope             string          `json:"scope"`
	Revision          uint64          `json:"revision"`
	Digest            string          `json:"digest"`
	Custodians        []principalJSON `json:"custodians"`
	Services          []principalJSON `json:"services"`
	Auditors          []principalJSON `json:"auditors"`
	Quorum            map[string]int  `json:"quorum"`
	ServicesMayRotate struct {
		ByUsage bool `json:"by_usage"`
		ByAge   bool `json:"by_age"`
	} `json:"services_may_rotate"`
}

// principalJSON is a principal as policy show prints it: its name, its
// Ed25519 public key (hex) and that key's fingerprint, and the AWS
// principal it acts as in KMS, if any.
type principalJSON struct {
	Name           string `json:"name"`
	PublicKey      string `json:"public_key"`
	KeyFingerprint string `json:"key_fingerprint"`
	AWSPrincipal   string `json:"aws_principal,omitempty"`
}

func (p principalJSON) String() string {
	s := p.Name + " (" + p.KeyFingerprint
	if p.AWSPrincipal != "" {
		s += ", " + p.AWSPrincipal
	}
	return s + ")"
}

func principalNames(ps []principalJSON) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, ", ")
}

func newPolicyJSON(p *custody.Policy) policyJSON {
	scope := p.Scope
	if scope != "*" {
		scope = keystore.Fingerprint(scope) // a scope may be a branch key id
	}
	j := policyJSON{Scope: scope, Revision: p.Revision, Custodians: []principalJSON{}, Services: []principalJSON{}, Auditors: []principalJSON{}, Quorum: map[string]int{}}
	j.ServicesMayRotate.ByUsage, j.ServicesMayRotate.ByAge = p.ServiceMayRotate.ByUsage, p.ServiceMayRotate.ByAge
	if d, err := p.Digest(); err == nil {
		j.Digest = fmt.Sprintf("%x", d)
	}
	for _, l := range []struct {
		from []custody.Principal
		into *[]principalJSON
	}{{p.Custodians, &j.Custodians}, {p.Services, &j.Services}, {p.Auditors, &j.Auditors}} {
		for _, pr := range l.from {
			*l.into = append(*l.into, principalJSON{Name: pr.Name, PublicKey: hex.EncodeToString(pr.PublicKey),
				KeyFingerprint: custody.KeyFingerprint(pr.PublicKey), AWSPrincipal: pr.AWSPrincipal})
		}
	}
	for a := custody.Action(1); a.String() != "invalid"; a++ {
		if a.IsChange() {
			j.Quorum[a.String()] = p.QuorumFor(a)
		}
	}
	return j
}
