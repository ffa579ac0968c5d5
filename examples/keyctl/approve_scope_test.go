package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestApproveFirstPolicyOfScope: the first policy of a new scope needs the
// quorum of the broader policy in force and of the new one, so keyctl
// approve takes approvals from the custodians of both (the "*" custodians
// are not named in the new policy here) and refuses anyone else's.
func TestApproveFirstPolicyOfScope(t *testing.T) {
	w, _, ids := recoveryWorld(t)
	ids["dave"] = w.identity("dave")
	ids["eve"] = w.identity("eve")
	policy := filepath.Join(w.dir, "tenant-policy.json")
	w.ok("propose", "set-policy", "--scope", "tenant-*", "-o", policy,
		"--custodian", "dave="+w.pubKeys["dave"], "--quorum", "1")
	w.fails(1, "not a custodian", "approve", policy, "--identity", ids["eve"])
	for _, who := range []string{"alice", "bob", "carol", "dave"} {
		w.ok("approve", policy, "--identity", ids[who])
	}
	w.ok("apply", policy)
	out := w.ok("policy", "show")
	if !strings.Contains(out, "dave") {
		t.Fatalf("the tenant-* policy is not installed with dave as its custodian:\n%s", out)
	}
}
