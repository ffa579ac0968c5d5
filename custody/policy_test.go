package custody_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/stretchr/testify/require"
)

// fixedPrincipal has the key derived from seed byte b (the worked examples
// of docs/FORMAT.md use these).
func fixedPrincipal(name string, b byte) custody.Principal {
	return custody.Principal{Name: name, PublicKey: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, 32)).Public().(ed25519.PublicKey)}
}

func validPolicy() *custody.Policy {
	return &custody.Policy{
		Scope:      "tenant-*",
		Revision:   1,
		Custodians: []custody.Principal{fixedPrincipal("bob", 2), fixedPrincipal("alice", 1)},
		Services:   []custody.Principal{fixedPrincipal("svc", 3)},
		Quorum:     map[custody.Action]int{custody.ActionSetPolicy: 2, custody.ActionDestroyKey: 2},
	}
}

func TestPolicyValidate(t *testing.T) {
	long := strings.Repeat("n", custody.MaxPrincipalName+1)
	for _, tc := range []struct {
		name  string
		edit  func(p *custody.Policy)
		want  error
		words []string // the error names these
	}{
		{"custodian and service by name", func(p *custody.Policy) {
			p.Services = append(p.Services, custody.Principal{Name: "alice", PublicKey: p.Custodians[1].PublicKey})
		}, custody.ErrRoleConflict, []string{"alice", "custodian", "service"}},
		{"custodian and service by key", func(p *custody.Policy) {
			p.Services = append(p.Services, custody.Principal{Name: "alice-svc", PublicKey: p.Custodians[1].PublicKey})
		}, custody.ErrRoleConflict, []string{"alice", "alice-svc", "custodian", "service"}},
		{"custodian and service by AWS principal", func(p *custody.Policy) {
			p.Custodians[1].AWSPrincipal = "arn:aws:iam::111122223333:role/ops"
			p.Services[0].AWSPrincipal = "arn:aws:iam::111122223333:role/OPS"
		}, custody.ErrRoleConflict, []string{"alice", "svc", "AWS principal", "custodian", "service"}},
		{"no custodian", func(p *custody.Policy) { p.Custodians = nil }, custody.ErrInvalid, nil},
		{"revision 0", func(p *custody.Policy) { p.Revision = 0 }, custody.ErrInvalid, nil},
		{"empty scope", func(p *custody.Policy) { p.Scope = "" }, custody.ErrInvalid, nil},
		{"long scope", func(p *custody.Policy) { p.Scope = strings.Repeat("s", custody.MaxScope+1) }, custody.ErrInvalid, nil},
		{"no set-policy quorum", func(p *custody.Policy) { delete(p.Quorum, custody.ActionSetPolicy) }, custody.ErrInvalid, []string{"set-policy"}},
		{"quorum 0", func(p *custody.Policy) { p.Quorum[custody.ActionRotate] = 0 }, custody.ErrInvalid, []string{"rotate"}},
		{"quorum above N", func(p *custody.Policy) { p.Quorum[custody.ActionSetPolicy] = 3 }, custody.ErrInvalid, []string{"1 to 2"}},
		{"quorum above set-policy's", func(p *custody.Policy) {
			p.Quorum[custody.ActionSetPolicy] = 1
			p.Quorum[custody.ActionDestroyKey] = 2
		}, custody.ErrInvalid, []string{"destroy-key"}},
		{"quorum for a use", func(p *custody.Policy) { p.Quorum[custody.ActionDecrypt] = 1 }, custody.ErrInvalid, []string{"decrypt"}},
		{"name empty", func(p *custody.Policy) { p.Auditors = []custody.Principal{fixedPrincipal("", 4)} }, custody.ErrInvalid, nil},
		{"name too long", func(p *custody.Policy) { p.Auditors = []custody.Principal{fixedPrincipal(long, 4)} }, custody.ErrInvalid, nil},
		{"name with a newline", func(p *custody.Policy) { p.Auditors = []custody.Principal{fixedPrincipal("a\nb", 4)} }, custody.ErrInvalid, nil},
		{"name not ASCII", func(p *custody.Policy) { p.Auditors = []custody.Principal{fixedPrincipal("zoë", 4)} }, custody.ErrInvalid, nil},
		{"name with a leading space", func(p *custody.Policy) { p.Auditors = []custody.Principal{fixedPrincipal(" a", 4)} }, custody.ErrInvalid, nil},
		{"short key", func(p *custody.Policy) { p.Custodians[0].PublicKey = p.Custodians[0].PublicKey[:31] }, custody.ErrInvalid, nil},
		{"long AWS principal", func(p *custody.Policy) {
			p.Custodians[0].AWSPrincipal = "arn:aws:iam::111122223333:role/" + strings.Repeat("a", custody.MaxAWSPrincipal)
		}, custody.ErrInvalid, nil},
		{"AWS principal not an IAM ARN", func(p *custody.Policy) { p.Custodians[0].AWSPrincipal = "*" }, custody.ErrInvalid, []string{"bob"}},
		{"AWS principal an account", func(p *custody.Policy) {
			p.Custodians[0].AWSPrincipal = "arn:aws:iam::111122223333:root"
		}, custody.ErrInvalid, nil},
		{"a name twice in a role", func(p *custody.Policy) { p.Services = append(p.Services, p.Services[0]) }, custody.ErrInvalid, []string{"svc"}},
		{"one name, two keys", func(p *custody.Policy) { p.Auditors = []custody.Principal{fixedPrincipal("alice", 9)} }, custody.ErrInvalid, []string{"alice"}},
		{"one key, two names", func(p *custody.Policy) {
			p.Auditors = []custody.Principal{{Name: "audit-alice", PublicKey: p.Custodians[1].PublicKey}}
		}, custody.ErrInvalid, []string{"alice", "audit-alice"}},
		{"too many custodians", func(p *custody.Policy) {
			for i := range custody.MaxCustodians - 1 {
				p.Custodians = append(p.Custodians, fixedPrincipal("c"+string(rune('a'+i)), byte(20+i)))
			}
		}, custody.ErrInvalid, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := validPolicy()
			require.NoError(t, p.Validate())
			tc.edit(p)
			err := p.Validate()
			requireOnly(t, err, tc.want)
			for _, w := range tc.words {
				require.Contains(t, err.Error(), w)
			}
			_, err = p.MarshalBinary()
			require.ErrorIs(t, err, tc.want, "MarshalBinary validates")
		})
	}
}

// A principal may be custodian and auditor, or service and auditor.
func TestPolicyAllowsAuditorWithAnotherRole(t *testing.T) {
	p := validPolicy()
	p.Auditors = []custody.Principal{p.Custodians[1], p.Services[0]}
	require.NoError(t, p.Validate())
	require.NoError(t, p.Allows("alice", custody.ActionReadAudit))
	require.NoError(t, p.Allows("svc", custody.ActionReadAudit))
}

func TestPolicyAllows(t *testing.T) {
	p := validPolicy()
	p.Auditors = []custody.Principal{fixedPrincipal("audrey", 4)}
	p.ServiceMayRotate.ByAge = true
	allowed := map[string][]custody.Action{
		"alice": {custody.ActionCreate, custody.ActionRotate, custody.ActionRetire, custody.ActionDisable, custody.ActionEnable,
			custody.ActionDestroyVersion, custody.ActionDestroyKey, custody.ActionRewrap, custody.ActionSetPolicy,
			custody.ActionRotateByUsage, custody.ActionRotateByAge},
		"svc":    {custody.ActionEncrypt, custody.ActionDecrypt, custody.ActionRotateByAge},
		"audrey": {custody.ActionReadAudit},
		"nobody": nil,
	}
	for name, acts := range allowed {
		for a := custody.ActionCreate; a <= custody.ActionReadAudit; a++ {
			err := p.Allows(name, a)
			if containsAction(acts, a) {
				require.NoError(t, err, "%s may %s", name, a)
			} else {
				requireOnly(t, err, custody.ErrNotPermitted)
				require.Contains(t, err.Error(), name, "the refusal names the principal")
			}
		}
	}
	require.ErrorIs(t, p.Allows("alice", 0), custody.ErrNotPermitted)
	require.ErrorIs(t, p.Allows("alice", 200), custody.ErrNotPermitted)
}

func containsAction(list []custody.Action, a custody.Action) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

func TestPolicyCovers(t *testing.T) {
	for scope, cases := range map[string]map[string]bool{
		"*":        {"a": true, "tenant-1": true},
		"tenant-*": {"tenant-1": true, "tenant-": true, "tenant": false, "x-tenant-1": false},
		"tenant-1": {"tenant-1": true, "tenant-10": false, "tenant-": false},
	} {
		p := &custody.Policy{Scope: scope}
		for id, want := range cases {
			require.Equal(t, want, p.Covers(id), "scope %q, key %q", scope, id)
		}
	}
}

func TestQuorumDefaults(t *testing.T) {
	p := validPolicy()
	require.Equal(t, 1, p.QuorumFor(custody.ActionCreate), "create defaults to 1")
	require.Equal(t, 2, p.QuorumFor(custody.ActionRetire), "other changes default to set-policy's")
	p.Quorum[custody.ActionCreate] = 2
	require.Equal(t, 2, p.QuorumFor(custody.ActionCreate))
}

// policyVector is docs/FORMAT.md's worked example of a policy.
const policyVector = "01" + // version
	"0008" + "74656e616e742d2a" + // scope "tenant-*"
	"0000000000000001" + // revision 1
	"01" + // flags: services may rotate by usage
	"02" + // two custodians, sorted by name
	"05" + "616c696365" + "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c" + "0000" +
	"03" + "626f62" + "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394" + "0000" +
	"01" + // one service
	"03" + "737663" + "ed4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d1" +
	"002b" + "61726e3a6177733a69616d3a3a3131313132323232333333333a726f6c652f7376632d70617469656e7473" +
	"00" + // no auditor
	"02" + "0702" + "0902" // quorum: destroy-key 2, set-policy 2

func TestPolicyWorkedExample(t *testing.T) {
	p := validPolicy()
	p.Services[0].AWSPrincipal = "arn:aws:iam::111122223333:role/svc-patients"
	p.ServiceMayRotate.ByUsage = true
	enc, err := p.MarshalBinary()
	require.NoError(t, err)
	require.Equal(t, policyVector, hex.EncodeToString(enc))
	back, err := custody.ParsePolicy(enc)
	require.NoError(t, err)
	again, err := back.MarshalBinary()
	require.NoError(t, err)
	require.Equal(t, enc, again)
	require.Equal(t, "alice", back.Custodians[0].Name, "lists come back sorted")
}

// Each policy has one accepted encoding; every truncation, a trailing
// byte, an unknown version or flag, and unsorted lists are refused.
func TestParsePolicyRefusesNonCanonical(t *testing.T) {
	enc, err := hex.DecodeString(policyVector)
	require.NoError(t, err)
	for n := range len(enc) {
		_, err := custody.ParsePolicy(enc[:n])
		require.ErrorIs(t, err, custody.ErrInvalid, "truncated to %d bytes", n)
	}
	for name, bad := range map[string][]byte{
		"trailing byte":    append(bytes.Clone(enc), 0),
		"version 2":        append([]byte{2}, enc[1:]...),
		"unknown flag":     setByte(enc, 1+2+8+8, 0x05),
		"unsorted":         swapCustodians(t, enc),
		"over the cap":     make([]byte, 1<<20),
		"duplicate quorum": append(setByte(enc[:len(enc)-4], len(enc)-5, 2), 0x09, 0x02, 0x09, 0x02),
	} {
		_, err := custody.ParsePolicy(bad)
		require.ErrorIs(t, err, custody.ErrInvalid, name)
	}
}

func setByte(b []byte, i int, v byte) []byte {
	out := bytes.Clone(b)
	out[i] = v
	return out
}

// swapCustodians puts bob before alice in the vector.
func swapCustodians(t *testing.T, enc []byte) []byte {
	at := 1 + 2 + 8 + 8 + 1 + 1
	alice := 1 + 5 + 32 + 2
	bob := 1 + 3 + 32 + 2
	out := bytes.Clone(enc[:at])
	out = append(out, enc[at+alice:at+alice+bob]...)
	out = append(out, enc[at:at+alice]...)
	out = append(out, enc[at+alice+bob:]...)
	require.Len(t, out, len(enc))
	return out
}

// Printing a policy or principal shows fingerprints, never the scope (a
// branch key id, perhaps) or key bytes.
func TestPolicyPrintsRedacted(t *testing.T) {
	p := validPolicy()
	p.Scope = "patient-0042"
	for _, s := range []string{p.String(), custody.KeyFingerprint(p.Custodians[0].PublicKey), p.Custodians[0].String()} {
		require.NotContains(t, s, "patient-0042")
		require.NotContains(t, s, hex.EncodeToString(p.Custodians[0].PublicKey))
	}
	require.Contains(t, p.String(), "alice")
}

func FuzzParsePolicy(f *testing.F) {
	enc, _ := hex.DecodeString(policyVector)
	f.Add(enc)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := custody.ParsePolicy(b)
		if err != nil {
			return
		}
		again, err := p.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("ParsePolicy accepted a non-canonical encoding (%v)", err)
		}
	})
}

// A signed policy's AWS principals fill the KMS key policy generator's
// lists, and the key policy it writes passes its own check.
func TestPolicyAWSPrincipalsMakeAKMSKeyPolicy(t *testing.T) {
	p := validPolicy()
	p.Custodians[0].AWSPrincipal = "arn:aws:iam::111122223333:role/custodian-bob"
	p.Services[0].AWSPrincipal = "arn:aws:iam::111122223333:role/svc-patients"
	p.Auditors = []custody.Principal{fixedPrincipal("audrey", 4)} // no IAM principal
	custodians, services, auditors := p.AWSPrincipals()
	require.Equal(t, []string{"arn:aws:iam::111122223333:role/custodian-bob"}, custodians)
	require.Equal(t, []string{"arn:aws:iam::111122223333:role/svc-patients"}, services)
	require.Empty(t, auditors)
	cfg := custody.KMSKeyPolicyConfig{Account: "111122223333", Custodians: custodians, Services: services,
		Auditors: auditors, RequiredContextKeys: []string{"tenant"}}
	doc, err := custody.GenerateKMSKeyPolicy(cfg)
	require.NoError(t, err)
	violations, err := custody.CheckKMSKeyPolicy(doc, cfg)
	require.NoError(t, err)
	require.Empty(t, violations)
}
