package custody_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
)

// An escrow key is split at once into one share per custodian; its
// private key is never kept whole. Any two of the three shares rebuild it.
func ExampleSplitEscrowKey() {
	key, err := keyring.GenerateHPKEEscrowKey()
	if err != nil {
		fmt.Println(err)
		return
	}
	publicKey := key.PublicKey() // for the services' keyring.NewHPKEEscrow
	shares, err := custody.SplitEscrowKey("escrow-2026", key, 3, 2)
	if err != nil {
		fmt.Println(err)
		return
	}
	files := make([][]byte, len(shares)) // one file per custodian
	for i, s := range shares {
		files[i] = s.RevealEncoding()
		fmt.Println(s.Index(), "of", s.Shares(), "threshold", s.Threshold())
	}

	// Much later: two custodians bring their shares.
	bob, _ := custody.ParseEscrowShare(files[1])
	carol, _ := custody.ParseEscrowShare(files[2])
	back, err := custody.CombineEscrowShares([]*custody.EscrowShare{bob, carol}, custody.EscrowKeyDigest(publicKey))
	fmt.Println(err, custody.EscrowKeyDigest(back.PublicKey()) == custody.EscrowKeyDigest(publicKey))
	_, err = custody.CombineEscrowShares([]*custody.EscrowShare{bob}, custody.EscrowKeyDigest(publicKey))
	fmt.Println(errors.Is(err, custody.ErrTooFewShares))
	// Output:
	// 1 of 3 threshold 2
	// 2 of 3 threshold 2
	// 3 of 3 threshold 2
	// <nil> true
	// true
}

// Break-glass recovery: a recover request, approved by the quorum, and the
// custodians' shares give back the escrow key, which unwraps the data
// keys the services also wrapped to its public key.
func ExampleAuthority_AuthorizeRecovery() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "custody-example")
	defer os.RemoveAll(dir)
	store, err := keystore.OpenFileStore(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	auth, _ := custody.NewAuthority(custody.AuthorityConfig{Store: store})
	alice, bob, carol := exampleSigner("alice"), exampleSigner("bob"), exampleSigner("carol")
	policy := &custody.Policy{
		Scope:      "*",
		Custodians: []custody.Principal{alice.Principal(), bob.Principal(), carol.Principal()},
		Quorum:     map[custody.Action]int{custody.ActionSetPolicy: 3, custody.ActionRecover: 3},
	}
	install, _ := auth.Propose(ctx, "alice", custody.Change{Action: custody.ActionSetPolicy, NewPolicy: policy}, time.Hour)
	if _, err := auth.Authorize(ctx, install, approvals(install, alice, bob, carol)); err != nil {
		fmt.Println(err)
		return
	}

	key, _ := keyring.GenerateHPKEEscrowKey()
	digest := custody.EscrowKeyDigest(key.PublicKey())
	split, _ := custody.SplitEscrowKey("escrow-2026", key, 3, 2)

	r, err := auth.Propose(ctx, "alice", custody.Change{Action: custody.ActionRecover, EscrowKey: digest,
		KMSKeyARN: "arn:aws:kms:us-east-1:111122223333:key/2b0c3c9e-0000-4000-8000-000000000002"}, time.Hour)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _, err = auth.AuthorizeRecovery(ctx, r, approvals(r, alice, bob), split[:2])
	fmt.Println(errors.Is(err, custody.ErrTooFewApprovals))
	ok, recovered, err := auth.AuthorizeRecovery(ctx, r, approvals(r, alice, bob, carol), split[:2])
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ok.Approvers, custody.EscrowKeyDigest(recovered.PublicKey()) == digest)
	// Unwrap with keyring.NewHPKEEscrowRecovery("escrow-2026", recovered),
	// rewrap each header to r.KMSKeyARN, then drop recovered.
	// Output:
	// true
	// [alice bob carol] true
}

func approvals(r *custody.Request, signers ...*custody.Signer) []custody.Approval {
	var out []custody.Approval
	for _, s := range signers {
		a, err := s.Approve(r)
		if err != nil {
			panic(err)
		}
		out = append(out, a)
	}
	return out
}
